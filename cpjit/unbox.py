"""Unboxing: ints and floats as raw machine values in frame-side slots (typed uops -> raw uops).

Raw values live in JitState slots (stencils/template.h): slot j for local j,
slot nlocals+d for the stack item at depth d.  The pass walks the trace with
an abstract stack whose top part may be *virtual* (not in the frame's stack):

    raw    the value is in a slot (an unboxed int64 or double)
    local  a pending load of a local known to hold an int or float
    const  a pending int or float constant

Everything below the virtual part is boxed on the real stack, as the
interpreter has it.  Typed arithmetic, compares, range iteration and list
subscripts with an int index consume virtual items directly; any other uop
first materializes (boxes and pushes) the virtual items, in order.

Loops: in each outermost loop, int and float locals whose type the analysis
proves at every use live in their slots ("raw locals").  They are unboxed on
entry to the loop and boxed back into the frame (when they changed: a dirty
flag) wherever the frame must be right: before code that can run Python code
or raise, on the way out of the loop, and in side-exit stubs.

Side exits see the abstract state of their uop: uop.exit_steps box the
virtual items and the raw locals before the interpreter takes over.
Overflow, division by zero and ints too big for 64 bits side-exit, and the
interpreter redoes the instruction on boxed values.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import struct

from . import _runtime, analysis, stencil_table
from .analysis import EFFECTS
from .ir import LABEL, ExitStep, Obj, Sym, Trace, UOp, jumps_into, positions
from .ir import names as uop_names

I64, F64 = "i64", "f64"
_COPY_SLOT = {I64: "_COPY_SLOT_I64", F64: "_COPY_SLOT_F64"}  # (the kind marks a local dirty)
_BOX_INSERTS = {I64: "_BOX_INSERT_I64", F64: "_BOX_INSERT_F64"}
_KIND = {int: I64, float: F64}
# Exit step actions (ir.EXIT_ACTIONS), as literals: interned strings.
_BOX_ACTIONS = {I64: "box_i64", F64: "box_f64"}
_SYNC_ACTIONS = {I64: "sync_i64", F64: "sync_f64"}
_INT_OPS = {"_BINARY_OP_ADD_INT": "_ADD_I64", "_BINARY_OP_SUBTRACT_INT": "_SUB_I64",
            "_BINARY_OP_MULTIPLY_INT": "_MUL_I64", "_BINARY_OP_FLOOR_DIVIDE_INT": "_FLOORDIV_I64",
            "_BINARY_OP_REMAINDER_INT": "_MOD_I64"}
_BITWISE = ("_AND_I64", "_OR_I64", "_XOR_I64")
_FLOAT_OPS = ("_ADD_F64", "_SUB_F64", "_MUL_F64", "_DIV_F64")
# Generic operators that become float arithmetic when both operands are
# numbers and one is a float.
_GENERIC_FLOAT_OPS = {"_BINARY_OP_ADD": "_ADD_F64", "_BINARY_OP_SUBTRACT": "_SUB_F64",
                      "_BINARY_OP_MULTIPLY": "_MUL_F64", "_BINARY_OP_TRUE_DIVIDE": "_DIV_F64"}
_LOCAL_USERS = frozenset({"_DELETE_FAST", "_BINARY_OP_INPLACE_ADD_STR", "_MAKE_CELL",
                          "_LOAD_DEREF", "_STORE_DEREF"})
_LOCAL_ACCESSES = _LOCAL_USERS | {"_LOAD_FAST", "_STORE_FAST"}
_TRAMPOLINE_LABELS = 1 << 24  # labels made by this pass: above any bytecode offset


@dataclasses.dataclass(frozen=True, eq=False)
class Virtual:
    """A stack item not in the frame's stack (see the module doc).  Compared
    and hashed by identity (in C): the walk's exit-steps cache goes by it."""

    how: str  # "raw", "local" or "const"
    kind: str  # I64 or F64
    slot: int = -1  # raw: where the value is
    local: int = -1  # local: which local
    value: object = None  # const: the constant
    guard: type | None = None  # local: a type guard still to check if it is boxed
    # The action and value of the exit step that boxes it (see _exit_steps),
    # made with the item: the walk makes exit steps for many states.
    exit_action: str = ""
    exit_value: object = 0


@functools.lru_cache(maxsize=None)
def _raw_item(kind: str, slot: int) -> Virtual:
    """The raw item of `kind` in `slot`.  Items are immutable, so each is one
    shared object: cheap to make, and the same state is the same objects
    (which the walk's exit-steps cache goes by).  (Its exit action is a
    literal of _BOX_ACTIONS, interned: the stack walk, csrc/stackwalk.c, tells
    actions apart by address.)"""
    return Virtual("raw", kind, slot=slot, exit_action=_BOX_ACTIONS[kind], exit_value=slot)


@functools.lru_cache(maxsize=None)
def _local_item(kind: str, local: int) -> Virtual:
    """The pending load of `local` (of `kind`), not yet guarded; shared likewise."""
    return Virtual("local", kind, local=local, exit_action="local", exit_value=local)


def _const_item(value: int | float) -> Virtual:
    """The pending constant `value`."""
    return Virtual("const", _KIND[type(value)], value=value, exit_action="const",
                   exit_value=Obj(value))


def _fits(value) -> bool:
    return -(1 << 63) <= value < (1 << 63)


def _is_number(value) -> bool:
    """A constant that can be raw: a float, or an int that fits in 64 bits."""
    return type(value) is float or (type(value) is int and _fits(value))


