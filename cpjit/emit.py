"""Lay out a trace's stencils, resolve every hole and make the executable code (uops -> machine code).

Layout of one compiled function, all in one mapping:

    [shim][uops in trace order][side-exit stubs][error stubs][cold code][read-only data][GOT]

and, apart, the read-write words: word 0 counts every side exit, word 1 + k
the exits through stub k, then come the uops' inline caches and profile words.

The build step splits each stencil into its hot path, which ends with the
jump to `_JIT_CONTINUE`, and its cold code (errors, side exits, deallocations).
Hot paths are placed one after the other, so each uop's trailing `jmp` to
the next one is dropped; the cold parts follow all the hot code.

Side-exit stubs are shared by the uops that resume at the same instruction
with the same exit steps (what unboxed values to box on the way out).  A stub
is one `_EXIT_STUB` whose operand is its exit record in the read-only data:
its counter word, the resume offset and the steps, which the runtime's
cpjit_side_exit() carries out (exits are rare: data beats code there).
Error stubs are shared per instruction.  External functions are called
through a GOT of absolute addresses after the code.

The patching itself (and every range check) is done by the C runtime
(csrc/jitcode.c): this module only says what goes where.  Compilation speed
matters here: each stencil's holes are turned once into a plan of plain
tuples, and the per-hole records a dump shows are only made when asked for.
"""

from __future__ import annotations

import array
import dataclasses
import struct
import types
from typing import Callable

from . import _runtime, stencil_table
from ._stencils import HoleValue, Reloc, Stencil
from .ir import EXIT_ACTIONS, LABEL, CacheWords, CodeUnit, Obj, RwWord, Sym, Trace, UOp

PATCH = struct.Struct("<IBBxxq")  # csrc/jitcode.c: offset, kind, base, value
TOTAL_EXITS = 0  # read-write word counting every side exit (CPJIT_RW_EXITS)
COUNTERS = 1  # first per-stub exit counter
KIND = {Reloc.ABS64: 0, Reloc.REL32: 1, Reloc.GOTREL32: 1, Reloc.ABS32S: 2, Reloc.ABS32: 3}
SLOT_BYTES = 16  # a raw-value slot: the value and its dirty flag (stencils/template.h)
BASE_ABSOLUTE, BASE_CODE, BASE_RWDATA = 0, 1, 2
SHIM = "shim"
EXIT_STUB = "_EXIT_STUB"
ERROR_STUB = "_ERROR_STUB"

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

    kind: str  # "shim", "uop", "exit" (a side-exit stub), "error"
    stencil: str
    offset: int  # of the hot code
    size: int
    uop: UOp | None = None
    target: int = -1  # exit/error stubs: the instruction offset they report
    cold_offset: int = -1
    cold_size: int = 0
    falls_through: bool = False  # the next placement is its _JIT_CONTINUE
    counter: int = -1  # exits: the stub's counter (word COUNTERS + counter)
    steps: tuple = ()  # exits: the ExitSteps its record holds
    # uops: the placement indexes of its exit, exit-after and error stubs (-1: none)
    exit_stub: int = -1
    exit_after_stub: int = -1
    error_stub: int = -1


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
    exit_offsets: list[int]  # resume offset (code units) of exit stub k == rw word k
    data_offset: int
    got_offset: int
    got_symbols: list[str]
    exit_records: dict[int, int]  # exit stub placement index -> offset of its record
    patch_bytes: bytes = b""  # the patches as handed to the runtime (PATCH records)
    _records: Callable[[], list[PatchRecord]] | None = None
    _patches: list[PatchRecord] | None = None

    @property
    def size(self) -> int:
        return self.code.size

    @property
    def patches(self) -> list[PatchRecord]:
        """Every patch written, with what it means (made on first use: dumps)."""
        if self._patches is None:
            self._patches = self._records() if self._records is not None else []
        return self._patches

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


