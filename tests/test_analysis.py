"""The type analysis (cpjit/analysis.py): its states must be a fixpoint of its
transfer functions.  The state before a uop that is not a label is exactly what
the uop before it makes of its own (it has no other way in); a label's covers
what every edge into it brings; and the uops reached are those a plain reference
reaches (every uop swept in order, every edge joined, until nothing changes).

(The states themselves may differ from the reference's: a transfer that trusts
feedback where the types are unknown can make a less precise state into a more
precise one, so the join of everything a sweep ever saw can be less precise than
the fixpoint.  Both are sound; the fixpoint property is what the passes rely on.)"""

import sys
from pathlib import Path

import pytest

from cpjit import analysis, feedback, translate
from cpjit.ir import LABEL
from cpjit.specialize import Specializer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compile_time  # noqa: E402  (benchmarks/compile_time.py)


def outcome(transfers, uop, state):
    """(the state on falling through, on jumping) after `uop`, as the analysis has them."""
    if uop.name == LABEL:
        return state, None
    transfer = transfers.get(uop.name)
    return (transfer is not None and transfer(uop, state)) \
        or analysis.generic_transfer(uop, state)


def reference_states(trace, transfers):
    uops = trace.uops
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    states = [None] * len(uops)
    states[0] = analysis.entry_state(trace)
    sweeps = 0
    changed = True
    while changed:
        changed, sweeps = False, sweeps + 1
        assert sweeps < 100
        for i, uop in enumerate(uops):
            state = states[i]
            if state is None:
                continue
            fallthrough, jump = outcome(transfers, uop, state)
            for target, new in ((i + 1, fallthrough), (labels.get(uop.jump_to), jump)):
                if new is None or target is None or target >= len(uops):
                    continue
                old = states[target]
                merged = new if old is None else old.join(new)
                if merged != old:
                    states[target] = merged
                    changed = True
    return states


def nested_loops(rows, n):
    total = 0
    scale = 1.0
    for row in rows:
        k = 0
        while k < n:
            if k % 3:
                total += row[k]
            else:
                scale = scale * 0.5 + k
            k += 1
        total = total + scale
    return total, scale


FUNCTIONS = [nested_loops] + [f for _, f in compile_time.kernel_functions()] \
    + [f for f, _ in compile_time.stdlib_functions()]


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_analysis_finds_a_fixpoint(func):
    def analyzed(which):
        trace = translate.translate(func.__code__)
        found = feedback.from_tier1(func.__code__, trace.instructions)
        transfers = Specializer(trace, found, func.__globals__).transfers()
        if which == "reference":
            return trace, reference_states(trace, transfers)
        return trace, analysis.analyze(trace, transfers)

    trace, states = analyzed("analysis")
    _, reference = analyzed("reference")
    uops = trace.uops
    assert len(states) == len(uops)
    assert [state is None for state in states] == [state is None for state in reference]
    assert any(state is not None and state.stack for state in states)
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    transfers = Specializer(trace, feedback.from_tier1(func.__code__, trace.instructions),
                            func.__globals__).transfers()
    for index, (uop, state) in enumerate(zip(uops, states)):
        if state is None:
            continue
        fallthrough, jump = outcome(transfers, uop, state)
        where = f"after uop {index} {uop.describe()}"
        if fallthrough is not None and index + 1 < len(uops):
            following = states[index + 1]
            if uops[index + 1].name == LABEL:
                assert following.join(fallthrough) == following, where
            else:
                assert following == fallthrough, where
        if jump is not None:
            target = states[labels[uop.jump_to]]
            assert target.join(jump) == target, where