class _Walk(_runtime.WalkCore):
    """The rewrite.  `stack` is the abstract stack: None for an item boxed in
    the frame's stack, a Virtual for one that is not (a hole in the real
    stack).  Invariant: a uop is emitted while the abstract state is the one
    before it runs (its side exit boxes exactly that state, in place); the
    state is updated after.

    The methods most uops go through are C, in the base (csrc/unboxwalk.c;
    as Python they took some 40 % of the pass), on the state this class sets:
      emit(name, oparg=0, operand0=0, operand1=0, *, jump_to=-1): a new uop at
        the current one, with the exit steps where the walk is if it can exit;
      keep(uop): an original uop (a copy, if its exits need steps);
      generic(uop): a uop on objects; when nothing is unboxed it comes out as
        it is, else the virtual items it looks at are boxed first (all of the
        stack for a jump target or a uop reading below its inputs:
        materialize), the raw locals are synced before code that needs the
        frame, and its exits get the steps that box what stays unboxed;
      exit_steps(): those steps where the walk is: the raw locals' sync steps
        when nothing is virtual, else made once per (sync steps, stack items)
        by _exit_steps() (each virtual item boxed into its place, deepest
        first, then the sync steps) and interned;
      intern(steps): the one tuple of these exit steps in this compilation
        (emit finds exit stubs by (resume, steps): the same object compares
        at once);
      sync_locals(steps=None): box the raw locals into the frame, but those
        boxed since their last store on the straight-line path here (clean);
      has_virtual(): whether some stack item is virtual.
    """

    def __init__(self, trace: Trace, states, region_at, walked: list[int],
                 no_speculation: frozenset[int] = frozenset(),
                 written: dict[int, frozenset[int]] | None = None):
        """`walked`: the indexes of the uops to walk even where nothing is
        unboxed (see copy_plain): those that may start unboxing (a load of an
        int or float local or constant, typed arithmetic on boxed operands,
        range iteration) and where each loop with raw locals starts.
        `written`: id(region) -> the locals its loop stores into."""
        self.trace = trace
        self.states = states
        self.flags = _uop_flags()
        self.deopts = self.flags.deopts
        # (What the C methods read: see csrc/unboxwalk.c.)
        self.generic_info = _GENERIC
        self.uop_type = UOp
        self.exit_step_type = ExitStep
        self.region_at = region_at  # uop index -> {local: kind} of its loop, or None
        self.walked = walked
        self.no_speculation = no_speculation  # offsets whose side exits kept being taken
        entry = states[0] if states and states[0] is not None else analysis.entry_state(trace)
        self.nlocals = len(entry.locals)
        self.nslots = self.nlocals + trace.code.co_stacksize + 1
        self.out: list[UOp] = []
        self.stack: list[Virtual | None] = []
        self.raw: dict[int, str] = {}  # raw locals where we are (see enter())
        self.raw_items: dict[int, Virtual] = {}  # and their items (each in its slot)
        self.syncs: tuple[tuple[str, int, bool], ...] = ()  # their sync uops (name, local, deopts)
        self.sync_steps: tuple[ExitStep, ...] = ()  # and exit steps
        self.written = written or {}
        # Raw locals boxed into the frame since they were last stored, on the
        # straight-line path walked (emptied at every label: a join).
        self.clean: set[int] = set()
        self.used_slots = False
        self.current: UOp | None = None
        self.consumers: dict[int, tuple[int | None, int]] = {}  # (see consumer())
        # (id(sync_steps), *stack) -> exit steps: see exit_steps()
        self.exit_cache: dict[tuple, tuple] = {}
        self.interned: dict[tuple, tuple] = {(): ()}  # exit steps -> the one equal tuple

    # -- helpers --

    def temp(self, position: int) -> int:
        """The slot of the stack item at `position` (0: the bottom)."""
        self.used_slots = True
        return self.nlocals + position

    def boxed_above(self, position: int) -> int:
        return self.stack[position + 1:].count(None)

    @staticmethod
    def _insert_uop(item: Virtual) -> tuple[str, object]:
        """The uop (name, operand0) that boxes `item` into the real stack."""
        if item.how == "raw":
            return _BOX_INSERTS[item.kind], item.slot
        if item.how == "local":
            return "_LOCAL_INSERT", item.local
        return "_CONST_INSERT", Obj(item.value)

    def materialize(self, top: int | None = None, *, spare: int = 0) -> None:
        """Box the virtual items among the top `top` stack items (all by
        default) into their places, deepest first, except the topmost `spare`
        items (the operands a raw uop is about to consume)."""
        if self.stack.count(None) == len(self.stack):
            return  # (the common case: nothing virtual)
        first = 0 if top is None else max(0, len(self.stack) - top)
        for position in range(first, len(self.stack) - spare):
            if self.stack[position] is not None:
                self.materialize_at(position)

    def materialize_at(self, position: int) -> None:
        """Box the virtual item at `position` into its place (a local not yet
        checked to have the type the code counts on gets its guard there)."""
        item = self.stack[position]
        name, operand0 = self._insert_uop(item)
        self.emit(name, self.boxed_above(position), operand0)
        self.stack[position] = None
        if item.how == "local" and item.guard is not None:
            self.emit("_GUARD_TYPE", 1 + self.boxed_above(position), Obj(item.guard))

    def feeds_raw(self, index: int) -> bool:
        """Whether the value uop `index` pushes goes to a uop that can use it
        raw: raw arithmetic or a compare, an index, a store into a raw local
        (unknown, past a branch: assume it does)."""
        consumer, position = self.consumer(index)
        if consumer is None:
            return True
        uop = self.trace.uops[consumer]
        if uop.name == "_STORE_FAST":
            return uop.oparg in (self.region_at[consumer] or ())
        if uop.name in _SUBSCRIPTS:
            return position == 0  # the index (the top item)
        return uop.name in _RAW_CONSUMERS

    def consumer(self, index: int) -> tuple[int | None, int]:
        """_consumer(index), remembered (asked for only where a value may go raw)."""
        found = self.consumers.get(index)
        if found is None:
            found = self.consumers[index] = _consumer(self.trace.uops, index)
        return found

    def raw_result_kind(self, index: int) -> str | None:
        """I64 or F64 when the value uop `index` pushes goes to raw arithmetic
        or a compare that counts on it being an int or a float (its type
        where it is used), else None."""
        consumer, position = self.consumer(index)
        if consumer is None or self.trace.uops[consumer].name not in _RAW_CONSUMERS:
            return None
        state = self.states[consumer]
        if state is None or len(state.stack) <= position:
            return None
        return _KIND.get(state.stack[-1 - position].type)

    def enter(self, raw: dict[int, str]) -> None:
        """Where the raw locals are `raw` from here on (a loop's region, or none):
        what boxes them, made once per region instead of at every sync or exit.
        Only the locals the loop stores into can change in their slots (a
        slot is marked dirty only when written): the others need no boxing."""
        self.raw = raw
        self.raw_items = {local: _raw_item(kind, local) for local, kind in raw.items()}
        if raw:
            self.used_slots = True
        written = self.written.get(id(raw), ())
        ordered = sorted(item for item in raw.items() if item[0] in written)
        self.clean = set()
        names = [("_SYNC_LOCAL_I64" if kind == I64 else "_SYNC_LOCAL_F64", local)
                 for local, kind in ordered]
        self.syncs = tuple((name, local, name in self.deopts) for name, local in names)
        self.sync_steps = self.intern(tuple(ExitStep(_SYNC_ACTIONS[kind], local)
                                            for local, kind in ordered))

    def item_type(self, index: int, from_top: int):
        state = self.states[index]
        if state is None or len(state.stack) < from_top:
            return None
        t = state.stack[-from_top].type
        return t if isinstance(t, type) else None

    # -- operands of raw operations --

    def take(self, count: int, kinds: list[str], index: int, *, checked: bool = False
             ) -> list[int]:
        """Make the top `count` stack items raw values of the given kinds (in
        their position's slot unless already in a slot) and return the slots.
        Boxed operands are at the top of the real stack: they are popped and
        unboxed, topmost first.  With `checked`, boxed operands of unknown
        type are unboxed too (the unboxing uop checks the type: side exit)."""
        stack = self.stack
        base = len(stack) - count
        operands = stack[base:]
        have = []  # the operands' kinds
        for k, (item, want) in enumerate(zip(operands, kinds)):  # check all before emitting
            if item is None:
                known = self.item_type(index, count - k)
                kind = want if known is None and checked else _KIND.get(known)
            elif item.how == "const" and want == I64 and not isinstance(item.value, int):
                kind = None
            else:
                kind = item.kind
            if kind is None or (kind == F64 and want == I64):
                raise _Skip("an operand that is not of the kind needed")
            have.append(kind)
        if None in operands:
            for k in reversed(range(count)):
                if operands[k] is None:
                    slot = self.temp(base + k)
                    self.emit("_POP_UNBOX_I64" if have[k] == I64 else "_POP_UNBOX_F64", slot)
                    stack[base + k] = _raw_item(have[k], slot)
        slots = []
        for position, want in enumerate(kinds, base):
            item = stack[position]
            if item.how == "raw" and item.kind == want:
                slots.append(item.slot)  # (there already)
                continue
            slot = self.convert(item, want, position)
            stack[position] = _raw_item(want, slot)
            slots.append(slot)
        return slots

    def convert(self, item: Virtual, kind: str, position: int) -> int:
        """The slot holding `item` as `kind` (emitting the uops that put it there)."""
        temp = self.temp(position)
        if item.how == "raw":
            if item.kind == kind:
                return item.slot
            self.emit("_I64_TO_F64", temp, item.slot)
            return temp
        if item.how == "local":
            if item.kind == I64:
                self.emit("_UNBOX_LOCAL_I64", temp, item.local)
                if kind == F64:
                    self.emit("_I64_TO_F64", temp, temp)
            else:
                self.emit("_UNBOX_LOCAL_F64", temp, item.local)
            return temp
        if kind == I64:
            self.emit("_SET_I64", temp, item.value)
        else:
            self.emit("_SET_F64", temp, struct.unpack("<Q", struct.pack("<d", float(item.value)))[0])
        return temp

    def binary(self, raw_name: str, kinds: list[str], result: str, index: int) -> None:
        if raw_name != "_POW_F64" and None in self.stack[-2:] \
                and not self.feeds_raw(index):
            # An operand that is an object costs an unboxing, and the result
            # would be boxed again at once: the typed uop on objects is cheaper.
            raise _Skip("boxed operand, and the result is not used raw")
        slots = self.take(2, kinds, index)
        target = self.temp(len(self.stack) - 2)
        self.emit(raw_name, target, slots[0], slots[1])
        self.stack[-2:] = [_raw_item(result, target)]

    # -- the walk --

    def run(self) -> tuple[list[UOp], list[str]]:
        """The rewritten uops, and their names."""
        index, end = 0, len(self.trace.uops)
        while index < end:
            index = self.walk(self.copy_plain(index))
        if self.raw:
            self.leave_region()
        out = self.out
        names = uop_names(out)  # (the peepholes' uops are looked for at C speed)
        if "_GUARD_TYPE" in names:
            out, names = _without_guards_before_unboxing(out, names)
        if "_BINARY_SUBSCR_LIST_CONST" in names or "_STORE_SUBSCR_LIST_CONST" in names:
            out, names = _fused_list_items(out, names)
        return out, names

    def copy_plain(self, index: int) -> int:
        """Where nothing is unboxed (no raw locals, nothing virtual), the uops
        before the next one that could unbox something (self.walked) come out
        as they are, at once (most code outside loops).  Returns that uop's
        index."""
        uops, walked = self.trace.uops, self.walked
        found = bisect.bisect_left(walked, index)
        following = walked[found] if found < len(walked) else len(uops)
        if following > index:
            self.out += uops[index:following]
            state = self.states[following] if following < len(uops) else None
            self.stack = [None] * len(state.stack) if state is not None else []
        return following

    def walk(self, start: int) -> int:
        """Uop by uop from `start` until nothing is unboxed after one; returns
        the index where it stopped.  Each uop: a label goes to label(); the
        first uop outside a loop with raw locals to leave_region(); an
        unreachable one is kept; the others go to their handler (on_NAME,
        which returns whether it handled the uop, or raises _Skip), else to
        generic().  (The loop is C: WalkCore.walk_uops.)"""
        return self.walk_uops(start, self.trace.uops, self.states, self.region_at, _HANDLERS,
                              _Skip, LABEL)

    def label(self, uop: UOp, region: dict[int, str] | None) -> None:
        """A jump target: nothing virtual on the stack; where a loop with raw
        locals starts, they are unboxed (from a trampoline's label on they
        are raw already: it is reached from inside the loop)."""
        self.materialize()
        if region is None and self.raw:
            self.leave_region()  # falling out of a loop into a label after it
        elif region is not None and region is not self.raw:
            if uop.oparg < _TRAMPOLINE_LABELS:  # the loop's header: box -> slots
                for local, kind in sorted(region.items()):
                    self.emit("_ENTER_LOCAL_I64" if kind == I64 else "_ENTER_LOCAL_F64", local)
            self.enter(region)
        self.clean.clear()
        self.out.append(uop)

    def leave_region(self) -> None:
        last = self.out[-1] if self.out else None
        if last is None or last.name not in self.flags.terminates:
            self.materialize()
            self.sync_locals()
        self.enter({})

    # -- uops that work on virtual items (return True when handled) --

    def on_CHECK_EVAL_BREAKER(self, uop: UOp, index: int) -> bool:
        """In a loop with raw locals: the variant that syncs them itself, only
        when it is about to run Python code."""
        if not self.raw:
            return False
        self.generic(uop.replace(name="_CHECK_EVAL_BREAKER_UNBOXED"))
        return True

    def on_LOAD_GLOBAL_CACHED(self, uop: UOp, index: int) -> bool:
        """In a loop with raw locals: the variant that runs no Python code
        (side-exiting where the other would), so they need no boxing first;
        not where its side exit kept being taken."""
        if not self.raw or uop.offset in self.no_speculation:
            return False
        self.generic(uop.replace(name="_LOAD_GLOBAL_CACHED_QUIET"))
        return True

    def on_LOAD_FAST(self, uop: UOp, index: int) -> bool:
        local = uop.oparg
        item = self.raw_items.get(local)
        if item is not None:  # a raw local: its slot
            self.stack.append(item)
            return True
        kind = _KIND.get(self.states[index].locals[local])
        if kind is None:
            return False
        self.stack.append(_local_item(kind, local))
        return True

    def on_LOAD_CONST(self, uop: UOp, index: int) -> bool:
        value = uop.operand0.value
        if _is_number(value):
            self.stack.append(_const_item(value))
            return True
        return False

    def on_POP_TOP(self, uop: UOp, index: int) -> bool:
        if self.stack[-1] is None:
            return False
        self.stack.pop()
        return True

    def on_GUARD_TYPE(self, uop: UOp, index: int) -> bool:
        position = len(self.stack) - uop.oparg
        item = self.stack[position]
        guarded = uop.operand0.value
        if item is None:  # boxed: check it where it is in the real stack
            self.keep(uop.replace(oparg=1 + self.boxed_above(position)))
            return True
        if _KIND.get(guarded) != item.kind:
            return False
        if item.how == "local":  # unboxing it checks the type; boxing it must too
            self.stack[position] = dataclasses.replace(item, guard=guarded)
        return True

    def _unalias(self, local: int) -> None:
        """Before a store into `local`: virtual items below the top still
        meaning its old value get a slot of their own."""
        for position, item in enumerate(self.stack[:-1]):
            if item is None:
                continue
            if item.how == "raw" and item.slot == local and local in self.raw:
                self.emit(_COPY_SLOT[item.kind], self.temp(position), local)
                self.stack[position] = _raw_item(item.kind, self.temp(position))
            elif item.how == "local" and item.local == local:
                slot = self.convert(item, item.kind, position)
                self.stack[position] = _raw_item(item.kind, slot)

    def on_STORE_FAST(self, uop: UOp, index: int) -> bool:
        local = uop.oparg
        self._unalias(local)
        top = self.stack[-1]
        if local in self.raw:
            kind = self.raw[local]
            self.clean.discard(local)  # (its slot is written: dirty)
            if top is None:
                self.emit("_POP_UNBOX_I64" if kind == I64 else "_POP_UNBOX_F64", local)
            else:
                if top.kind == F64 and kind == I64:
                    raise _Skip("a float stored into an int local")
                source = self.convert(top, kind, len(self.stack) - 1)
                last = self.out[-1] if self.out else None
                if (source == self.temp(len(self.stack) - 1) and last is not None
                        and last.oparg == source and last.name in _WRITES_DESTINATION):
                    last.oparg = local  # compute straight into the local's slot
                elif source != local:
                    self.emit(_COPY_SLOT[kind], local, source)
            self.stack.pop()
            return True
        if top is None or top.how != "raw":
            return False
        self.emit("_STORE_FAST_BOX_I64" if top.kind == I64 else "_STORE_FAST_BOX_F64", local,
                  top.slot)
        self.stack.pop()
        return True

    def _binary(self, uop: UOp, index: int) -> bool:
        name = uop.name
        if name == "_BINARY_OP":  # generic: only float ** (int or float) is raw
            if uop.operand0 not in _POWER or self.item_type(index, 2) is not float \
                    or self.item_type(index, 1) not in (int, float):
                return False
            self.binary("_POW_F64", [F64, F64], F64, index)
            return True
        if name in _INT_OPS:
            self.binary(_INT_OPS[name], [I64, I64], I64, index)
        elif name == "_BINARY_OP_BITWISE_INT":
            self.binary(_BITWISE[uop.oparg], [I64, I64], I64, index)
        elif name == "_BINARY_OP_FLOAT":
            self.binary(_FLOAT_OPS[uop.oparg], [F64, F64], F64, index)
        else:
            left, right = self.item_type(index, 2), self.item_type(index, 1)
            numbers = {int, float}
            if left not in numbers or right not in numbers:
                return False
            if float not in (left, right):
                # (int / int too: CPython divides big ints exactly, and its
                # error for a zero divisor is not the float one; the side exit
                # of _DIV_F64 would box the ints as floats.)
                return False
            self.binary(_GENERIC_FLOAT_OPS[name], [F64, F64], F64, index)
        return True

    def _negate(self, uop: UOp, index: int) -> bool:
        kind = I64 if uop.name.endswith("INT") else F64
        (slot,) = self.take(1, [kind], index)
        target = self.temp(len(self.stack) - 1)
        self.emit("_NEG_I64" if kind == I64 else "_NEG_F64", target, slot)
        self.stack[-1] = _raw_item(kind, target)
        return True

    def _compare_and_branch(self, uop: UOp, index: int) -> bool:
        kind = I64 if uop.name == "_COMPARE_INT_AND_BRANCH" else F64
        self.materialize(spare=2)  # the jump target has nothing virtual but the operands
        slots = self.take(2, [kind, kind], index)
        self.stack[-2:] = []
        if kind == I64:  # jumping when the compare is false: on the opposite operator
            op = uop.oparg if uop.operand0 else _OPPOSITE[uop.oparg]
            self.emit(_CMP_I64_JUMPS[op], 0, slots[0], slots[1], jump_to=uop.jump_to)
        else:
            self.emit("_CMP_F64_JUMP", uop.oparg | (int(uop.operand0) << 3), slots[0], slots[1],
                      jump_to=uop.jump_to)
        return True

    def _compare(self, uop: UOp, index: int) -> bool:
        kind = I64 if uop.name == "_COMPARE_OP_INT" else F64
        self.materialize(spare=2)  # the bool is boxed: nothing virtual may stay below it
        slots = self.take(2, [kind, kind], index)
        self.stack[-2:] = []
        self.emit("_CMP_I64_BOOL" if kind == I64 else "_CMP_F64_BOOL", uop.oparg, slots[0], slots[1])
        self.stack.append(None)
        return True

    def on_FOR_ITER_RANGE(self, uop: UOp, index: int) -> bool:
        self.materialize()
        target = self.temp(len(self.stack))
        self.emit("_FOR_ITER_RANGE_I64", target, jump_to=uop.jump_to)
        self.stack.append(_raw_item(I64, target))
        return True

    def on_RANGE_ITER(self, uop: UOp, index: int) -> bool:
        """iter(range(...)) of ints at least one of which is virtual: from
        their slots (boxed ones unboxed); the raw uop checks and pops the
        callable below them."""
        count = uop.oparg
        if self.stack[-count:].count(None) == count:
            return False  # all boxed: the typed uop reads them as they are
        slots = self.take(count, [I64] * count, index, checked=True)
        self.emit("_RANGE_ITER_I64", count, slots[0], slots[-1])
        self.stack[-(count + 2):] = [None]
        return True

    def _subscript(self, uop: UOp, index: int) -> bool:
        top = self.stack[-1]
        if top is None or top.kind != I64 or self.stack[-2] is not None:
            return False
        store = uop.name.startswith("_STORE")
        if store and self.stack[-3] is not None:
            self.materialize_at(len(self.stack) - 3)  # the value stored is an object
        if top.how == "const" and type(top.value) is int and -(1 << 31) <= top.value < (1 << 31):
            kind = None if store else self.raw_result_kind(index)
            if uop.name == "_BINARY_SUBSCR_LIST_INT" and kind is not None:
                # list[k] goes to raw arithmetic: straight from the list into a
                # slot (the unboxing checks the item's type before any effect)
                target = self.temp(len(self.stack) - 2)
                self.emit(_POP_ITEMS["_POP_UNBOX_" + kind.upper()], target, top.value)
                self.stack[-2:] = [_raw_item(kind, target)]
                return True
            self.emit(_CONST_SUBSCRIPTS[uop.name], operand0=top.value)
        else:
            (slot,) = self.take(1, [I64], index)
            self.emit(_RAW_SUBSCRIPTS[uop.name], operand0=slot)  # its exit puts the index back
        if store:
            del self.stack[-3:]
        else:
            self.stack[-2:] = [None]
        return True

    def on_COPY(self, uop: UOp, index: int) -> bool:
        """COPY of a virtual item: another virtual item (a raw one shares the
        slot: the stack empties above it first); of an object: a real COPY
        counting only the objects on the real stack."""
        position = len(self.stack) - uop.oparg
        item = self.stack[position]
        if item is not None:
            self.stack.append(item)
            return True
        if not self.has_virtual():
            return False
        self.keep(uop.replace(oparg=1 + self.boxed_above(position)))
        self.stack.append(None)
        return True

    def on_SWAP(self, uop: UOp, index: int) -> bool:
        """SWAP that leaves the objects on the real stack in their order (the
        virtual items move in the abstract stack only), or that exchanges two
        objects (a real SWAP counting only the objects)."""
        low, high = len(self.stack) - uop.oparg, len(self.stack) - 1
        a, b = self.stack[low], self.stack[high]
        between = self.boxed_above(low) - (b is None)
        if a is None and b is None:
            if not self.has_virtual():
                return False
            self.keep(uop.replace(oparg=2 + between))
        elif (a is None or b is None) and between:
            return False  # an object would pass other objects: the real stack must move
        self.stack[low], self.stack[high] = b, a
        return True