@dataclasses.dataclass(frozen=True, slots=True)
class CodeData:
    """Operand: an offset in the compiled function's own read-only data."""

    offset: int

    def __repr__(self) -> str:
        return f"data+{self.offset:#x}"


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
    if isinstance(operand, CodeData):
        return BASE_CODE, operand.offset
    raise EmitError(f"unknown operand {operand!r}")


# -- per-stencil plans --

# What a hole is filled with, as small ints for the patch loop.
(_V_CONTINUE, _V_JUMP, _V_EXIT, _V_EXIT_AFTER, _V_ERROR, _V_OPARG, _V_OPERAND0, _V_OPERAND1,
 _V_INSTR, _V_CODE, _V_COLD, _V_DATA, _V_GOT, _V_SYMBOL, _V_OPARG_SLOT, _V_OPERAND0_SLOT,
 _V_OPERAND1_SLOT) = range(17)
_VALUE_CODES = {HoleValue.CONTINUE: _V_CONTINUE, HoleValue.JUMP_TARGET: _V_JUMP,
                HoleValue.EXIT_TARGET: _V_EXIT, HoleValue.EXIT_AFTER: _V_EXIT_AFTER,
                HoleValue.ERROR_TARGET: _V_ERROR, HoleValue.OPARG: _V_OPARG,
                HoleValue.OPERAND0: _V_OPERAND0, HoleValue.OPERAND1: _V_OPERAND1,
                HoleValue.INSTR: _V_INSTR, HoleValue.CODE: _V_CODE, HoleValue.COLD: _V_COLD,
                HoleValue.DATA: _V_DATA, HoleValue.OPARG_SLOT: _V_OPARG_SLOT,
                HoleValue.OPERAND0_SLOT: _V_OPERAND0_SLOT,
                HoleValue.OPERAND1_SLOT: _V_OPERAND1_SLOT}


@dataclasses.dataclass(slots=True)
class _Plan:
    """A stencil's holes as tuples (offset, width, kind, value code, addend,
    symbol, hole) and what the layout needs to know of it."""

    stencil: Stencil
    hot: tuple
    cold: tuple
    values: frozenset  # the HoleValues of its code holes
    got_symbols: tuple
    exits: bool = False  # has an EXIT_TARGET hole
    exits_after: bool = False  # has an EXIT_AFTER hole
    errors: bool = False  # has an ERROR_TARGET hole
    continues: bool = False  # has a CONTINUE hole


_plans: dict[str, _Plan] = {}
_plans_digest: str | None = None

# The stencils' holes as registered with the runtime (csrc/resolve.c), for
# the digest of the table they came from.
HOLE = struct.Struct("<iBBBxi4xq")  # offset, kind, value code, part, symbol, addend
_HOLE_SIZE = 24
PLACEMENT_WORDS = 17  # csrc/resolve.c P_*
_registered_digest: str | None = None
_stencil_ids: dict[str, int] = {}
_symbol_ids: dict[str, int] = {}


def _register() -> None:
    """Give the runtime every stencil's holes (once per stencil table)."""
    global _registered_digest
    digest = stencil_table.digest()
    if digest == _registered_digest:
        return
    stencils = stencil_table.stencils()
    symbols: dict[str, int] = {}
    holes_list = []
    for name, stencil in stencils.items():
        packed = bytearray()
        for part, holes in ((0, stencil.holes), (1, stencil.cold_holes)):
            for hole in holes:
                if hole.value is HoleValue.SYMBOL:
                    code = _V_GOT if hole.reloc is Reloc.GOTREL32 else _V_SYMBOL
                    symbol = symbols.setdefault(hole.symbol, len(symbols))
                else:
                    code, symbol = _VALUE_CODES[hole.value], -1
                packed += HOLE.pack(hole.offset, KIND[hole.reloc], code, part, symbol,
                                    hole.addend)
        holes_list.append(bytes(packed))
    addresses = []
    for symbol in symbols:
        try:
            addresses.append(symbol_address(symbol))
        except LookupError:
            addresses.append(0)  # resolve_patches refuses it if a hole needs it
    _runtime.register_stencils(holes_list, struct.pack(f"<{len(addresses)}q", *addresses))
    _stencil_ids.clear()
    _stencil_ids.update((name, k) for k, name in enumerate(stencils))
    _symbol_ids.clear()
    _symbol_ids.update(symbols)
    _registered_digest = digest


