"""Abstract interpretation of a trace: what is known about each stack item and local before every uop.

The lattice is small: an exact builtin type (int, float, str, list, ...), ANY
(an object of unknown type), NULL (an empty stack slot), and for locals
UNBOUND / MAYBE_UNBOUND.  Facts about exact builtin types never go stale
(no code can change an int's class), so they survive calls.  Stack items also
remember the local they were loaded from (while it is unchanged) and a hint
(what a call of a known builtin probably returns), which only self-checking
uops may use.  Transfer functions for uops that specialize come from the
caller (see specialize.py), so the analysis and the rewrite agree.
"""

from __future__ import annotations

import heapq
import operator
from typing import Callable, NamedTuple

from . import stencil_table
from .ir import LABEL, Trace, UOp


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


ANY = _Marker("ANY")
NULL = _Marker("NULL")
UNBOUND = _Marker("UNBOUND")
MAYBE_UNBOUND = _Marker("MAYBE_UNBOUND")


# Item, State and Outcome are named tuples rather than dataclasses: the
# analysis makes a State and an Outcome (and often an Item) for every uop it
# visits and compares states at every join, and tuples are compared in C.
# Where they are made per visit, `new(cls, fields)` (tuple.__new__) makes them
# without NamedTuple's __new__, a Python function that takes twice as long.
new = tuple.__new__


class Item(NamedTuple):
    """What is known about one stack item."""

    type: object = ANY  # an exact type, ANY or NULL
    alias: int = -1  # local it was loaded from, while that local is unchanged
    hint: object = None  # a likely type (from a builtin's known result); not a fact


UNKNOWN = Item()
_alias_of = operator.attrgetter("alias")


def join_type(a, b):
    if a is b:
        return a
    if a is UNBOUND or b is UNBOUND or a is MAYBE_UNBOUND or b is MAYBE_UNBOUND:
        return MAYBE_UNBOUND
    return ANY


def join_item(a: Item, b: Item) -> Item:
    if a == b:
        return a
    return new(Item, (join_type(a.type, b.type), a.alias if a.alias == b.alias else -1,
                      a.hint if a.hint is b.hint else None))


class State(NamedTuple):
    """What is known before a uop: its stack items (deepest first) and the
    type of each local (an exact type, ANY, UNBOUND or MAYBE_UNBOUND)."""

    stack: tuple[Item, ...]
    locals: tuple[object, ...]

    def join(self, other: "State") -> "State | None":
        stack, locals_ = self.stack, self.locals
        if len(stack) != len(other.stack):
            return None  # inconsistent depths: give up on this trace
        # Mostly only a few entries differ (and are joined).
        if stack != other.stack:
            stack = tuple([a if a is b else join_item(a, b) for a, b in zip(stack, other.stack)])
        if locals_ != other.locals:
            locals_ = _join_locals(locals_, other.locals)
        if stack is self.stack and locals_ is self.locals:
            return self
        return new(State, (stack, locals_))

    def push(self, *items: Item) -> "State":
        return new(State, (self.stack + items, self.locals))

    def pop(self, n: int) -> "State":
        return new(State, (self.stack[:len(self.stack) - n] if n else self.stack, self.locals))

    def refine(self, index: int, proven) -> "State":
        """Local `index` (and the stack items loaded from it) proven to have
        type `proven`.  The state itself if that was known already."""
        stack = self.stack
        if index in map(_alias_of, stack):
            stack = tuple([new(Item, (proven, index, item.hint)) if item.alias == index else item
                           for item in stack])
            if stack == self.stack:
                stack = self.stack
        locals_ = _replaced(self.locals, index, proven)
        if stack is self.stack and locals_ is self.locals:
            return self
        return new(State, (stack, locals_))

    def store(self, index: int, value) -> "State":
        """Local `index` now holds something of type `value`: the stack items
        loaded from it no longer hold what it holds."""
        stack = self.stack
        if index in map(_alias_of, stack):
            stack = tuple([new(Item, (item.type, -1, item.hint)) if item.alias == index else item
                           for item in stack])
        return new(State, (stack, _replaced(self.locals, index, value)))


_last_locals_join = ((), (), ())


def _join_locals(a: tuple, b: tuple) -> tuple:
    """The join of two locals tuples.  When a loop is analyzed again, the
    states of a run of uops without stores share their locals tuples, old and
    new: so the last join is remembered (by identity, the tuples kept alive),
    and a join that comes out as `b` (the usual case: the new state is the
    more general) gives `b` itself, keeping the sharing going."""
    global _last_locals_join
    last_a, last_b, joined = _last_locals_join
    if a is last_a and b is last_b:
        return joined
    joined = tuple([x if x is y else join_type(x, y) for x, y in zip(a, b)])
    if joined == b:
        joined = b
    _last_locals_join = (a, b, joined)
    return joined