# Py_LT..Py_GE -> the int64 compare-and-jump uop of that operator, and the
# operator true exactly when it is false.
_CMP_I64_JUMPS = ("_CMP_I64_JUMP_LT", "_CMP_I64_JUMP_LE", "_CMP_I64_JUMP_EQ", "_CMP_I64_JUMP_NE",
                  "_CMP_I64_JUMP_GT", "_CMP_I64_JUMP_GE")
_OPPOSITE = (5, 4, 3, 2, 1, 0)  # < >=, <= >, == !=
_RAW_SUBSCRIPTS = {"_BINARY_SUBSCR_LIST_INT": "_BINARY_SUBSCR_LIST_I64",
                   "_BINARY_SUBSCR_TUPLE_INT": "_BINARY_SUBSCR_TUPLE_I64",
                   "_STORE_SUBSCR_LIST_INT": "_STORE_SUBSCR_LIST_I64"}
_CONST_SUBSCRIPTS = {"_BINARY_SUBSCR_LIST_INT": "_BINARY_SUBSCR_LIST_CONST",
                     "_BINARY_SUBSCR_TUPLE_INT": "_BINARY_SUBSCR_TUPLE_CONST",
                     "_STORE_SUBSCR_LIST_INT": "_STORE_SUBSCR_LIST_CONST"}