def _signed(value: int) -> int:
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def _plan_holes(holes) -> tuple:
    plan = []
    for hole in holes:
        if hole.value is HoleValue.SYMBOL:
            code = _V_GOT if hole.reloc is Reloc.GOTREL32 else _V_SYMBOL
        else:
            code = _VALUE_CODES[hole.value]
        width = 8 if hole.reloc is Reloc.ABS64 else 4
        plan.append((hole.offset, width, KIND[hole.reloc], code, hole.addend, hole.symbol, hole))
    return tuple(plan)


def _plan(name: str) -> _Plan:
    global _plans_digest
    digest = stencil_table.digest()
    if digest != _plans_digest:
        _plans.clear()
        _plans_digest = digest
    plan = _plans.get(name)
    if plan is None:
        stencil = stencil_table.stencils().get(name)
        if stencil is None:
            raise EmitError(f"no stencil for uop {name}")
        holes = stencil.holes + stencil.cold_holes
        got = tuple(dict.fromkeys(h.symbol for h in holes + stencil.data_holes
                                  if h.reloc is Reloc.GOTREL32))
        values = frozenset(h.value for h in holes)
        plan = _plans[name] = _Plan(stencil, _plan_holes(stencil.holes),
                                    _plan_holes(stencil.cold_holes), values, got,
                                    HoleValue.EXIT_TARGET in values,
                                    HoleValue.EXIT_AFTER in values,
                                    HoleValue.ERROR_TARGET in values,
                                    HoleValue.CONTINUE in values)
    return plan


# -- the emitter --

def exit_record(counter: int, resume: int, steps: tuple, keepalive: list) -> bytes:
    """The int64 words of an exit record (csrc/runtime.h, cpjit_side_exit)."""
    words = [counter, resume, len(steps)]
    for step in steps:
        value = step.value
        if isinstance(value, Obj):
            keepalive.append(value.value)
            value = id(value.value)
        words += (EXIT_ACTIONS[step.action], step.arg, value)
    return struct.pack(f"<{len(words)}q", *words)