def _replaced(values: tuple, index: int, value) -> tuple:
    """`values` with `values[index]` set to `value` (itself if it already is)."""
    if values[index] is value:
        return values
    return values[:index] + (value,) + values[index + 1:]


class Outcome(NamedTuple):
    """What a uop does to the state: on falling through, and on jumping."""

    fallthrough: State | None
    jump: State | None = None


Transfer = Callable[[UOp, State], "Outcome | None"]


class Effect(NamedTuple):
    """A uop's effect on the real stack, from its metadata (see EFFECTS)."""

    pops: int
    pushes: int
    falls_through: bool  # not a terminator
    jumps: bool
    jump_pops: int | None  # a branch with its own stack effect (UopSpec.jump_pops)


class _Effects(dict):
    """Effect by (uop name, oparg), worked out on first use: a UopSpec's pops
    and pushes are functions of the oparg, and the passes ask for every uop
    (as EFFECTS[name, oparg] in their loops: a lookup in C)."""

    def __missing__(self, key: tuple[str, int]) -> Effect:
        name, oparg = key
        spec = stencil_table.uops()[name]
        known = self[key] = Effect(spec.pops(oparg), spec.pushes(oparg),
                                   "TERMINATES" not in spec.flags, spec.jumps, spec.jump_pops)
        return known


EFFECTS = _Effects()


_TERMINATORS = None


def terminates(name: str) -> bool:
    global _TERMINATORS
    if _TERMINATORS is None:
        _TERMINATORS = {n for n, spec in stencil_table.uops().items() if "TERMINATES" in spec.flags}
    return name in _TERMINATORS


def entry_state(trace: Trace) -> State:
    code = trace.code
    nargs = (code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04)
             + bool(code.co_flags & 0x08))
    nlocals = len(code.co_varnames) + len(set(code.co_cellvars) - set(code.co_varnames)) \
        + len(code.co_freevars)
    locals_ = tuple(ANY if i < nargs or i >= len(code.co_varnames) else UNBOUND
                    for i in range(nlocals))
    return State((), locals_)


def generic_transfer(uop: UOp, state: State) -> Outcome:
    """Stack effect from the uop's metadata, nothing known about what it pushes."""
    pops, pushes, falls_through, jumps, jump_pops = EFFECTS[uop.name, uop.oparg]
    stack = state.stack
    if pops > len(stack):
        raise AnalysisError(f"{uop.describe()} pops {pops} of {len(stack)} items")
    after = state
    if pops or pushes:
        after = new(State, ((stack[:len(stack) - pops] if pops else stack) + (UNKNOWN,) * pushes,
                            state.locals))
    jump = None
    if jumps:
        jump = after if jump_pops is None else state.pop(jump_pops)
    return new(Outcome, (after if falls_through else None, jump))


class AnalysisError(Exception):
    """The trace does not have a consistent stack; optimizations skip it."""


class _Analysis(NamedTuple):
    """An analysis kept with its trace (Trace.analysis)."""

    uops: list[UOp]  # the uops it was made for
    states: list[State | None]
    # Per uop, 1 where some visit did not just fall through with the very
    # state it was given (see remove_uops).
    altered: bytearray


def _current(trace: Trace) -> _Analysis | None:
    """The trace's kept analysis if it was made for the very same uops."""
    cached = trace.analysis
    if cached is not None and len(cached.uops) == len(trace.uops) \
            and all(map(operator.is_, cached.uops, trace.uops)):
        return cached
    return None


def analyze(trace: Trace, transfer: Transfer) -> list[State | None]:
    """The state before each uop (None: unreachable).  Every pass of one
    compilation analyzes with the same transfer functions (the specializer's,
    from the same feedback), so an analysis of the very same uops is reused."""
    cached = _current(trace)
    if cached is None:
        cached = trace.analysis = _analyze(trace, transfer)
    return list(cached.states)


def analysis_of(trace: Trace, transfer: Transfer) -> _Analysis:
    """analyze's analysis itself, with which uops altered the state (for a
    pass that rewrites the uops and hands the states on: see keep)."""
    cached = _current(trace)
    if cached is None:
        cached = trace.analysis = _analyze(trace, transfer)
    return cached


def keep(trace: Trace, states: list[State | None], altered: bytearray) -> None:
    """Keep `states` (and `altered`, as in _Analysis) as the analysis of the
    trace's uops as they are now.  Only for states that are exactly what
    analyze would find for them (the passes that call it say why)."""
    trace.analysis = _Analysis(list(trace.uops), states, altered)