_POWER = (Sym("cpjit_power"), Sym("cpjit_inplace_power"))
for _name in (*_INT_OPS, "_BINARY_OP_BITWISE_INT", "_BINARY_OP_FLOAT", *_GENERIC_FLOAT_OPS,
              "_BINARY_OP"):
    setattr(_Walk, "on" + _name, _Walk._binary)
for _name in ("_UNARY_NEGATIVE_INT", "_UNARY_NEGATIVE_FLOAT"):
    setattr(_Walk, "on" + _name, _Walk._negate)
for _name in ("_COMPARE_INT_AND_BRANCH", "_COMPARE_FLOAT_AND_BRANCH"):
    setattr(_Walk, "on" + _name, _Walk._compare_and_branch)
for _name in ("_COMPARE_OP_INT", "_COMPARE_OP_FLOAT"):
    setattr(_Walk, "on" + _name, _Walk._compare)
for _name in ("_BINARY_SUBSCR_LIST_INT", "_BINARY_SUBSCR_TUPLE_INT", "_STORE_SUBSCR_LIST_INT"):
    setattr(_Walk, "on" + _name, _Walk._subscript)
# uop name -> its _Walk.on_<name> method (one dict lookup per uop in run)
_HANDLERS = {name[2:]: method for name, method in vars(_Walk).items() if name.startswith("on_")}
# Handled uops that unbox nothing where nothing is unboxed yet (no raw
# locals, nothing virtual): they come out as they are (or as an equal copy).
_PLAIN_WHEN_BOXED = frozenset({"_CHECK_EVAL_BREAKER", "_LOAD_GLOBAL_CACHED", "_POP_TOP",
                               "_GUARD_TYPE", "_STORE_FAST", "_COPY", "_SWAP", *_RAW_SUBSCRIPTS})
