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

Compilation speed matters here, so the work is done in C: the runtime, which
has every stencil's bytes and holes registered once per stencil table, walks
the trace's uops (reading their fields from their slots), describes each in a
few words (which stencil, which jump target and stubs, its oparg and
operands), lays them out, copies the bytes and resolves the holes
(csrc/layout.c, csrc/resolve.c; the range checks are there and in
csrc/jitcode.c).  Python is only called back for operands that are not ints
(_encode_operand) and exit step values that are not ints (_step_value).
What dumps show of the result (the placements, each patch with its meaning)
is only made when asked for, and the patches are then explained by
_patch_all, the same resolution in Python.
"""

from __future__ import annotations

import dataclasses
import functools
import struct

from . import _runtime, stencil_table
from ._stencils import HoleValue, Reloc, Stencil, split_variant
from .ir import EXIT_ACTIONS, LABEL, CacheWords, CodeUnit, Obj, RwWord, Sym, Trace, UOp

PATCH = struct.Struct("<IBBxxq")  # csrc/jitcode.c: offset, kind, base, value
TOTAL_EXITS = 0  # read-write word counting every side exit (CPJIT_RW_EXITS)
COUNTERS = 1  # first per-stub exit counter
KIND = {Reloc.ABS64: 0, Reloc.REL32: 1, Reloc.GOTREL32: 1, Reloc.ABS32S: 2, Reloc.ABS32: 3}
SLOT_BYTES = 16  # a raw-value slot: the value and its dirty flag (stencils/template.h)
BASE_ABSOLUTE, BASE_CODE, BASE_RWDATA = 0, 1, 2
# An operand base only handed to the runtime: index of a cache word, which the
# runtime places after the exit counters (csrc/layout.c BASE_CACHE).
BASE_CACHE = 3
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
    """The compiled code, and what dumps and recompilations read of its layout."""

    code: object  # _runtime.JitCode
    exit_offsets: list[int]  # resume offset (code units) of exit stub k == rw word k
    data_offset: int
    got_offset: int
    patch_bytes: bytes  # the patches as handed to the runtime (PATCH records)
    _made: _Made = dataclasses.field(repr=False)

    @property
    def size(self) -> int:
        return self.code.size

    @functools.cached_property
    def placements(self) -> list[Placement]:
        """Where each stencil instance went (made on first use: dumps)."""
        return self._made.placements()

    @functools.cached_property
    def got_symbols(self) -> list[str]:
        return list(self._made.got_offsets())

    @functools.cached_property
    def exit_records(self) -> dict[int, int]:
        """Exit stub placement index -> offset of its exit record."""
        first = self._made.count
        return {first + k: offset for k, offset in enumerate(self._made.record_offsets())}

    @functools.cached_property
    def patches(self) -> list[PatchRecord]:
        """Every patch written, with what it means (made on first use: dumps)."""
        made: list[PatchRecord] = []
        _patch_all(self._made.layout(self.placements), [],
                   lambda offset, kind, base, value, reloc, hole, symbol, index:
                   made.append(PatchRecord(offset, reloc, hole, symbol, base, value, index)))
        return made

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


def _encode_operand(operand, units: int, keepalive: list) -> tuple[int, int]:
    """(base, value) of a uop operand as the runtime takes it (BASE_CACHE included)."""
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
        return BASE_CACHE, operand.index
    if isinstance(operand, CodeData):
        return BASE_CODE, operand.offset
    raise EmitError(f"unknown operand {operand!r}")


def _operand(operand, units: int, keepalive: list, cache_base: int = 0) -> tuple[int, int]:
    """(base, value) of a uop operand, cache words resolved: word cache_base + index."""
    base, value = _encode_operand(operand, units, keepalive)
    if base == BASE_CACHE:
        return BASE_RWDATA, 8 * (cache_base + value)
    return base, value


# -- per-stencil plans --

# What a hole is filled with, as small ints (csrc/cpjit.h CPJIT_HOLE_*, same order).
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


def _value_code(hole) -> int:
    if hole.value is HoleValue.SYMBOL:
        return _V_GOT if hole.reloc is Reloc.GOTREL32 else _V_SYMBOL
    if hole.reloc is Reloc.GOTREL32:
        raise EmitError(f"a GOT-relative hole that names no symbol: {hole}")
    return _VALUE_CODES[hole.value]


@dataclasses.dataclass(slots=True)
class _Plan:
    """A stencil's holes as tuples (offset, width, kind, value code, addend,
    symbol, hole), for _patch_all."""

    stencil: Stencil
    hot: tuple
    cold: tuple


_plans: dict[str, _Plan] = {}
_plans_digest: str | None = None


def _plan_holes(holes) -> tuple:
    return tuple((hole.offset, 8 if hole.reloc is Reloc.ABS64 else 4, KIND[hole.reloc],
                  _value_code(hole), hole.addend, hole.symbol, hole) for hole in holes)


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
        plan = _plans[name] = _Plan(stencil, _plan_holes(stencil.holes),
                                    _plan_holes(stencil.cold_holes))
    return plan


# -- the stencils as the runtime has them --

# A hole as registered with the runtime (csrc/resolve.c decodes it).
HOLE = struct.Struct("<iBBBxi4xq")  # offset, kind, value code, part, symbol, addend
_registered_digest: str | None = None
_stencil_ids: dict[str, int] = {}
_stencil_names: list[str] = []  # by stencil id
_symbol_ids: dict[str, int] = {}
_symbol_names: list[str] = []  # by symbol id


def _pack_holes(parts, symbols: dict[str, int]) -> bytes:
    packed = bytearray()
    for part, holes in enumerate(parts):
        for hole in holes:
            code = _value_code(hole)
            symbol = symbols.setdefault(hole.symbol, len(symbols)) \
                if code in (_V_GOT, _V_SYMBOL) else -1
            packed += HOLE.pack(hole.offset, KIND[hole.reloc], code, part, symbol, hole.addend)
    return bytes(packed)


def _pack_variants(ids: dict[str, int]) -> bytes:
    """The oparg variants as the runtime takes them: int64 triples (the uop's
    stencil, oparg, the variant's stencil), from the variants' names."""
    triples = []
    for name, variant in ids.items():
        uop, oparg = split_variant(name)
        if oparg is not None:
            if uop not in ids:
                raise EmitError(f"the stencil table has variant {name} but no {uop}")
            triples += (ids[uop], oparg, variant)
    return struct.pack(f"<{len(triples)}q", *triples)


def _register() -> None:
    """Give the runtime every stencil: its bytes and holes (once per stencil
    table), and which are oparg variants of which (the runtime keeps them
    with the uop's stencil, so that picking one costs an array lookup)."""
    global _registered_digest, _stencil_names, _symbol_names
    digest = stencil_table.digest()
    if digest == _registered_digest:
        return
    stencils = stencil_table.stencils()
    symbols: dict[str, int] = {}
    entries = [(name, stencil.code, stencil.body_size, stencil.cold, stencil.data,
                max(stencil.data_align, 1),
                _pack_holes((stencil.holes, stencil.cold_holes), symbols),
                _pack_holes((stencil.data_holes,), symbols))
               for name, stencil in stencils.items()]
    addresses = []
    for symbol in symbols:
        try:
            addresses.append(symbol_address(symbol))
        except LookupError:
            addresses.append(0)  # the runtime refuses it if a hole needs it
    names = list(stencils)
    ids = {name: k for k, name in enumerate(names)}
    if EXIT_STUB not in ids or ERROR_STUB not in ids or SHIM not in ids:
        raise EmitError("the stencil table has no shim or stubs")
    _runtime.register_stencils(entries, struct.pack(f"<{len(addresses)}q", *addresses),
                               _pack_variants(ids), ids[SHIM], ids[EXIT_STUB], ids[ERROR_STUB])
    _stencil_ids.clear()
    _stencil_ids.update(ids)
    _stencil_names = names
    _symbol_ids.clear()
    _symbol_ids.update(symbols)
    _symbol_names = list(symbols)
    _registered_digest = digest


# -- the emitter --

# The words describing the shim or a uop, as the runtime made them (csrc/layout.c
# U_*): stencil, jump target (placement index), exit stub, exit-after stub,
# error stub (numbers among the stubs), oparg, operand 0 (base, value),
# operand 1, the offset of its instruction (code units); -1 for what it has not.
(U_STENCIL, U_JUMP, U_EXIT, U_EXIT_AFTER, U_ERROR, U_OPARG, U_BASE0, U_VALUE0, U_BASE1,
 U_VALUE1, U_INSTR) = range(11)
U_WORDS = 11


def _step_value(value, keepalive: list) -> int:
    """The word of an exit step's value that is not an int (an Obj)."""
    if not isinstance(value, Obj):
        raise EmitError(f"exit step value {value!r}")
    keepalive.append(value.value)
    return id(value.value)


def emit(trace: Trace) -> Emitted:
    """The machine code of `trace`, mapped and patched (raises EmitError)."""
    _register()
    units = _runtime.code_units_address(trace.code)
    keepalive: list = []
    uops = tuple(trace.uops)
    try:
        (jit_code, patches, words, exit_keys, error_offsets, geometry, records, data, got,
         data_start, got_offset) = _runtime.emit_trace(
            uops, UOp, LABEL, trace.code, units, trace.cache_words, trace.slots,
            _runtime.SLOTS_OFFSET, EXIT_ACTIONS, _encode_operand, _step_value, keepalive)
    except (ValueError, OverflowError, TypeError) as error:  # a malformed trace
        raise EmitError(str(error)) from None
    made = _Made(uops, words, exit_keys, error_offsets, geometry, records, data, got, units,
                 _stencil_names, _symbol_names)
    data_offset = int.from_bytes(data[8:16], "little", signed=True) if data else data_start
    return Emitted(jit_code, [resume for resume, _ in exit_keys], data_offset, got_offset,
                   patches, made)


@dataclasses.dataclass
class _Made:
    """What emit() gave the runtime and got back, to make what dumps read."""

    uops: tuple  # the trace's uops, labels included
    words: bytes  # int64: U_WORDS for the shim and each uop
    exits: tuple  # the exit stubs' keys (resume offset, steps)
    errors: tuple  # the error stubs' instruction offsets
    geometry: bytes  # int64 per placement: hot offset and size, cold offset and size
    records: bytes  # int64: the offset of each exit record
    data: bytes  # int64 pairs: (stencil id, offset of its data)
    got: bytes  # int64 pairs: (symbol id, offset of its GOT entry)
    units: int
    stencil_names: list[str]
    symbol_names: list[str]

    @property
    def count(self) -> int:
        """The number of placements before the stubs: the shim and the uops."""
        return len(self.words) // (8 * U_WORDS)

    def labels(self) -> dict[int, int]:
        """Instruction offset -> index of the placement there (the uop after its label)."""
        labels, count = {}, 1
        for uop in self.uops:
            if uop.name == LABEL:
                labels[uop.oparg] = count
            else:
                count += 1
        return labels

    def record_offsets(self) -> list[int]:
        return list(memoryview(self.records).cast("q"))

    def got_offsets(self) -> dict[str, int]:
        pairs = memoryview(self.got).cast("q")
        return {self.symbol_names[pairs[k]]: pairs[k + 1] for k in range(0, len(pairs), 2)}

    def data_offsets(self) -> dict[str, int]:
        pairs = memoryview(self.data).cast("q")
        return {self.stencil_names[pairs[k]]: pairs[k + 1] for k in range(0, len(pairs), 2)}

    def placements(self) -> list[Placement]:
        geometry = memoryview(self.geometry).cast("q")
        count, first_exit = self.count, self.count
        first_error = first_exit + len(self.exits)

        def place(index: int, kind: str, stencil: str, uop: UOp | None, **fields) -> Placement:
            offset, size, cold_offset, cold_size = geometry[4 * index:4 * index + 4]
            return Placement(kind, stencil, offset, size, uop, cold_offset=cold_offset,
                             cold_size=cold_size, **fields)

        def stub(number: int, first: int) -> int:
            return first + number if number >= 0 else -1

        placements = [place(0, "shim", SHIM, None, falls_through=True)]
        uops = [uop for uop in self.uops if uop.name != LABEL]
        all_words = memoryview(self.words).cast("q")
        for index, uop in enumerate(uops, 1):
            words = all_words[index * U_WORDS:(index + 1) * U_WORDS]
            # (The stencil the runtime placed: an oparg variant's, maybe.)
            stencil = self.stencil_names[words[U_STENCIL]]
            placements.append(place(index, "uop", stencil, uop,
                                    falls_through=index < count - 1,
                                    exit_stub=stub(words[U_EXIT], first_exit),
                                    exit_after_stub=stub(words[U_EXIT_AFTER], first_exit),
                                    error_stub=stub(words[U_ERROR], first_error)))
        for k, ((resume, steps), record) in enumerate(zip(self.exits, self.record_offsets())):
            uop = UOp(EXIT_STUB, operand0=CodeData(record), offset=resume,
                      comment=f"resume @{2 * resume}")
            placements.append(place(first_exit + k, "exit", EXIT_STUB, uop, target=resume,
                                    counter=k, steps=steps))
        for k, offset in enumerate(self.errors):
            uop = UOp(ERROR_STUB, operand0=CodeUnit(offset), offset=offset,
                      comment=f"raised @{2 * offset}")
            placements.append(place(first_error + k, "error", ERROR_STUB, uop, target=offset))
        return placements

    def layout(self, placements: list[Placement]) -> _Layout:
        """The layout as _patch_all reads it."""
        first_exit = self.count
        first_error = first_exit + len(self.exits)
        return _Layout(placements, [_plan(p.stencil) for p in placements], self.labels(),
                       {key: first_exit + k for k, key in enumerate(self.exits)},
                       {offset: first_error + k for k, offset in enumerate(self.errors)},
                       self.data_offsets(), self.got_offsets(), self.units,
                       COUNTERS + len(self.exits))


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
