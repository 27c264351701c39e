"""Lay out a trace's stencils, resolve every hole and make the executable code (uops -> machine code).

Layout of one compiled function, all in one mapping:

    [shim][uops in trace order][side-exit stubs][error stubs][cold code][read-only data][GOT]

and, apart, the read-write words: word 0 counts every side exit, word 1 + k
the exits through stub k, then come the uops' inline caches and profile words.

The build step splits each stencil into its hot path, which ends with the
jump to `_JIT_CONTINUE`, and its cold code (errors, side exits, deallocations).
Hot paths are placed one after the other, so each uop's trailing `jmp` to
the next one is dropped; the cold parts follow all the hot code.  Side-exit stubs are shared by the uops that resume at the
same instruction; each counts its exits in a read-write word (counter k is
word k).  Error stubs are shared per instruction.  External functions are
called through a GOT of absolute addresses after the code.

The patching itself (and every range check) is done by the C runtime
(csrc/jitcode.c): this module only says what goes where.
"""

from __future__ import annotations

import dataclasses
import struct
import types

from . import _runtime, stencil_table
from ._stencils import HoleValue, Reloc, Stencil
from .ir import LABEL, CacheWords, CodeUnit, Obj, RwWord, Sym, Trace, UOp

PATCH = struct.Struct("<IBBxxq")  # csrc/jitcode.c: offset, kind, base, value
TOTAL_EXITS = 0  # read-write word counting every side exit (CPJIT_RW_EXITS)
COUNTERS = 1  # first per-stub exit counter
KIND = {Reloc.ABS64: 0, Reloc.REL32: 1, Reloc.GOTREL32: 1, Reloc.ABS32S: 2, Reloc.ABS32: 3}
SLOT_BYTES = 16  # a raw-value slot: the value and its dirty flag (stencils/template.h)
BASE_ABSOLUTE, BASE_CODE, BASE_RWDATA = 0, 1, 2
SHIM = "shim"

_symbol_addresses: dict[str, int] = {}


def symbol_address(name: str) -> int:
    address = _symbol_addresses.get(name)
    if address is None:
        address = _symbol_addresses[name] = _runtime.lookup_symbol(name)
    return address


class EmitError(Exception):
    """The trace cannot be laid out (an internal error: a bug in a pass)."""


@dataclasses.dataclass(slots=True)
class Placement:
    """Where one stencil instance went."""

    kind: str  # "shim", "uop", "exit" (entry of a side exit), "exit step", "error"
    stencil: str
    offset: int  # of the hot code
    size: int
    uop: UOp | None = None
    target: int = -1  # exit/error stubs: the instruction offset they report
    cold_offset: int = -1
    cold_size: int = 0
    falls_through: bool = False  # the next placement is its _JIT_CONTINUE
    counter: int = -1  # exits: the stub's counter (word COUNTERS + counter)


@dataclasses.dataclass(slots=True)
class PatchRecord:
    """One written hole, for dumps: where, how, and what (base + value)."""

    offset: int
    reloc: Reloc
    hole: HoleValue
    symbol: str | None
    base: int
    value: int
    placement: int  # index into Emitted.placements


@dataclasses.dataclass
class Emitted:
    code: object  # _runtime.JitCode
    placements: list[Placement]
    patches: list[PatchRecord]
    exit_offsets: list[int]  # resume offset (code units) of exit stub k == rw word k
    data_offset: int
    got_offset: int
    got_symbols: list[str]

    @property
    def size(self) -> int:
        return self.code.size

    def stub_counts(self, code=None) -> list[int]:
        """Side exits taken so far through each exit stub (Placement.counter)."""
        words = (code or self.code).rwdata()
        return [words[COUNTERS + k] for k in range(len(self.exit_offsets))]

    def exit_counts(self, code=None) -> dict[int, int]:
        """Side exits taken so far, by resume offset (code units)."""
        counts: dict[int, int] = {}
        for resume, taken in zip(self.exit_offsets, self.stub_counts(code)):
            counts[resume] = counts.get(resume, 0) + taken
        return counts

    def cache_words(self, code=None) -> tuple:
        """The inline cache and profile words (CacheWords index 0 first)."""
        return (code or self.code).rwdata()[COUNTERS + len(self.exit_offsets):]


def _operand(operand, units: int, keepalive: list, cache_base: int = 0) -> tuple[int, int]:
    """(base, value) of a uop operand."""
    if isinstance(operand, int):
        return BASE_ABSOLUTE, operand
    if isinstance(operand, Obj):
        keepalive.append(operand.value)
        return BASE_ABSOLUTE, id(operand.value)
    if isinstance(operand, Sym):
        return BASE_ABSOLUTE, symbol_address(operand.name)
    if isinstance(operand, CodeUnit):
        return BASE_ABSOLUTE, units + 2 * operand.index
    if isinstance(operand, RwWord):
        return BASE_RWDATA, 8 * operand.index
    if isinstance(operand, CacheWords):
        return BASE_RWDATA, 8 * (cache_base + operand.index)
    raise EmitError(f"unknown operand {operand!r}")