_MAY_UNBOX = frozenset(_HANDLERS) - _PLAIN_WHEN_BOXED
_MARKED = _MAY_UNBOX | _LOCAL_ACCESSES

# Raw uops whose oparg is the slot they write (the store peephole retargets it).
_WRITES_DESTINATION = frozenset({*_INT_OPS.values(), *_BITWISE, *_FLOAT_OPS, "_NEG_I64",
                                 "_POW_F64", "_NEG_F64", "_I64_TO_F64", "_SET_I64", "_SET_F64",
                                 *_COPY_SLOT.values(), "_UNBOX_LOCAL_I64", "_UNBOX_LOCAL_F64",
                                 "_FOR_ITER_RANGE_I64"})


_SUBSCRIPTS = frozenset(_RAW_SUBSCRIPTS)
_RAW_CONSUMERS = frozenset({*_INT_OPS, "_BINARY_OP_BITWISE_INT", "_BINARY_OP_FLOAT",
                            *_GENERIC_FLOAT_OPS, "_COMPARE_INT_AND_BRANCH",
                            "_COMPARE_FLOAT_AND_BRANCH", "_COMPARE_OP_INT", "_COMPARE_OP_FLOAT",
                            "_UNARY_NEGATIVE_INT", "_UNARY_NEGATIVE_FLOAT", "_BINARY_OP"})