def emit(trace: Trace) -> Emitted:
    code_object: types.CodeType = trace.code

    # 1. What goes where, in order: shim, uops, stubs.
    placements: list[Placement] = [Placement("shim", SHIM, 0, 0)]
    plans: list[_Plan] = [_plan(SHIM)]  # (checks that _plans is for this stencil table)
    known_plans = _plans
    labels: dict[int, int] = {}  # instruction offset -> placement index
    pending_labels: list[int] = []
    for uop in trace.uops:
        if uop.name == LABEL:
            pending_labels.append(uop.oparg)
            continue
        for label in pending_labels:
            labels[label] = len(placements)
        pending_labels.clear()
        plans.append(known_plans.get(uop.name) or _plan(uop.name))
        placements.append(Placement("uop", uop.name, 0, 0, uop, falls_through=True))
    if pending_labels:
        raise EmitError(f"labels {pending_labels} at the end of the trace")
    main_end = len(placements)
    placements[-1].falls_through = False
    placements[0].falls_through = True

    exits: dict[tuple, int] = {}  # exit key -> number of its stub, then placement index
    errors: dict[int, int] = {}  # instruction offset -> placement index
    exit_stubs: list[tuple] = []  # exit keys, in stub order

    def stub_for(key: tuple) -> int:
        """The number of the exit stub for `key` (one stub per resume point and steps)."""
        stub = exits.get(key)
        if stub is None:
            stub = exits[key] = len(exit_stubs)
            exit_stubs.append(key)
        return stub

    for index in range(1, main_end):
        placement, plan = placements[index], plans[index]
        uop = placement.uop
        if plan.exits:
            placement.exit_stub = stub_for((uop.exit_to, uop.exit_steps))
        if plan.exits_after:
            placement.exit_after_stub = stub_for((uop.exit_after, uop.exit_after_steps))
        if plan.errors:
            errors[uop.offset] = -1
    exit_offsets = []
    exit_plan, error_plan = _plan(EXIT_STUB), _plan(ERROR_STUB)
    for k, key in enumerate(exit_stubs):
        resume, steps = key
        if resume < 0:
            raise EmitError(f"a uop can side-exit but has no resume offset (steps {steps})")
        exit_offsets.append(resume)
        exits[key] = len(placements)
        stub = UOp(EXIT_STUB, offset=resume, comment=f"resume @{2 * resume}")
        placements.append(Placement("exit", EXIT_STUB, 0, 0, stub, resume, counter=k,
                                    steps=steps))
        plans.append(exit_plan)
    for offset in sorted(errors):
        errors[offset] = len(placements)
        stub = UOp(ERROR_STUB, operand0=CodeUnit(offset), offset=offset,
                   comment=f"raised @{2 * offset}")
        placements.append(Placement("error", ERROR_STUB, 0, 0, stub, offset))
        plans.append(error_plan)
    first_exit = main_end  # exit stub k is placement main_end + k
    for index in range(1, main_end):
        placement = placements[index]
        if placement.exit_stub >= 0:
            placement.exit_stub += first_exit
        if placement.exit_after_stub >= 0:
            placement.exit_after_stub += first_exit
        if plans[index].errors:
            placement.error_stub = errors[placement.uop.offset]

    # 2. Sizes and offsets (a trailing jump to the next placement is dropped).
    position = 0
    for placement, plan in zip(placements, plans):
        stencil = plan.stencil
        if not placement.falls_through and plan.continues:
            raise EmitError(f"{placement.uop.describe()} falls off the end of the code")
        placement.offset = position
        placement.size = size = (stencil.body_size if stencil.trailing_jump
                                 and placement.falls_through else len(stencil.code))
        position += size
    for placement, plan in zip(placements, plans):
        cold = plan.stencil.cold
        if cold:
            placement.cold_offset = position
            placement.cold_size = len(cold)
            position += len(cold)

    # 3. Read-only data (one copy per stencil, then the exit records) and the GOT.
    keepalive: list = []
    data_offsets: dict[str, int] = {}
    got: dict[str, int] = {}
    data_start = position
    for placement, plan in zip(placements, plans):
        stencil = plan.stencil
        if stencil.data and placement.stencil not in data_offsets:
            position += -position % max(stencil.data_align, 1)
            data_offsets[placement.stencil] = position
            position += len(stencil.data)
        for symbol in plan.got_symbols:
            got.setdefault(symbol, 0)
    records: list[tuple[int, bytes]] = []
    exit_records: dict[int, int] = {}
    for key in exit_stubs:
        index = exits[key]
        placement = placements[index]
        record = exit_record(COUNTERS + placement.counter, key[0], key[1], keepalive)
        position += -position % 8
        exit_records[index] = position
        placement.uop.operand0 = CodeData(position)
        records.append((position, record))
        position += len(record)
    data_offset = min(data_offsets.values(), default=data_start)
    position += -position % 8
    got_offset = position
    for symbol in got:
        got[symbol] = position
        position += 8
    size = position

    # 4. Bytes and patches.
    units = _runtime.code_units_address(code_object)
    cache_base = COUNTERS + len(exit_offsets)
    buffer = bytearray(size)
    for placement, plan in zip(placements, plans):
        stencil = plan.stencil
        buffer[placement.offset:placement.offset + placement.size] = \
            stencil.code[:placement.size]
        if stencil.cold:
            buffer[placement.cold_offset:placement.cold_offset + placement.cold_size] = \
                stencil.cold
    for offset, record in records:
        buffer[offset:offset + len(record)] = record
    for name, offset in data_offsets.items():
        data = stencil_table.stencils()[name].data
        buffer[offset:offset + len(data)] = data
    layout = _Layout(placements, plans, labels, exits, errors, data_offsets, got, units,
                     cache_base)
    patches = resolve_patches(layout, keepalive)

    code = _runtime.JitCode(bytes(buffer), bytes(patches), entry=0,
                            rwdata_words=cache_base + trace.cache_words,
                            nslots=trace.slots,
                            co=code_object,
                            keepalive=tuple(keepalive))

    def patch_records() -> list[PatchRecord]:
        made: list[PatchRecord] = []
        _patch_all(layout, [], lambda offset, kind, base, value, reloc, hole, symbol, index:
                   made.append(PatchRecord(offset, reloc, hole, symbol, base, value, index)))
        return made

    return Emitted(code, placements, exit_offsets, data_offset, got_offset, list(got),
                   exit_records, patches, patch_records)