def fuse_uops(trace: Trace, uops: list[UOp], sources: list[int]) -> None:
    """Replace the trace's uops by `uops`, each of which does what the old
    uops from `sources[k]` up to the next source did, with the same outcome
    from any state: the analysis is kept (each new uop's state is its first
    old uop's), since an analysis of the new uops makes the same visits with
    the same states.  (The old uops dropped must not be jump targets.)"""
    cached = _current(trace)
    trace.uops[:] = uops
    trace.analysis = None
    if cached is not None:
        states, altered = cached.states, cached.altered
        keep(trace, [states[i] for i in sources], bytearray([altered[i] for i in sources]))


def remove_uops(trace: Trace, indices: set[int]) -> None:
    """Remove the uops at `indices` from the trace, keeping its analysis when
    it still holds without them: when each of them, at every visit, just
    fell through with the state it was given (a guard of what was known) into
    a uop that nothing jumps to, an analysis without them visits every other
    uop in the same order with the same states, so its states are the old
    ones without theirs.  (Else the next analyze starts afresh.)"""
    if not indices:
        return
    uops = trace.uops
    cached = _current(trace)
    kept = [uop for i, uop in enumerate(uops) if i not in indices]
    trace.analysis = None
    if cached is not None and all(not cached.altered[i] and i + 1 < len(uops)
                                  and uops[i + 1].name != LABEL for i in indices):
        trace.analysis = _Analysis(
            list(kept), [s for i, s in enumerate(cached.states) if i not in indices],
            bytearray(a for i, a in enumerate(cached.altered) if i not in indices))
    uops[:] = kept


def _analyze(trace: Trace, transfer: Transfer) -> _Analysis:
    uops = trace.uops
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    states: list[State | None] = [None] * len(uops)
    states[0] = entry_state(trace)
    altered = bytearray(len(uops))
    last = len(uops) - 1

    def merge(target: int, new: State) -> bool:
        """Join `new` into the state before `target`; whether that changed it."""
        old = states[target]
        merged = new if old is None else old.join(new)
        if merged is None:
            raise AnalysisError(f"stack depths differ at uop {target}")
        if merged is old or merged == old:
            return False
        states[target] = merged
        return True

    # Visit in code order (lowest index first): a loop body is revisited once
    # its back edge changes the header, not once per path.
    work = [0]
    pending = {0}
    while work:
        index = heapq.heappop(work)
        pending.discard(index)
        while True:
            uop = uops[index]
            state = states[index]
            if uop.name == LABEL:
                fallthrough, jump = state, None
            else:
                fallthrough, jump = transfer(uop, state) or generic_transfer(uop, state)
                if fallthrough is not state or jump is not None:
                    altered[index] = 1
            if jump is not None and uop.jump_to not in labels:
                raise AnalysisError(f"{uop.describe()}: no label")
            follow = False
            if fallthrough is not None and index < last:
                if states[index + 1] is None:  # (most often: no need to join)
                    states[index + 1] = fallthrough
                    follow = True
                else:
                    follow = merge(index + 1, fallthrough)
            if jump is not None:
                target = labels[uop.jump_to]
                if merge(target, jump) and target not in pending:
                    pending.add(target)
                    heapq.heappush(work, target)
            if not follow:
                break
            index += 1
            if index in pending:
                break
            if work and work[0] < index:
                # Something before it comes first (after a back edge): queue it.
                pending.add(index)
                heapq.heappush(work, index)
                break
            # The next uop in code order is next anyway: no need to queue it.
    return _Analysis(list(uops), states, altered)