def _consumer(uops: list[UOp], i: int) -> tuple[int | None, int]:
    """For a uop that pushes one value: the uop that pops it and where the
    value is among that uop's inputs (0: the top), when straight-line code
    leads there (not past a label, a branch or a uop reading below its inputs
    other than a type guard); else (None, 0)."""
    uop = uops[i]
    if uop.name == LABEL or EFFECTS[uop.name, uop.oparg].pushes != 1:
        return None, 0
    peeks = _uop_flags().peeks
    above = 0  # items pushed over the value since
    for j, later in enumerate(itertools.islice(uops, i + 1, i + 40), i + 1):
        name = later.name
        if name == LABEL:
            break
        if name == "_GUARD_TYPE":
            continue  # checks an item where it is (virtual ones too)
        if name in peeks:
            break
        pops, pushes, _, jumps, _ = EFFECTS[name, later.oparg]
        if pops > above:
            return j, above
        if jumps:
            break
        above += pushes - pops
    return None, 0


class _GenericInfo(dict):
    """(name, oparg) -> what generic() asks about a uop: (pops, pushes,
    deopts, exits after its effect, sees the whole stack, needs the frame);
    worked out on first use, then one lookup in C per uop."""

    def __missing__(self, key: tuple[str, int]) -> tuple:
        name, oparg = key
        flags = _uop_flags()
        effect = EFFECTS[key]
        info = self[key] = (effect.pops, effect.pushes, name in flags.deopts,
                            name in flags.exits_after, name in flags.sees_whole_stack,
                            name in flags.needs_frame)
        return info


_GENERIC = _GenericInfo()