def resolve_patches(layout: "_Layout", keepalive: list) -> bytes:
    """The packed patches of a laid-out function: each placement described by
    the values its holes may need, the holes resolved by the runtime
    (csrc/resolve.c; _patch_all is the same in Python), then the holes of the
    read-only data and the GOT entries."""
    _register()
    placements, plans, labels = layout.placements, layout.plans, layout.labels
    units, cache_base, data_offsets = layout.units, layout.cache_base, layout.data_offsets
    words = array.array("q")
    last = len(placements) - 1
    for index, (placement, plan) in enumerate(zip(placements, plans)):
        uop = placement.uop
        jump = exit_ = exit_after = error = -1
        following = placements[index + 1].offset if index < last else -1
        data = data_offsets.get(placement.stencil, -1)
        if uop is None:  # the shim
            words.extend((_stencil_ids[placement.stencil], placement.offset, placement.size,
                          placement.cold_offset, placement.cold_size, following,
                          -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, data))
            continue
        if uop.jump_to >= 0 and uop.jump_to in labels:
            jump = placements[labels[uop.jump_to]].offset
        if placement.exit_stub >= 0:
            exit_ = placements[placement.exit_stub].offset
        if placement.exit_after_stub >= 0:
            exit_after = placements[placement.exit_after_stub].offset
        if placement.error_stub >= 0:
            error = placements[placement.error_stub].offset
        operand0, operand1 = uop.operand0, uop.operand1
        base0, value0 = (BASE_ABSOLUTE, operand0) if type(operand0) is int else \
            _operand(operand0, units, keepalive, cache_base)
        base1, value1 = (BASE_ABSOLUTE, operand1) if type(operand1) is int else \
            _operand(operand1, units, keepalive, cache_base)
        words.extend((_stencil_ids[placement.stencil], placement.offset, placement.size,
                      placement.cold_offset, placement.cold_size, following,
                      jump, exit_, exit_after, error, uop.oparg, base0, _signed(value0),
                      base1, _signed(value1), units + 2 * uop.offset, data))
    got_offsets = array.array("q", [-1]) * len(_symbol_ids)
    for symbol, offset in layout.got.items():
        got_offsets[_symbol_ids[symbol]] = offset
    try:
        patches = bytearray(_runtime.resolve_patches(words.tobytes(), got_offsets.tobytes(),
                                                     _runtime.SLOTS_OFFSET))
    except ValueError as error:
        raise EmitError(str(error)) from None
    _patch_data_and_got(layout, lambda offset, kind, base, value, *_:
                        patches.extend(PATCH.pack(offset, kind, base, value)))
    return bytes(patches)


@dataclasses.dataclass(slots=True)
class _Layout:
    placements: list[Placement]
    plans: list[_Plan]
    labels: dict[int, int]
    exits: dict[tuple, int]
    errors: dict[int, int]
    data_offsets: dict[str, int]
    got: dict[str, int]
    units: int
    cache_base: int


