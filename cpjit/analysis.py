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

import operator
from typing import Callable, NamedTuple

from . import _runtime, stencil_table
from .ir import LABEL, PUSHING_ACTIONS, Trace, UOp


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


ANY = _Marker("ANY")
NULL = _Marker("NULL")
UNBOUND = _Marker("UNBOUND")
MAYBE_UNBOUND = _Marker("MAYBE_UNBOUND")


# Item and State are named tuples rather than dataclasses: the analysis makes
# a State (and often an Item) for every uop it visits and compares states at
# every join, and tuples are compared in C.
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

    def pop_push(self, n: int, items: tuple[Item, ...]) -> "State":
        """pop(n).push(*items) in one step (one State made, not two)."""
        stack = self.stack
        return new(State, ((stack[:len(stack) - n] if n else stack) + items, self.locals))

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

    def store(self, index: int, value, pops: int = 0) -> "State":
        """Local `index` now holds something of type `value` (after `pops`
        items were popped): the stack items loaded from it no longer hold
        what it holds."""
        stack = self.stack
        if pops:
            stack = stack[:len(stack) - pops]
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


# What a uop does to the state: (the state on falling through, the state on
# jumping), None where it does not.  A plain pair: a transfer function makes
# one per visit, and a named tuple takes four times as long to make.
Outcome = tuple[State | None, State | None]


Transfer = Callable[[UOp, State], "Outcome | None"]
# The transfer functions by uop name (a uop without one, or whose transfer
# function returns None, has only its generic stack effect: generic_transfer).
# The analysis looks them up itself (in C), one dictionary lookup per visit:
# a dict.
Transfers = dict[str, Transfer]


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
    """Stack effect from the uop's metadata, nothing known about what it pushes.
    (_analyze has its own, in C: csrc/analyze.c generic_transfer, the same
    steps; keep the two the same: tests/test_analysis.py compares them.)"""
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
    return after if falls_through else None, jump


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


def analyze(trace: Trace, transfers: Transfers) -> list[State | None]:
    """The state before each uop (None: unreachable).  Every pass of one
    compilation analyzes with the same transfer functions (the specializer's,
    from the same feedback), so an analysis of the very same uops is reused."""
    cached = _current(trace)
    if cached is None:
        cached = trace.analysis = _analyze(trace, transfers)
    return list(cached.states)


def analysis_of(trace: Trace, transfers: Transfers) -> _Analysis:
    """analyze's analysis itself, with which uops altered the state (for a
    pass that rewrites the uops and hands the states on: see keep)."""
    cached = _current(trace)
    if cached is None:
        cached = trace.analysis = _analyze(trace, transfers)
    return cached


def keep(trace: Trace, states: list[State | None], altered: bytearray) -> None:
    """Keep `states` (and `altered`, as in _Analysis) as the analysis of the
    trace's uops as they are now.  Only for states that are exactly what
    analyze would find for them (the passes that call it say why)."""
    trace.analysis = _Analysis(list(trace.uops), states, altered)


def fuse_pairs(trace: Trace, fused: dict[int, UOp]) -> None:
    """Replace each pair of uops `index`, `index + 1` of the trace by
    `fused[index]`, which does what the pair did, with the same outcome from
    any state: the analysis is kept (each fused uop's state is its first
    uop's), since an analysis of the new uops makes the same visits with the
    same states.  (The second uops must not be jump targets.)  In place,
    the kept analysis too: only the pairs change."""
    cached = _current(trace)
    uops = trace.uops
    for index in sorted(fused, reverse=True):
        uops[index] = fused[index]
        del uops[index + 1]
        if cached is not None:
            cached.uops[index] = fused[index]
            del cached.uops[index + 1], cached.states[index + 1], cached.altered[index + 1]


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


def _analyze(trace: Trace, transfers: Transfers) -> _Analysis:
    """The state before each uop, and which uops altered it (see _Analysis).
    In C (csrc/analyze.c, which says how it walks): it runs once per
    compilation, and its bookkeeping in Python took a tenth of one.

    Uops are visited in code order (lowest index first: a loop body is
    revisited once its back edge changes the header, not once per path),
    each with what the uop before it made of its own state (`transfers`,
    called from C, or generic_transfer); a uop that is not a label has no
    other way in, so only labels join (State.join), and they only grow, so
    the walk ends."""
    return new(_Analysis, _runtime.analyze(trace.uops, UOp, LABEL, transfers, EFFECTS,
                                           entry_state(trace), State, _join, UNKNOWN,
                                           AnalysisError))


_join = State.join