class _UopFlags:
    """The names of the uops with each flag the walk asks about, gathered
    once (it asks for nearly every uop it keeps or emits)."""

    def __init__(self, specs):
        def having(*flags: str) -> frozenset[str]:
            return frozenset(name for name, spec in specs.items()
                             if not spec.flags.isdisjoint(flags))

        self.deopts = having("DEOPTS")  # exits: needs exit steps
        self.exits_after = having("EXITS_AFTER")  # and after its effect
        self.terminates = having("TERMINATES")
        self.peeks = having("PEEKS")  # reads below its inputs
        self.sees_whole_stack = having("JUMPS", "PEEKS")  # a jump target, or reads below its inputs
        self.needs_frame = having("ESCAPES", "ERRORS", "LEAVES")  # raw locals synced first


@functools.lru_cache(maxsize=None)
def _uop_flags() -> _UopFlags:
    return _UopFlags(stencil_table.uops())


_UNBOX_CHECKS = {"_POP_UNBOX_I64": int, "_POP_UNBOX_F64": float}


def _without_guards_before_unboxing(uops: list[UOp], names: list[str]
                                    ) -> tuple[list[UOp], list[str]]:
    """Drop a _GUARD_TYPE of int or float whose item the following uops pop
    and unbox: the unboxing checks the same type (and side-exits to the same
    instruction, its exit boxing back what was popped before).  (The uops
    and their names.)"""
    dropped = set()
    for g in _positions(names, "_GUARD_TYPE"):
        guard = uops[g]
        if guard.operand0.value not in (int, float):
            continue
        depth = guard.oparg
        for later in itertools.islice(uops, g + 1, None):
            if later.name == "_GUARD_TYPE":
                continue
            if later.name not in _UNBOX_CHECKS:
                break
            if depth == 1:
                if _UNBOX_CHECKS[later.name] is guard.operand0.value:
                    dropped.add(g)
                break
            depth -= 1
    kept, kept_names = list(uops), list(names)
    for g in sorted(dropped, reverse=True):
        del kept[g], kept_names[g]
    return kept, kept_names


_POP_ITEMS = {"_POP_UNBOX_F64": "_POP_LIST_ITEM_F64", "_POP_UNBOX_I64": "_POP_LIST_ITEM_I64"}
_STORE_ITEMS = {"_BOX_INSERT_F64": "_STORE_LIST_ITEM_F64",
                "_BOX_INSERT_I64": "_STORE_LIST_ITEM_I64"}


def _fused_list_items(uops: list[UOp], names: list[str]) -> tuple[list[UOp], list[str]]:
    """list[k] read straight into a slot, or stored straight from one (k a
    constant): _BINARY_SUBSCR_LIST_CONST + _POP_UNBOX_* and _BOX_INSERT_*
    under one item + _STORE_SUBSCR_LIST_CONST become one uop each, which
    side-exits (before any effect) as the first of the two would.  (No uop
    is the second of one pair and the first of another: the pairs found are
    fused independently, last first so that the indexes stay right.  The
    uops and their names.)"""
    firsts = _positions(names, *_FUSED_FIRSTS)
    out, out_names = list(uops), list(names)
    for k in reversed(firsts):
        if k + 1 == len(uops):
            continue
        uop, following = uops[k], uops[k + 1]
        if uop.name == "_BINARY_SUBSCR_LIST_CONST" and following.name in _POP_ITEMS:
            fused = uop.replace(name=_POP_ITEMS[following.name], oparg=following.oparg)
        elif uop.name in _STORE_ITEMS and uop.oparg == 1 \
                and following.name == "_STORE_SUBSCR_LIST_CONST":
            fused = uop.replace(name=_STORE_ITEMS[uop.name], oparg=uop.operand0,
                                operand0=following.operand0)
        else:
            continue
        out[k:k + 2] = [fused]
        out_names[k:k + 2] = [fused.name]
    return out, out_names


_FUSED_FIRSTS = ("_BINARY_SUBSCR_LIST_CONST", *_STORE_ITEMS)


def _positions(names: list[str], *wanted: str) -> list[int]:
    """The indexes of the wanted names, in order (found by list.index, in C:
    the pass looks for a few uops among many)."""
    found = []
    for name in wanted:
        at = -1
        try:
            while True:
                at = names.index(name, at + 1)
                found.append(at)
        except ValueError:
            pass
    return sorted(found) if len(wanted) > 1 else found


class _Skip(Exception):
    """This uop is handled generically after all."""


def _jumps(uops: list[UOp], labels: dict[int, int]) -> list[tuple[int, int]]:
    """(uop index, target uop index) of every jump."""
    return [(i, labels[uops[i].jump_to]) for i in jumps_into(uops, labels)]