def exit_key(uop: UOp, value: HoleValue) -> tuple:
    """Which exit stub a uop's EXIT_TARGET or EXIT_AFTER hole goes to: the
    resume offset, and the steps that box what the uop's exit state holds
    unboxed (none after the uop: its state is then boxed)."""
    if value is HoleValue.EXIT_AFTER:
        return (uop.exit_after, ())
    return (uop.exit_to, tuple((s.name, s.oparg, s.operand0) for s in uop.exit_steps))


def _has_hole(stencil: Stencil, value: HoleValue) -> bool:
    return any(h.value is value for h in stencil.holes + stencil.cold_holes)


def emit(trace: Trace) -> Emitted:
    stencils = stencil_table.stencils()
    code_object: types.CodeType = trace.code

    # 1. What goes where, in order: shim, uops, stubs.
    placements: list[Placement] = [Placement("shim", SHIM, 0, 0)]
    labels: dict[int, int] = {}  # instruction offset -> placement index
    pending_labels: list[int] = []
    for uop in trace.uops:
        if uop.name == LABEL:
            pending_labels.append(uop.oparg)
            continue
        if uop.name not in stencils:
            raise EmitError(f"no stencil for uop {uop.name}")
        for label in pending_labels:
            labels[label] = len(placements)
        pending_labels.clear()
        placements.append(Placement("uop", uop.name, 0, 0, uop))
    if pending_labels:
        raise EmitError(f"labels {pending_labels} at the end of the trace")
    main_end = len(placements)

    for placement in placements[:main_end - 1]:
        placement.falls_through = True
    exits: dict[tuple, int] = {}  # exit key -> placement index of the stub's entry
    errors: dict[int, int] = {}  # instruction offset -> placement index
    exit_stubs: list[tuple] = []  # exit keys, in stub order
    for placement in placements[1:main_end]:
        uop = placement.uop
        stencil = stencils[uop.name]
        for value in (HoleValue.EXIT_TARGET, HoleValue.EXIT_AFTER):
            key = exit_key(uop, value)
            if _has_hole(stencil, value) and key not in exits:
                if key[0] < 0:
                    raise EmitError(f"{uop.describe()} can side-exit but has no resume offset")
                exits[key] = -1
                exit_stubs.append(key)
        if _has_hole(stencil, HoleValue.ERROR_TARGET) and uop.offset not in errors:
            errors[uop.offset] = -1
    exit_offsets = [key[0] for key in exit_stubs]
    for k, key in enumerate(exit_stubs):
        resume, steps = key
        exits[key] = len(placements)
        last = UOp("_EXIT_STUB", oparg=COUNTERS + k, operand0=CodeUnit(resume - 1),
                   offset=resume, comment=f"resume @{2 * resume}")
        for step in [UOp(name, oparg, operand0, offset=resume) for name, oparg, operand0 in steps] \
                + [last]:
            kind = "exit" if len(placements) == exits[key] else "exit step"
            placements.append(Placement(kind, step.name, 0, 0, step, resume,
                                        falls_through=step is not last, counter=k))
    for offset in sorted(errors):
        errors[offset] = len(placements)
        stub = UOp("_ERROR_STUB", operand0=CodeUnit(offset), offset=offset,
                   comment=f"raised @{2 * offset}")
        placements.append(Placement("error", "_ERROR_STUB", 0, 0, stub, offset))

    # 2. Sizes and offsets (a trailing jump to the next placement is dropped).
    position = 0
    for placement in placements:
        stencil = stencils[placement.stencil]
        if _has_hole(stencil, HoleValue.CONTINUE) and not placement.falls_through \
                and placement.kind != "shim":
            raise EmitError(f"{placement.uop.describe()} falls off the end of the code")
        placement.offset = position
        placement.size = (stencil.body_size if stencil.trailing_jump and placement.falls_through
                          else len(stencil.code))
        position += placement.size
    for placement in placements:
        cold = stencils[placement.stencil].cold
        if cold:
            placement.cold_offset = position
            placement.cold_size = len(cold)
            position += len(cold)

    # 3. Read-only data (one copy per stencil) and the GOT.
    data_offsets: dict[str, int] = {}
    got: dict[str, int] = {}
    for placement in placements:
        stencil = stencils[placement.stencil]
        if stencil.data and placement.stencil not in data_offsets:
            position += -position % max(stencil.data_align, 1)
            data_offsets[placement.stencil] = position
            position += len(stencil.data)
        for hole in stencil.holes + stencil.cold_holes + stencil.data_holes:
            if hole.reloc is Reloc.GOTREL32:
                got.setdefault(hole.symbol, 0)
    data_offset = min(data_offsets.values(), default=position)
    position += -position % 8
    got_offset = position
    for symbol in got:
        got[symbol] = position
        position += 8
    size = position

    # 4. Bytes and patches.
    units = _runtime.code_units_address(code_object)
    keepalive: list = []
    buffer = bytearray(size)
    patches = bytearray()
    records: list[PatchRecord] = []

    def add(offset, reloc, hole, symbol, base, value, index):
        value = (value + (1 << 63)) % (1 << 64) - (1 << 63)  # any 64-bit pattern, signed
        patches.extend(PATCH.pack(offset, KIND[reloc], base, value))
        records.append(PatchRecord(offset, reloc, hole, symbol, base, value, index))

    for index, placement in enumerate(placements):
        stencil = stencils[placement.stencil]
        buffer[placement.offset:placement.offset + placement.size] = stencil.code[:placement.size]
        if stencil.cold:
            buffer[placement.cold_offset:placement.cold_offset + len(stencil.cold)] = stencil.cold
        uop = placement.uop
        parts = [(placement.offset, placement.size, stencil.holes),
                 (placement.cold_offset, placement.cold_size, stencil.cold_holes)]
        for start, size, holes in parts:
            for hole in holes:
                _patch_hole(hole, start, size, index, placement, placements, uop, labels, exits,
                            errors, data_offsets, got, units, keepalive, add,
                            COUNTERS + len(exit_offsets))
    for name, offset in data_offsets.items():
        stencil = stencils[name]
        buffer[offset:offset + len(stencil.data)] = stencil.data
        for hole in stencil.data_holes:
            if hole.value is HoleValue.SYMBOL and hole.reloc is Reloc.ABS64:
                base, target = BASE_ABSOLUTE, symbol_address(hole.symbol)
            elif hole.value is HoleValue.DATA:
                base, target = BASE_CODE, offset
            else:
                raise EmitError(f"{name}: data hole {hole} not supported")
            add(offset + hole.offset, hole.reloc, hole.value, hole.symbol, base,
                target + hole.addend, -1)
    for symbol, offset in got.items():
        add(offset, Reloc.ABS64, HoleValue.SYMBOL, symbol, BASE_ABSOLUTE,
            symbol_address(symbol), -1)

    code = _runtime.JitCode(bytes(buffer), bytes(patches), entry=0,
                            rwdata_words=COUNTERS + len(exit_offsets) + trace.cache_words,
                            nslots=trace.slots,
                            co=code_object,
                            keepalive=tuple(keepalive))
    return Emitted(code, placements, records, exit_offsets, data_offset, got_offset, list(got))


