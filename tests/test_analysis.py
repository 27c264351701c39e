"""The type analysis (cpjit/analysis.py) against a plain reference: the fixpoint
of the same transfer functions, found by sweeping every uop in order and joining
at every edge until nothing changes.  The analysis itself joins only at labels
and revisits only what changed; both must find the very same states."""

import sys
from pathlib import Path

import pytest

from cpjit import analysis, feedback, translate
from cpjit.ir import LABEL
from cpjit.specialize import Specializer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compile_time  # noqa: E402  (benchmarks/compile_time.py)


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
            if uop.name == LABEL:
                fallthrough, jump = state, None
            else:
                transfer = transfers.get(uop.name)
                fallthrough, jump = (transfer is not None and transfer(uop, state)) \
                    or analysis.generic_transfer(uop, state)
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
def test_analysis_finds_the_reference_fixpoint(func):
    def analyzed(which):
        trace = translate.translate(func.__code__)
        found = feedback.from_tier1(func.__code__, trace.instructions)
        transfers = Specializer(trace, found, func.__globals__).transfers()
        if which == "reference":
            return trace, reference_states(trace, transfers)
        return trace, analysis.analyze(trace, transfers)

    trace, states = analyzed("analysis")
    _, expected = analyzed("reference")
    assert len(states) == len(trace.uops)
    assert any(state is not None and state.stack for state in states)
    for index, (state, reference) in enumerate(zip(states, expected)):
        assert state == reference, f"uop {index} {trace.uops[index].describe()}"