def _loops(jumps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Outermost loops as [header, last back-edge] uop index ranges."""
    spans = sorted((target, i) for i, target in jumps if target < i)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _raw_locals(trace: Trace, states, start: int, end: int, jumps: list[tuple[int, int]],
                marked: list[int]) -> tuple[dict[int, str], frozenset[int]]:
    """Locals of a loop that can live in slots: plain locals whose type is the
    same int or float wherever the loop reads or writes them; and those of
    them the loop stores into (the others never change in their slots).
    (`marked`: the indexes of the trace's uops that touch locals, and of
    others, in order.)"""
    uops = trace.uops
    # Entered only through its header, by falling into it.
    if start == 0 or uops[start - 1].name in _uop_flags().terminates:
        return {}, frozenset()
    if any(start <= target <= end and not start <= i <= end for i, target in jumps):
        return {}, frozenset()
    code = trace.code
    cells = set(code.co_cellvars)
    # Plain locals: not cells (nor free variables, numbered after them).
    plain = {local for local, name in enumerate(code.co_varnames) if name not in cells}
    kinds: dict[int, str | None] = {}
    stored = set()
    for i in marked[bisect.bisect_left(marked, start):bisect.bisect_right(marked, end)]:
        uop, state = uops[i], states[i]
        local, name = uop.oparg, uop.name
        if state is None or name not in _LOCAL_ACCESSES or kinds.get(local, "") is None:
            continue  # (nothing to learn: not an access, or a local known not to be raw)
        if name == "_LOAD_FAST":
            kind = _KIND.get(state.locals[local])
        elif name == "_STORE_FAST":
            kind = _KIND.get(state.stack[-1].type)
            stored.add(local)
        else:  # _LOCAL_USERS
            kind = None
        if local not in plain or kinds.get(local, kind) != kind:
            kind = None
        kinds[local] = kind
    raw = {local: kind for local, kind in kinds.items() if kind is not None}
    return raw, frozenset(stored.intersection(raw))


def unbox(trace: Trace, context) -> list[str]:
    """Rewrite typed arithmetic on ints and floats to raw values; see the module doc."""
    try:
        _, states = context.analyze(trace)
    except analysis.AnalysisError as error:
        return [f"skipped: {error}"]
    uops = trace.uops
    names = uop_names(uops)
    labels = {uops[i].oparg: i for i in _positions(names, LABEL)}
    jumps = _jumps(uops, labels)
    loops = _loops(jumps)
    # The uops that touch locals or may unbox something: the few the scans look at.
    marked = positions(uops, _MARKED)
    region_at: list[dict[int, str] | None] = [None] * len(uops)  # index -> its loop's raw locals
    regions, spans = [], []  # (and the uops each spans)
    written = {}  # id(region) -> the locals its loop stores into
    for start, end in loops:
        raw, stored = _raw_locals(trace, states, start, end, jumps, marked)
        if raw:
            regions.append(raw)
            spans.append((start, end))
            region_at[start:end + 1] = [raw] * (end + 1 - start)
            written[id(raw)] = stored
    # Walked even where nothing is unboxed: the uops outside the regions that
    # may unbox something, and where each region starts (see _Walk.copy_plain).
    walked = [i for i in _outside(marked, spans)
              if names[i] in _MAY_UNBOX and _may_unbox(uops[i], states[i])]
    if regions:
        before = len(uops)
        uops = trace.uops = _with_exit_trampolines(trace, region_at, jumps, labels, states)
        names += [uop.name for uop in uops[before:]]
        walked = sorted([*walked, *(start for start, _ in spans),
                         *(i for i in range(before, len(uops)) if region_at[i] is not None)])
    walk = _Walk(trace, states, region_at, walked, context.feedback.no_speculation, written)
    out, out_names = walk.run()
    changes = []
    for text in sorted({_describe_region(trace, raw) for raw in regions}):
        changes.append(f"unboxed locals in a loop: {text}")
    raw_uops = sum(map(_RAW_UOPS.__contains__, out_names))
    if raw_uops:
        changes.append(f"{raw_uops} uops on raw ints and floats")
    if walk.used_slots or regions:
        trace.slots = 2 * walk.nslots  # a value and a dirty flag each
    trace.uops[:] = out
    return changes if out_names != names else []


def _outside(indexes: list[int], spans: list[tuple[int, int]]) -> list[int]:
    """The (sorted) indexes outside the (sorted, disjoint) [start, end] spans."""
    found, low = [], 0
    for start, end in spans:
        found += indexes[low:bisect.bisect_left(indexes, start)]
        low = bisect.bisect_right(indexes, end)
    return found + indexes[low:]


def _may_unbox(uop: UOp, state) -> bool:
    """Whether the walk may unbox something at `uop` where nothing is unboxed."""
    if uop.name == "_LOAD_FAST":
        return state is not None and _KIND.get(state.locals[uop.oparg]) is not None
    if uop.name == "_LOAD_CONST":
        return _is_number(uop.operand0.value)
    return True


def _describe_region(trace: Trace, raw: dict[int, str]) -> str:
    """E.g. "i (i64), x (f64)"."""
    names = trace.code.co_varnames
    return ", ".join(f"{names[local] if local < len(names) else f'local{local}'} ({kind})"
                     for local, kind in sorted(raw.items()))


_RAW_UOPS = frozenset({*_INT_OPS.values(), *_BITWISE, *_FLOAT_OPS, "_NEG_I64", "_NEG_F64",
                       "_POW_F64", *_CONST_SUBSCRIPTS.values(), *_POP_ITEMS.values(),
                       *_STORE_ITEMS.values(),
                       *_CMP_I64_JUMPS, "_CMP_F64_JUMP", "_CMP_I64_BOOL", "_CMP_F64_BOOL",
                       "_FOR_ITER_RANGE_I64", "_BINARY_SUBSCR_LIST_I64",
                       "_BINARY_SUBSCR_TUPLE_I64", "_STORE_SUBSCR_LIST_I64"})


def _with_exit_trampolines(trace: Trace, region_at, jumps, labels, states) -> list[UOp]:
    """Jumps from inside a loop with raw locals to outside go to a trampoline
    label at the end of the trace instead, which the walk will make box the
    raw locals and then jump on.  The trampoline's label belongs to its loop's
    region (in region_at), and both its uops see what the jump's target
    sees (appended to states: a join that includes the trampoline's own edge:
    sound, and no second analysis)."""
    uops = list(trace.uops)
    fresh = _TRAMPOLINE_LABELS
    for i, target_index in jumps:
        region = region_at[i]
        if region is None or region_at[target_index] is region:
            continue
        uop = uops[i]
        fresh += 1
        target = uop.jump_to
        uops[i] = uop.replace(jump_to=fresh)
        region_at += [region, None]  # (the jump: leaving the region boxes the locals)
        uops.append(UOp(LABEL, fresh, offset=uop.offset))
        # What boxes the locals here side-exits to where the jump goes.
        resume = trace.instruction_at(target)
        uops.append(UOp("_JUMP", offset=target, exit_to=resume.start, jump_to=target,
                        comment="out of an unboxed loop"))
        states += [states[labels[target]]] * 2
    return uops