_SLOT_FIELDS = {HoleValue.OPARG_SLOT: "oparg", HoleValue.OPERAND0_SLOT: "operand0",
                HoleValue.OPERAND1_SLOT: "operand1"}


def _patch_hole(hole, start, size, index, placement, placements, uop, labels, exits, errors,
                data_offsets, got, units, keepalive, add, cache_base) -> None:
    """Resolve one hole of a placed stencil part (hot or cold) and record its patch."""
    if hole.offset + (8 if hole.reloc is Reloc.ABS64 else 4) > size:
        return  # the dropped trailing jump
    value = hole.value
    base, target = BASE_CODE, 0
    if value is HoleValue.CONTINUE:
        target = placements[index + 1].offset
    elif value is HoleValue.JUMP_TARGET:
        if uop.jump_to not in labels:
            raise EmitError(f"{uop.describe()}: no label for @{2 * uop.jump_to}")
        target = placements[labels[uop.jump_to]].offset
    elif value in (HoleValue.EXIT_TARGET, HoleValue.EXIT_AFTER):
        target = placements[exits[exit_key(uop, value)]].offset
    elif value is HoleValue.INSTR:
        base, target = _operand(CodeUnit(uop.offset), units, keepalive)
    elif value is HoleValue.ERROR_TARGET:
        target = placements[errors[uop.offset]].offset
    elif value is HoleValue.OPARG:
        base, target = BASE_ABSOLUTE, uop.oparg
    elif value is HoleValue.OPERAND0:
        base, target = _operand(uop.operand0, units, keepalive, cache_base)
    elif value is HoleValue.OPERAND1:
        base, target = _operand(uop.operand1, units, keepalive, cache_base)
    elif value in _SLOT_FIELDS:
        number = getattr(uop, _SLOT_FIELDS[value])
        if not isinstance(number, int) or not 0 <= number < (1 << 16):
            raise EmitError(f"{uop.describe()}: {_SLOT_FIELDS[value]} is not a slot number")
        base, target = BASE_ABSOLUTE, _runtime.SLOTS_OFFSET + SLOT_BYTES * number
    elif value is HoleValue.CODE:
        target = placement.offset
    elif value is HoleValue.COLD:
        target = placement.cold_offset
    elif value is HoleValue.DATA:
        target = data_offsets[placement.stencil]
    elif value is HoleValue.SYMBOL:
        if hole.reloc is Reloc.GOTREL32:
            target = got[hole.symbol]
        else:
            base, target = BASE_ABSOLUTE, symbol_address(hole.symbol)
    else:
        raise EmitError(f"{placement.stencil}: hole {value} not handled")
    add(start + hole.offset, hole.reloc, value, hole.symbol, base, target + hole.addend, index)
