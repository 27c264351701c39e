"""The stencil data model: what the build step produces and the emitter consumes (no I/O)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable


class HoleValue(enum.Enum):
    """What goes into a hole (the relocation kind says how it is written)."""

    CODE = "code"  # this stencil's own hot code (a local label)
    COLD = "cold"  # this stencil's own cold code (errors, exits, deallocations)
    DATA = "data"  # this stencil's own read-only data (a constant, a string)
    CONTINUE = "continue"  # the next uop
    JUMP_TARGET = "jump_target"  # the uop a branch goes to
    EXIT_TARGET = "exit_target"  # the side-exit stub of this uop (redo its instruction)
    EXIT_AFTER = "exit_after"  # the side-exit stub resuming at the next instruction
    ERROR_TARGET = "error_target"  # the error stub of this uop's instruction
    OPARG = "oparg"  # the uop's 32-bit argument
    OPERAND0 = "operand0"  # the uop's first 64-bit operand
    OPERAND1 = "operand1"  # the uop's second 64-bit operand
    INSTR = "instr"  # the address of the uop's instruction in the code object
    # The byte offset in the JitState of the raw-value slot numbered by the
    # uop's oparg / operand0 / operand1 (a small displacement: 32-bit holes).
    OPARG_SLOT = "oparg_slot"
    OPERAND0_SLOT = "operand0_slot"
    OPERAND1_SLOT = "operand1_slot"
    SYMBOL = "symbol"  # a C function or object, by name (C API or cpjit runtime)


# A C symbol `_JIT_X` is the hole HoleValue.X: one rule, no table.
JIT_SYMBOL_PREFIX = "_JIT_"


def hole_value_of_symbol(name: str) -> HoleValue | None:
    """The HoleValue a `_JIT_*` symbol stands for, or None for other symbols."""
    if not name.startswith(JIT_SYMBOL_PREFIX):
        return None
    return HoleValue(name[len(JIT_SYMBOL_PREFIX):].lower())


# Oparg variants.  A uop whose stack effect has a run of exactly `oparg` items
# (`args[oparg]`) gets, besides its generic stencil, one stencil per oparg
# below with oparg a compile-time constant: its stack addresses are constant
# displacements and its loops over the run are unrolled, where the generic
# stencil computes them from the patched oparg at run time.  The emitter
# places the variant when a uop's oparg has one.  The only list of them.
VARIANT_OPARGS = (0, 1, 2, 3)
_VARIANT_MARK = "@"


def variant_name(uop: str, oparg: int) -> str:
    """The stencil name of `uop`'s variant for `oparg`: `_CALL_FUNCTION@2`."""
    return f"{uop}{_VARIANT_MARK}{oparg}"


def split_variant(name: str) -> tuple[str, int | None]:
    """(uop, oparg) of a variant's stencil name; (name, None) for any other stencil."""
    uop, mark, oparg = name.partition(_VARIANT_MARK)
    return (uop, int(oparg)) if mark else (name, None)


class Reloc(enum.Enum):
    """How a hole is written (x86-64 ELF relocation kinds, S + A - P style)."""

    ABS64 = "abs64"  # R_X86_64_64: S + A, 64 bits
    ABS32S = "abs32s"  # R_X86_64_32S: S + A, 32 bits sign-extended (a displacement)
    ABS32 = "abs32"  # R_X86_64_32: S + A, 32 bits zero-extended
    REL32 = "rel32"  # R_X86_64_PC32 / PLT32: S + A - P, 32 bits signed
    GOTREL32 = "gotrel32"  # R_X86_64_(REX_)GOTPCRELX: GOT(S) + A - P, 32 bits signed


@dataclasses.dataclass(frozen=True, slots=True)
class Hole:
    """A place in a stencil to patch: analogous to a relocation."""

    offset: int  # where, in the stencil's code (or data, for data holes)
    reloc: Reloc
    value: HoleValue
    symbol: str | None  # for HoleValue.SYMBOL: the C symbol
    addend: int


@dataclasses.dataclass(frozen=True, slots=True)
class Stencil:
    """The machine code of one uop: analogous to a section (.text with its .rodata)."""

    name: str
    code: bytes  # the hot path, ending with the jump to the next uop
    data: bytes
    holes: tuple[Hole, ...]  # holes in `code`
    data_holes: tuple[Hole, ...] = ()  # holes in `data` (pointers in read-only data)
    cold: bytes = b""  # unlikely paths, placed after all hot code (.text.cold)
    cold_holes: tuple[Hole, ...] = ()
    data_align: int = 1
    # The code ends with a 5-byte `jmp _JIT_CONTINUE` (the last hole) that is
    # dropped when the next uop is placed right after it.
    trailing_jump: bool = False

    @property
    def body_size(self) -> int:
        """Size of the code once its trailing jump is dropped."""
        return len(self.code) - 5 if self.trailing_jump else len(self.code)


@dataclasses.dataclass(frozen=True, slots=True)
class UopSpec:
    """What the Python side knows of a uop, generated from its one definition in stencils/uops/."""

    name: str
    inputs: tuple[str, ...]  # stack items consumed, deepest first ("args[oparg]" for runs)
    outputs: tuple[str, ...]  # stack items produced, deepest first
    pops: Callable[[int], int]  # number of items consumed, given oparg
    pushes: Callable[[int], int]  # number of items produced, given oparg
    flags: frozenset[str]  # ESCAPES, SYNCS_FRAME, DEOPTS, ERRORS, JUMPS, LEAVES, USES_*
    doc: str
    source: str  # "stencils/uops/file.c:line"
    # A branch with its own stack effect (JUMP_POPPING(n)): it pops n items of
    # the stack as it was on entry.  None: as falling through.
    jump_pops: int | None = None

    def jump_depth(self, depth: int, oparg: int) -> int:
        """The stack depth where the branch lands, from the depth before the uop."""
        if self.jump_pops is not None:
            return depth - self.jump_pops
        return depth - self.pops(oparg) + self.pushes(oparg)

    @property
    def escapes(self) -> bool:
        return "ESCAPES" in self.flags

    @property
    def deopts(self) -> bool:
        return "DEOPTS" in self.flags

    @property
    def errors(self) -> bool:
        return "ERRORS" in self.flags

    @property
    def jumps(self) -> bool:
        return "JUMPS" in self.flags
