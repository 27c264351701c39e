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

import dataclasses
import functools
import heapq
from typing import Callable

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


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """What is known about one stack item."""

    type: object = ANY  # an exact type, ANY or NULL
    alias: int = -1  # local it was loaded from, while that local is unchanged
    hint: object = None  # a likely type (from a builtin's known result); not a fact


UNKNOWN = Item()


def join_type(a, b):
    if a is b:
        return a
    if a is UNBOUND or b is UNBOUND or a is MAYBE_UNBOUND or b is MAYBE_UNBOUND:
        return MAYBE_UNBOUND
    return ANY


def join_item(a: Item, b: Item) -> Item:
    if a == b:
        return a
    return Item(join_type(a.type, b.type), a.alias if a.alias == b.alias else -1,
                a.hint if a.hint is b.hint else None)


@dataclasses.dataclass(frozen=True, slots=True)
class State:
    stack: tuple[Item, ...]
    locals: tuple[object, ...]

    def join(self, other: "State") -> "State | None":
        if len(self.stack) != len(other.stack):
            return None  # inconsistent depths: give up on this trace
        stack = self.stack if self.stack == other.stack else \
            tuple(join_item(a, b) for a, b in zip(self.stack, other.stack))
        locals_ = self.locals if self.locals == other.locals else \
            tuple(join_type(a, b) for a, b in zip(self.locals, other.locals))
        if stack is self.stack and locals_ is self.locals:
            return self
        return State(stack, locals_)

    def push(self, *items: Item) -> "State":
        return State(self.stack + items, self.locals)

    def pop(self, n: int) -> "State":
        return State(self.stack[:len(self.stack) - n] if n else self.stack, self.locals)

    def refine(self, index: int, proven) -> "State":
        """Local `index` (and the stack items loaded from it) proven to have type `proven`."""
        locals_ = self.locals[:index] + (proven,) + self.locals[index + 1:]
        stack = tuple(dataclasses.replace(item, type=proven) if item.alias == index else item
                      for item in self.stack)
        return State(stack, locals_)

    def store(self, index: int, value) -> "State":
        locals_ = self.locals[:index] + (value,) + self.locals[index + 1:]
        stack = tuple(dataclasses.replace(item, alias=-1) if item.alias == index else item
                      for item in self.stack)
        return State(stack, locals_)


@dataclasses.dataclass
class Outcome:
    """What a uop does to the state: on falling through, and on jumping."""

    fallthrough: State | None
    jump: State | None = None


Transfer = Callable[[UOp, State], "Outcome | None"]

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
    spec = stencil_table.uops()[uop.name]
    pops, pushes = spec.pops(uop.oparg), spec.pushes(uop.oparg)
    if pops > len(state.stack):
        raise AnalysisError(f"{uop.describe()} pops {pops} of {len(state.stack)} items")
    after = state.pop(pops).push(*([UNKNOWN] * pushes))
    jump = None
    if spec.jumps:
        jump = after if spec.jump_pops is None else state.pop(spec.jump_pops)
    return Outcome(None if terminates(uop.name) else after, jump)


class AnalysisError(Exception):
    """The trace does not have a consistent stack; optimizations skip it."""


def analyze(trace: Trace, transfer: Transfer) -> list[State | None]:
    """The state before each uop (None: unreachable).  Every pass of one
    compilation analyzes with the same transfer functions (the specializer's,
    from the same feedback), so an analysis of the very same uops is reused."""
    cached = trace.analysis
    if cached is not None and len(cached[0]) == len(trace.uops) \
            and all(a is b for a, b in zip(cached[0], trace.uops)):
        return list(cached[1])
    states = _analyze(trace, transfer)
    trace.analysis = (list(trace.uops), states)
    return list(states)


