# Written by setup.py (sandbox/syscalls.py): each ABI's syscalls, name to number.
NUMBERS: dict[str, dict[str, int]]
