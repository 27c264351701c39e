"""The compiler's data: decoded bytecode instructions, uops and the trace of one function."""

from __future__ import annotations

import bisect
import dataclasses
import operator
import types
from typing import Container, NamedTuple, Union

from . import _runtime


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Obj:
    """Operand: the address of a Python object (kept alive by the machine code).
    Two are equal when they hold the very same object (1, 1.0 and True are
    equal values, and 0.0 and -0.0, but their addresses differ)."""

    value: object

    def __eq__(self, other) -> bool:
        return isinstance(other, Obj) and self.value is other.value

    def __hash__(self) -> int:
        return hash(id(self.value))

    def __repr__(self) -> str:
        text = repr(self.value)
        return text if len(text) <= 40 else text[:37] + "..."


@dataclasses.dataclass(frozen=True, slots=True)
class Sym:
    """Operand: the address of a C symbol of the interpreter or the runtime."""

    name: str

    def __repr__(self) -> str:
        return f"&{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class CodeUnit:
    """Operand: the address of code unit `index` of the function's bytecode
    (what frame->prev_instr points at); -1 is the unit before the first."""

    index: int

    def __repr__(self) -> str:
        return f"code+{2 * self.index}"


@dataclasses.dataclass(frozen=True, slots=True)
class RwWord:
    """Operand: the address of read-write word `index` of the compiled code."""

    index: int

    def __repr__(self) -> str:
        return f"rw[{self.index}]"


@dataclasses.dataclass(frozen=True, slots=True)
class CacheWords:
    """Operand: the address of an inline cache's read-write words (`index` is
    the first of them among the trace's cache words; see Trace.cache_words)."""

    index: int

    def __repr__(self) -> str:
        return f"cache[{self.index}]"


Operand = Union[int, Obj, Sym, CodeUnit, RwWord, CacheWords]
CACHE_WORDS = 4  # CPJIT_CACHE_WORDS in csrc/runtime.h: one cache entry
CACHE_ENTRIES = 4  # CPJIT_CACHE_ENTRIES: entries (types) of an attribute or method site

# Pseudo-uop marking a jump target: `oparg` is the offset of the instruction
# that starts there.  It has no stencil and takes no space.
LABEL = "_LABEL"


class Instruction(NamedTuple):
    """One bytecode instruction, EXTENDED_ARG prefixes folded in (offsets in
    code units).  A named tuple: decoding makes one per instruction of every
    function compiled, and a tuple is made in C."""

    offset: int  # the instruction itself
    start: int  # its first EXTENDED_ARG prefix, or `offset`
    name: str
    arg: int | None
    next: int  # offset of the following instruction (after inline caches)
    line: int | None
    jump_target: int | None = None  # for jumps: the instruction it goes to
    after: int = -1  # where the interpreter resumes after it: `next`'s first prefix

    @property
    def byte_offset(self) -> int:
        return 2 * self.offset


class ExitStep(NamedTuple):
    """One thing a side exit does before the interpreter takes over, to put
    what the machine code holds unboxed where the interpreter expects it
    (cpjit/unbox.py makes them; the runtime's cpjit_side_exit does them).

    `action` is one of EXIT_ACTIONS: "box_i64" / "box_f64" box raw-value slot
    `value` into the stack under its top `arg` items; "local" and "const" put
    local `value` or the constant `value` (an Obj) there likewise; "sync_i64"
    / "sync_f64" box raw local `arg` into the frame if it changed.
    """

    action: str
    arg: int
    value: object = 0  # (a tuple: exit keys of many steps hash fast)

    @property
    def pushes(self) -> int:
        return 1 if self.action in PUSHING_ACTIONS else 0

    def describe(self, local_name=str) -> str:
        """In words, e.g. "box slot 12 (an int) under 1 item", "sync local i"."""
        under = f" under {self.arg} item{'s' if self.arg != 1 else ''}" if self.arg else ""
        if self.action in ("box_i64", "box_f64"):
            kind = "an int" if self.action == "box_i64" else "a float"
            return f"box slot {self.value} ({kind}) onto the stack{under}"
        if self.action == "local":
            return f"push local {local_name(self.value)}{under}"
        if self.action == "const":
            return f"push the constant {self.value!r}{under}"
        return f"box local {local_name(self.arg)} into the frame if it changed"


# Action codes of exit steps in an exit record (csrc/runtime.h CPJIT_EXIT_*).
EXIT_ACTIONS = {"box_i64": 1, "box_f64": 2, "local": 3, "const": 4, "sync_i64": 5,
                "sync_f64": 6}
# The actions whose step pushes an item onto the stack (ExitStep.pushes; the
# stack walk, csrc/stackwalk.c, counts them).
PUSHING_ACTIONS = frozenset({"box_i64", "box_f64", "local", "const"})