def _patch_all(layout: _Layout, keepalive: list, add) -> None:
    """Resolve every hole and call add(offset, kind, base, value, reloc, hole,
    symbol, placement index) for each (value: any 64-bit pattern, signed)."""
    placements, labels, exits, errors = (layout.placements, layout.labels, layout.exits,
                                         layout.errors)
    units, cache_base, got = layout.units, layout.cache_base, layout.got
    slots_offset = _runtime.SLOTS_OFFSET
    for index, (placement, plan) in enumerate(zip(placements, layout.plans)):
        uop = placement.uop
        for start, size, holes in ((placement.offset, placement.size, plan.hot),
                                   (placement.cold_offset, placement.cold_size, plan.cold)):
            for offset, width, kind, code, addend, symbol, hole in holes:
                if offset + width > size:
                    continue  # the dropped trailing jump
                base = BASE_CODE
                if code == _V_CONTINUE:
                    target = placements[index + 1].offset
                elif code == _V_EXIT:
                    target = placements[exits[(uop.exit_to, uop.exit_steps)]].offset
                elif code == _V_ERROR:
                    target = placements[errors[uop.offset]].offset
                elif code == _V_OPARG_SLOT or code == _V_OPERAND0_SLOT \
                        or code == _V_OPERAND1_SLOT:
                    number = (uop.oparg if code == _V_OPARG_SLOT else
                              uop.operand0 if code == _V_OPERAND0_SLOT else uop.operand1)
                    if not isinstance(number, int) or not 0 <= number < (1 << 16):
                        raise EmitError(f"{uop.describe()}: {hole.value} is not a slot number")
                    base, target = BASE_ABSOLUTE, slots_offset + SLOT_BYTES * number
                elif code == _V_OPARG:
                    base, target = BASE_ABSOLUTE, uop.oparg
                elif code == _V_OPERAND0:
                    base, target = _operand(uop.operand0, units, keepalive, cache_base)
                elif code == _V_OPERAND1:
                    base, target = _operand(uop.operand1, units, keepalive, cache_base)
                elif code == _V_GOT:
                    target = got[symbol]
                elif code == _V_JUMP:
                    if uop.jump_to not in labels:
                        raise EmitError(f"{uop.describe()}: no label for @{2 * uop.jump_to}")
                    target = placements[labels[uop.jump_to]].offset
                elif code == _V_EXIT_AFTER:
                    target = placements[exits[(uop.exit_after, uop.exit_after_steps)]].offset
                elif code == _V_INSTR:
                    base, target = BASE_ABSOLUTE, units + 2 * uop.offset
                elif code == _V_COLD:
                    target = placement.cold_offset
                elif code == _V_CODE:
                    target = placement.offset
                elif code == _V_DATA:
                    target = layout.data_offsets[placement.stencil]
                elif code == _V_SYMBOL:
                    base, target = BASE_ABSOLUTE, symbol_address(symbol)
                else:
                    raise EmitError(f"{placement.stencil}: hole {hole.value} not handled")
                value = target + addend
                value = (value + (1 << 63)) % (1 << 64) - (1 << 63)
                add(start + offset, kind, base, value, hole.reloc, hole.value, symbol, index)
    _patch_data_and_got(layout, add)


def _patch_data_and_got(layout: _Layout, add) -> None:
    """The holes of the stencils' read-only data, and the GOT entries."""
    got = layout.got
    for name, offset in layout.data_offsets.items():
        stencil = stencil_table.stencils()[name]
        for hole in stencil.data_holes:
            if hole.value is HoleValue.SYMBOL and hole.reloc is Reloc.ABS64:
                base, target = BASE_ABSOLUTE, symbol_address(hole.symbol)
            elif hole.value is HoleValue.DATA:
                base, target = BASE_CODE, offset
            else:
                raise EmitError(f"{name}: data hole {hole} not supported")
            add(offset + hole.offset, KIND[hole.reloc], base, target + hole.addend, hole.reloc,
                hole.value, hole.symbol, -1)
    for symbol, offset in got.items():
        add(offset, KIND[Reloc.ABS64], BASE_ABSOLUTE, symbol_address(symbol), Reloc.ABS64,
            HoleValue.SYMBOL, symbol, -1)
