"""A small classic-BPF assembler for seccomp, and an interpreter to test its output.

Only what seccomp filters need: 32-bit absolute loads from ``struct seccomp_data``,
AND with a constant, conditional jumps against constants, JA, and RET. Jumps name
labels; the assembler checks that each conditional jump fits its 8-bit offset, so the
code generator gets an error instead of a filter that jumps somewhere else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple
from collections.abc import Sequence

# Opcodes (linux/filter.h): class | size | mode, class | op | source.
LD_W_ABS = 0x20
ALU_AND_K = 0x54
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JGE_K = 0x35
JMP_JSET_K = 0x45
RET_K = 0x06

_CONDITIONAL = {JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K}
MAX_INSNS = 4096  # BPF_MAXINSNS

# Offsets into struct seccomp_data.
OFF_NR = 0
OFF_ARCH = 4


def off_arg_low(index: int) -> int:
    return 16 + 8 * index


def off_arg_high(index: int) -> int:
    return 20 + 8 * index


class TooLong(ValueError):
    """The program is longer than the kernel takes, or a jump longer than it encodes."""


class Insn(NamedTuple):
    code: int
    jt: int
    jf: int
    k: int


@dataclass(eq=False)
class Label:
    """A place in the program, which jumps may name before it is placed."""

    name: str = ""


@dataclass(eq=False)
class _Pending:
    """An instruction whose jump offsets wait for their labels."""

    code: int
    k: int = 0
    jt: Label | None = None
    jf: Label | None = None
    target: Label | None = None  # for JA


@dataclass
class Assembler:
    """Instructions and labels, resolved into a program by `assemble`."""

    items: list[_Pending | Label] = field(default_factory=list)

    def label(self, name: str = "") -> Label:
        return Label(name)

    def place(self, label: Label) -> None:
        self.items.append(label)

    def load(self, offset: int) -> None:
        self.items.append(_Pending(LD_W_ABS, offset))

    def and_(self, mask: int) -> None:
        self.items.append(_Pending(ALU_AND_K, mask))

    def jump(self, code: int, k: int, true: Label | None = None,
             false: Label | None = None) -> None:
        """Compare A with k; go to `true` or `false`, or fall through where None."""
        assert code in _CONDITIONAL
        self.items.append(_Pending(code, k, jt=true, jf=false))

    def goto(self, target: Label) -> None:
        self.items.append(_Pending(JMP_JA, target=target))

    def ret(self, action: int) -> None:
        self.items.append(_Pending(RET_K, action))

    def assemble(self) -> list[Insn]:
        position: dict[int, int] = {}
        count = 0
        for item in self.items:
            if isinstance(item, Label):
                position[id(item)] = count
            else:
                count += 1
        if count > MAX_INSNS:
            raise TooLong(f"filter has {count} instructions, more than {MAX_INSNS}")

        def offset(at: int, label: Label | None, limit: int) -> int:
            if label is None:
                return 0
            if id(label) not in position:
                raise ValueError(f"label {label.name!r} is never placed")
            distance = position[id(label)] - at - 1
            if not 0 <= distance <= limit:
                raise TooLong(f"jump to {label.name!r} spans {distance} instructions")
            return distance

        program: list[Insn] = []
        for item in self.items:
            if isinstance(item, Label):
                continue
            at = len(program)
            if item.code == JMP_JA:
                program.append(Insn(JMP_JA, 0, 0, offset(at, item.target, 0xFFFFFFFF)))
            else:
                program.append(Insn(item.code, offset(at, item.jt, 0xFF),
                                    offset(at, item.jf, 0xFF), item.k))
        return program


def encode(program: Sequence[Insn]) -> bytes:
    """The bytes of a `struct sock_filter` array."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


class SeccompData(NamedTuple):
    nr: int
    arch: int
    args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    instruction_pointer: int = 0

    def pack(self) -> bytes:
        args = tuple(self.args) + (0,) * (6 - len(self.args))
        return struct.pack("=IIQ6Q", self.nr & 0xFFFFFFFF, self.arch, self.instruction_pointer,
                           *(a & 0xFFFFFFFFFFFFFFFF for a in args))


def run(program: Sequence[Insn], data: SeccompData) -> int:
    """Execute a filter the way the kernel would, returning its action word."""
    memory = data.pack()
    acc = 0
    pc = 0
    while True:
        insn = program[pc]
        pc += 1
        if insn.code == LD_W_ABS:
            (acc,) = struct.unpack_from("=I", memory, insn.k)
        elif insn.code == ALU_AND_K:
            acc &= insn.k
        elif insn.code == JMP_JA:
            pc += insn.k
        elif insn.code == RET_K:
            return insn.k
        else:
            taken = {
                JMP_JEQ_K: acc == insn.k,
                JMP_JGT_K: acc > insn.k,
                JMP_JGE_K: acc >= insn.k,
                JMP_JSET_K: bool(acc & insn.k),
            }[insn.code]
            pc += insn.jt if taken else insn.jf