def _analyze(trace: Trace, transfer: Transfer) -> list[State | None]:
    uops = trace.uops
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    states: list[State | None] = [None] * len(uops)
    states[0] = entry_state(trace)
    # Visit in code order (lowest index first): a loop body is revisited once
    # its back edge changes the header, not once per path.
    work = [0]
    pending = {0}
    while work:
        index = heapq.heappop(work)
        pending.discard(index)
        uop = uops[index]
        state = states[index]
        if uop.name == LABEL:
            outcome = Outcome(state)
        else:
            outcome = transfer(uop, state) or generic_transfer(uop, state)
        targets = []
        if outcome.fallthrough is not None and index + 1 < len(uops):
            targets.append((index + 1, outcome.fallthrough))
        if outcome.jump is not None:
            if uop.jump_to not in labels:
                raise AnalysisError(f"{uop.describe()}: no label")
            targets.append((labels[uop.jump_to], outcome.jump))
        for target, new in targets:
            old = states[target]
            merged = new if old is None else old.join(new)
            if merged is None:
                raise AnalysisError(f"stack depths differ at uop {target}")
            if merged is not old and merged != old:
                states[target] = merged
                if target not in pending:
                    pending.add(target)
                    heapq.heappush(work, target)
    return states


def stack_depths(trace: Trace) -> list[int | None]:
    """The real stack depth before each uop (None: unreachable), following
    every branch with its own stack effect.  Raises AnalysisError where paths
    disagree, where a uop pops more than there is, or where the stack would
    outgrow the frame's (co_stacksize)."""
    specs = stencil_table.uops()
    uops = trace.uops
    limit = trace.code.co_stacksize
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    depths: list[int | None] = [None] * len(uops)
    if not uops:
        return depths
    depths[0] = 0
    work = [0]
    while work:
        index = work.pop()
        uop, depth = uops[index], depths[index]
        targets = []
        if uop.name == LABEL:
            targets.append((index + 1, depth))
        else:
            spec = specs[uop.name]
            pops, pushes = spec.pops(uop.oparg), spec.pushes(uop.oparg)
            if pops > depth:
                raise AnalysisError(f"uop {index} {uop.describe()} pops {pops} of {depth} items")
            after = depth - pops + pushes
            if after > limit:
                raise AnalysisError(f"uop {index} {uop.describe()} leaves {after} items "
                                    f"(the frame has room for {limit})")
            if not terminates(uop.name):
                targets.append((index + 1, after))
            if spec.jumps:
                if uop.jump_to not in labels:
                    raise AnalysisError(f"uop {index} {uop.describe()}: no label")
                targets.append((labels[uop.jump_to], spec.jump_depth(depth, uop.oparg)))
        for target, after in targets:
            if target >= len(uops):
                continue
            if depths[target] is None:
                depths[target] = after
                work.append(target)
            elif depths[target] != after:
                raise AnalysisError(f"stack depth {after} or {depths[target]} at uop {target}")
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
        if uop.name == LABEL or depth is None:
            continue
        if uop.offset != previous and uop.offset in starts:
            result.setdefault(starts[uop.offset], depth)
        previous = uop.offset
    return result


@functools.lru_cache(maxsize=None)
def _exit_holes(name: str) -> frozenset[str]:
    stencil = stencil_table.stencils()[name]
    return frozenset(hole.value.value for hole in stencil.holes + stencil.cold_holes)


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
    specs = stencil_table.uops()
    for index, (uop, depth) in enumerate(zip(trace.uops, depths)):
        if depth is None or uop.name == LABEL or "DEOPTS" not in specs[uop.name].flags:
            continue
        spec = specs[uop.name]
        holes = _exit_holes(uop.name)
        exits = []
        if "exit_target" in holes:
            boxed = sum(step.pushes for step in uop.exit_steps)
            exits.append((uop.exit_to, depth + boxed))
        if "exit_after" in holes:
            boxed = sum(step.pushes for step in uop.exit_after_steps)
            exits.append((uop.exit_after,
                          depth - spec.pops(uop.oparg) + spec.pushes(uop.oparg) + boxed))
        for resume, real in exits:
            expected = entry_depths.get(resume)
            if expected is not None and expected != real:
                raise AnalysisError(f"uop {index} {uop.describe()} side-exits to @{2 * resume} "
                                    f"with {real} stack items; the interpreter expects {expected}")