def _c_generic_transfer(uop: UOp, state: State) -> Outcome:
    """generic_transfer as _analyze does it, in C (csrc/analyze.c), for the
    tests that compare the two."""
    return _runtime.generic_transfer(uop, state, UOp, EFFECTS, State, UNKNOWN, AnalysisError)


class _Steps(dict):
    """What the stack walk (csrc/stackwalk.c) needs of a uop, by (name,
    oparg), worked out on first use: (pops, pushes, flags, jump_pops), ints,
    its flags the _runtime.STEP_* bits that hold: it falls through (is not a
    terminator), jumps, has a branch that pops jump_pops of the stack before
    it (else the branch has the stack after it), side-exits to redo its
    instruction (exit_target), side-exits after its effect (exit_after)."""

    def __missing__(self, key: tuple[str, int]) -> tuple[int, int, int, int]:
        pops, pushes, falls_through, jumps, jump_pops = EFFECTS[key]
        exit_target, exit_after = _side_exits(key[0])
        flags = ((_runtime.STEP_FALLS_THROUGH if falls_through else 0)
                 | (_runtime.STEP_JUMPS if jumps else 0)
                 | (_runtime.STEP_JUMP_POPS if jump_pops is not None else 0)
                 | (_runtime.STEP_EXIT if exit_target else 0)
                 | (_runtime.STEP_EXIT_AFTER if exit_after else 0))
        known = self[key] = (pops, pushes, flags, jump_pops or 0)
        return known


class _OpargFreeSteps(dict):
    """_STEPS by uop name alone, for the uops whose stack effect does not
    depend on their oparg (no run of items); None for the others, which
    _STEPS has by (name, oparg).  (A lookup by a name is faster than by a
    (name, oparg) tuple, which is made and hashed each time.)"""

    def __missing__(self, name: str) -> tuple | None:
        spec = stencil_table.uops()[name]
        known = None
        if not any("[" in item for item in spec.inputs + spec.outputs):
            known = _STEPS[name, 0]
        self[name] = known
        return known


_STEPS = _Steps()
_OPARG_FREE_STEPS = _OpargFreeSteps()


def stack_depths(trace: Trace) -> list[int | None]:
    """The real stack depth before each uop (None: unreachable), following
    every branch with its own stack effect.  Raises AnalysisError where paths
    disagree (at a label, by falling through or by a jump), where a uop pops
    more than there is, where the stack would outgrow the frame's
    (co_stacksize), or where a branch has no label to go to."""
    return _stack_walk(trace, None)


def _stack_walk(trace: Trace, entry_depths: dict[int, int] | None,
                instructions: list | None = None):
    """stack_depths, with `entry_depths` check_stack's side-exit check on
    the same walk, and with `instructions` instruction_depths.  In C
    (csrc/stackwalk.c, which says how it walks): it runs twice per
    compilation, and in Python it took a tenth of one."""
    return _runtime.stack_walk(tuple(trace.uops), UOp, LABEL, _OPARG_FREE_STEPS, _STEPS,
                               trace.code.co_stacksize, entry_depths, PUSHING_ACTIONS,
                               AnalysisError, instructions)


def instruction_depths(trace: Trace) -> dict[int, int]:
    """The interpreter's stack depth at the start of each instruction, by the
    offset a side exit resumes at (the instruction's first EXTENDED_ARG).  Read
    off the trace as translated, where each instruction's uops begin with the
    stack exactly as the interpreter has it: the depth before each
    instruction's first reachable uop (stack_depths; raises AnalysisError as
    it does)."""
    return _stack_walk(trace, None, trace.instructions)


def _side_exits(name: str) -> tuple[bool, bool]:
    """Whether uop `name` side-exits to redo its instruction (exit_target)
    and after its effect (exit_after)."""
    holes = ()
    if stencil_table.uops()[name].deopts:
        stencil = stencil_table.stencils()[name]
        holes = {hole.value.value for hole in stencil.holes + stencil.cold_holes}
    return "exit_target" in holes, "exit_after" in holes


def check_stack(trace: Trace, entry_depths: dict[int, int] | None = None) -> None:
    """Check the finished trace's real stack (stack_depths), and with the
    interpreter's `entry_depths` (instruction_depths of the translated trace)
    that every side exit hands the interpreter the stack it expects: the items
    still on the stack plus those its exit steps box (ExitStep.pushes).  A
    rewrite that leaves items behind, pops too many or exits with the wrong
    stack is a bug, caught here before any code is emitted (raises
    AnalysisError; the first wrong side exit by index is reported after the
    walk's own errors)."""
    _stack_walk(trace, entry_depths)
