"""The syscall numbers a start reads (the table setup.py asked of libseccomp) are what
libseccomp answers now."""

import pyseccomp
import pytest

from sandbox import _syscalls, syscalls
from sandbox.abi import Abi, socket_syscalls, syscall_name, syscall_number

pytestmark = pytest.mark.pure


def test_the_built_table_is_libseccomps_answer():
    assert _syscalls.NUMBERS == syscalls.ask()


@pytest.mark.parametrize("abi", list(Abi), ids=lambda abi: abi.value)
def test_every_number_is_libseccomps_name_for_it(abi):
    numbers = _syscalls.NUMBERS[abi.value]
    assert len(numbers) > 300  # every syscall of the ABI, not a chosen few
    for name, nr in numbers.items():
        assert pyseccomp.resolve_syscall(abi.audit_arch, nr).decode() == name
        assert syscall_number(abi, name) == nr and syscall_name(abi, nr) == name
    unnamed = [nr for nr in range(syscalls.NUMBERS_ASKED) if nr not in numbers.values()]
    for nr in unnamed:
        with pytest.raises(ValueError):
            pyseccomp.resolve_syscall(abi.audit_arch, nr)


def test_the_direct_socket_calls_of_i386_are_found():
    # libseccomp resolves i386's socket call names to socketcall pseudo numbers (< 0);
    # the direct syscalls (Linux 4.3) are known only from their numbers.
    assert pyseccomp.resolve_syscall(Abi.I386.audit_arch, "connect") < 0
    found = {sc.call: sc.nr for sc in socket_syscalls(Abi.I386)}
    assert {"socketcall", "socket", "connect", "sendmsg", "accept4"} <= found.keys()
    assert all(nr > 0 for nr in found.values())