class UOp(_runtime.UOpBase):
    """One micro-op of a trace.

    `offset` is the instruction it implements: its error stub reports that
    instruction.  `exit_to` is where the interpreter resumes when it side-exits
    (the instruction's start unless stated), `exit_after` where it resumes when
    the uop leaves after its effect (the next instruction).  `jump_to` is the
    offset of the instruction a branch goes to.

    Its fields are those of its C base (csrc/uop.c: a compilation makes and
    copies a few hundred uops, and a dataclass's __init__ is a Python
    function), which behaves as a dataclass with slots would: UOp(name,
    oparg=0, operand0=0, operand1=0, offset=-1, exit_to=-1, jump_to=-1,
    comment="", exit_after=-1, exit_steps=(), exit_after_steps=()), positional
    in that order or by keyword; == compares every field; unhashable; a
    repr like a dataclass's.
    `replace(**changes)` is a copy with some fields changed.
    """

    __slots__ = ()

    # The fields (annotations only: a class attribute would hide the member).
    name: str
    oparg: int  # = 0
    operand0: Operand  # = 0
    operand1: Operand  # = 0
    offset: int  # = -1
    exit_to: int  # = -1
    jump_to: int  # = -1
    comment: str  # = ""
    exit_after: int  # = -1
    # What its side exit does first, to box what is unboxed at that point
    # (ExitSteps, from cpjit/unbox.py); uops with the same resume offset and
    # steps share an exit stub.  The same for its exit after its effect.
    exit_steps: tuple  # = ()
    exit_after_steps: tuple  # = ()

    def describe(self) -> str:
        parts = [self.name]
        if self.oparg:
            parts.append(f"oparg={self.oparg}")
        if self.operand0 != 0:
            parts.append(f"op0={self.operand0!r}")
        if self.operand1 != 0:
            parts.append(f"op1={self.operand1!r}")
        if self.jump_to >= 0:
            parts.append(f"-> @{2 * self.jump_to}")
        if self.comment:
            parts.append(f"# {self.comment}")
        return " ".join(parts)


_offset_of = operator.attrgetter("offset")


def names(uops: list[UOp]) -> list[str]:
    """The name of each uop, in order.  (This and the scans below are C,
    csrc/uopscan.c: as comprehensions, the dozen scans of a compilation
    took a twentieth of it.)"""
    return _runtime.uop_names(uops, UOp)


def positions(uops: list[UOp], names: Container[str]) -> list[int]:
    """The indexes of the uops named one of `names` (a set, a dict or a
    tuple of names), in order: what most passes look for among the uops."""
    return _runtime.uop_positions(uops, UOp, names)


def jumps_into(uops: list[UOp], targets: Container[int]) -> list[int]:
    """The indexes of the uops that jump to one of `targets` (instruction
    offsets: those of the trace's labels, say), in order."""
    return _runtime.uop_jumps_into(uops, UOp, targets, LABEL)


# The fields in positional order, as the C base takes them (and its repr shows them):
assert UOp.__match_args__ == tuple(UOp.__annotations__) == (
    "name", "oparg", "operand0", "operand1", "offset", "exit_to", "jump_to", "comment",
    "exit_after", "exit_steps", "exit_after_steps")


@dataclasses.dataclass
class Trace:
    """A function's code as uops, with what the later passes need to know."""

    code: types.CodeType
    instructions: list[Instruction]
    uops: list[UOp]
    unsupported: list[Instruction] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    cache_words: int = 0  # read-write words the uops' inline caches take
    slots: int = 0  # JitState slots (raw values) the uops use
    # (instruction offset, number of operands, word) of each _PROFILE uop, and
    # (offset, 0, word) of each _PROFILE_CALL
    profile_sites: list[tuple[int, int, CacheWords]] = dataclasses.field(default_factory=list)
    # The interpreter's stack depth at each instruction a side exit can resume
    # at (analysis.instruction_depths, taken right after translation).
    entry_depths: dict[int, int] = dataclasses.field(default_factory=dict)
    # The last analysis (an analysis._Analysis: the uops it was made for, their
    # states and which uops changed the state); reused while the uops are the
    # very same objects, and kept up to date by passes that edit it in place.
    analysis: tuple | None = dataclasses.field(default=None, repr=False, compare=False)

    def new_cache(self, words: int = CACHE_WORDS) -> CacheWords:
        """Reserve the read-write words of one inline cache (or profile)."""
        cache = CacheWords(self.cache_words)
        self.cache_words += words
        return cache

    def snapshot(self) -> "Trace":
        """A copy whose uops later passes cannot change."""
        return dataclasses.replace(self, uops=[u.replace() for u in self.uops],
                                   analysis=None,
                                   unsupported=list(self.unsupported), notes=list(self.notes),
                                   profile_sites=list(self.profile_sites))

    def instruction_at(self, offset: int) -> Instruction | None:
        """The instruction at `offset`, or None (the instructions are in
        offset order: a binary search, in C)."""
        instructions = self.instructions
        index = bisect.bisect_left(instructions, offset, key=_offset_of)
        if index < len(instructions) and instructions[index].offset == offset:
            return instructions[index]
        return None