def stack_depths(trace: Trace) -> list[int | None]:
    """The real stack depth before each uop (None: unreachable), following
    every branch with its own stack effect.  Raises AnalysisError where paths
    disagree, where a uop pops more than there is, or where the stack would
    outgrow the frame's (co_stacksize)."""
    uops = trace.uops
    limit = trace.code.co_stacksize
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    depths: list[int | None] = [None] * len(uops)
    if not uops:
        return depths
    depths[0] = 0
    last = len(uops) - 1
    work = [0]
    while work:
        index = work.pop()
        # Depth first, as with every successor put on the work stack (a
        # branch's target is taken before the uop after the branch), but
        # without queueing the successor taken next anyway.
        while index is not None:
            uop, depth = uops[index], depths[index]
            if uop.name == LABEL:
                after, branch = depth, None
            else:
                pops, pushes, falls_through, jumps, jump_pops = EFFECTS[uop.name, uop.oparg]
                if pops > depth:
                    raise AnalysisError(f"uop {index} {uop.describe()} pops {pops} of {depth} "
                                        "items")
                after = depth - pops + pushes
                if after > limit:
                    raise AnalysisError(f"uop {index} {uop.describe()} leaves {after} items "
                                        f"(the frame has room for {limit})")
                branch = None
                if jumps:
                    if uop.jump_to not in labels:
                        raise AnalysisError(f"uop {index} {uop.describe()}: no label")
                    branch = after if jump_pops is None else depth - jump_pops
                if not falls_through:
                    after = None
            following = None
            if after is not None and index < last:
                known = depths[index + 1]
                if known is None:
                    depths[index + 1] = after
                    following = index + 1
                elif known != after:
                    raise AnalysisError(f"stack depth {after} or {known} at uop {index + 1}")
            if branch is not None:
                target = labels[uop.jump_to]
                known = depths[target]
                if known is None:
                    depths[target] = branch
                    if following is not None:
                        work.append(following)
                    following = target
                elif known != branch:
                    raise AnalysisError(f"stack depth {branch} or {known} at uop {target}")
            index = following
    return depths


def instruction_depths(trace: Trace) -> dict[int, int]:
    """The interpreter's stack depth at the start of each instruction, by the
    offset a side exit resumes at (the instruction's first EXTENDED_ARG).  Read
    off the trace as translated, where each instruction's uops begin with the
    stack exactly as the interpreter has it."""
    starts = {ins.offset: ins.start for ins in trace.instructions}
    result: dict[int, int] = {}
    previous = None
    for uop, depth in zip(trace.uops, stack_depths(trace)):
        if depth is None or uop.name == LABEL:
            continue
        offset = uop.offset
        if offset != previous and offset in starts:
            result.setdefault(starts[offset], depth)
        previous = offset
    return result


_SIDE_EXITS: dict[str, tuple[bool, bool]] = {}
_NO_EXITS = (False, False)


def _side_exits(name: str) -> tuple[bool, bool]:
    """Whether uop `name` side-exits to redo its instruction (exit_target)
    and after its effect (exit_after); _NO_EXITS for labels and uops that
    do not deopt."""
    known = _SIDE_EXITS.get(name)
    if known is None:
        holes = ()
        if name != LABEL and stencil_table.uops()[name].deopts:
            stencil = stencil_table.stencils()[name]
            holes = {hole.value.value for hole in stencil.holes + stencil.cold_holes}
        known = ("exit_target" in holes, "exit_after" in holes)
        _SIDE_EXITS[name] = _NO_EXITS if known == _NO_EXITS else known
    return _SIDE_EXITS[name]


def check_stack(trace: Trace, entry_depths: dict[int, int] | None = None) -> None:
    """Check the finished trace's real stack (stack_depths), and with the
    interpreter's `entry_depths` (instruction_depths of the translated trace)
    that every side exit hands the interpreter the stack it expects: the items
    still on the stack plus those its exit steps box.  A rewrite that leaves
    items behind, pops too many or exits with the wrong stack is a bug, caught
    here before any code is emitted (raises AnalysisError)."""
    depths = stack_depths(trace)
    if entry_depths is None:
        return
    uops = trace.uops
    side_exits = _SIDE_EXITS
    boxed: dict[tuple, int] = {}  # items exit steps push, by the steps (uops share them)
    for index, depth in enumerate(depths):
        if depth is None:
            continue
        uop = uops[index]
        exits = side_exits.get(uop.name) or _side_exits(uop.name)
        if exits is _NO_EXITS:  # (labels and uops that do not deopt)
            continue
        to_target, to_after = exits
        if to_target:
            real = depth + (_boxed(uop.exit_steps, boxed) if uop.exit_steps else 0)
            if entry_depths.get(uop.exit_to, real) != real:
                _wrong_exit(index, uop, uop.exit_to, real, entry_depths)
        if to_after:
            effect = EFFECTS[uop.name, uop.oparg]
            real = depth - effect.pops + effect.pushes + _boxed(uop.exit_after_steps, boxed)
            if entry_depths.get(uop.exit_after, real) != real:
                _wrong_exit(index, uop, uop.exit_after, real, entry_depths)


def _boxed(steps: tuple, known: dict[tuple, int]) -> int:
    count = known.get(steps)
    if count is None:
        count = known[steps] = sum(step.pushes for step in steps)
    return count


def _wrong_exit(index: int, uop: UOp, resume: int, real: int, entry_depths: dict[int, int]):
    raise AnalysisError(f"uop {index} {uop.describe()} side-exits to @{2 * resume} "
                        f"with {real} stack items; the interpreter expects "
                        f"{entry_depths[resume]}")
