"""The type analysis (cpjit/analysis.py): its states must be a fixpoint of its
transfer functions.  The state before a uop that is not a label is exactly what
the uop before it makes of its own (it has no other way in); a label's covers
what every edge into it brings; and the uops reached are those a plain reference
reaches (every uop swept in order, every edge joined, until nothing changes).

(The states themselves may differ from the reference's: a transfer that trusts
feedback where the types are unknown can make a less precise state into a more
precise one, so the join of everything a sweep ever saw can be less precise than
the fixpoint.  Both are sound; the fixpoint property is what the passes rely on.)"""

import collections
import heapq
import gc
import sys
import tracemalloc
from pathlib import Path

import pytest

from cpjit import _runtime, analysis, feedback, translate
from cpjit.ir import LABEL, UOp
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


# ---- the analysis in C (csrc/analyze.c) ----
#
# _analyze runs in C, with its own generic_transfer: it must do what
# analysis.generic_transfer does, and fail cleanly on broken traces and on
# bad input.


def _same_generic_outcome(uop, state):
    """analysis.generic_transfer and its C twin (_c_generic_transfer) make the
    same outcome of `uop` from `state`, object for object where it matters,
    or raise the same error."""
    def run(transfer):
        try:
            return transfer(uop, state), None
        except Exception as e:  # noqa: BLE001  (compared)
            return None, (type(e), str(e))

    (python, python_error), (c, c_error) = run(analysis.generic_transfer), \
        run(analysis._c_generic_transfer)
    where = f"{uop.describe()} from {state}"
    assert c_error == python_error, where
    if python_error is not None:
        return python_error
    assert type(c) is tuple and len(c) == 2, where
    assert (c[0] is c[1]) == (python[0] is python[1]), where
    for made, expected in zip(c, python):
        assert (made is None) == (expected is None), where
        if made is None:
            continue
        assert type(made) is analysis.State, where
        assert (made is state) == (expected is state), where
        assert made.locals is state.locals, where
        assert (made.stack is state.stack) == (expected.stack is state.stack), where
        assert len(made.stack) == len(expected.stack), where
        assert all(a is b for a, b in zip(made.stack, expected.stack)), where
    return None


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_c_generic_transfer_on_every_visited_uop(func):
    trace = translate.translate(func.__code__)
    transfers = Specializer(trace, feedback.from_tier1(func.__code__, trace.instructions),
                            func.__globals__).transfers()
    states = analysis.analyze(trace, transfers)
    compared = 0
    for uop, state in zip(trace.uops, states):
        if state is not None and uop.name != LABEL:
            assert _same_generic_outcome(uop, state) is None
            compared += 1
    assert compared > 0


def test_c_generic_transfer_on_every_uop_and_depth():
    """Every uop of the stencil table, with a few opargs, from stacks of 0 to
    4 items: the same outcome, or the same error (an underflow: "pops")."""
    from cpjit import stencil_table
    items = (analysis.UNKNOWN, analysis.Item(int, 0), analysis.Item(float), analysis.UNKNOWN)
    locals_ = (int, analysis.ANY, analysis.UNBOUND)
    errors = 0
    for name in sorted(stencil_table.uops()):
        for oparg in (0, 1, 3):
            uop = UOp(name, oparg, jump_to=5)
            for depth in range(5):
                error = _same_generic_outcome(uop, analysis.State(items[:depth], locals_))
                if error is not None:
                    assert error[0] is analysis.AnalysisError and " pops " in error[1]
                    errors += 1
    assert errors > 0


def _sample(a, b):
    return a


def _synthetic(uops):
    """A trace of `uops`, with _sample's code (two arguments)."""
    trace = translate.translate(_sample.__code__)
    trace.uops[:] = uops
    trace.analysis = None
    return trace


def _loop_trace():
    """A loop of generic uops: _LOAD_FAST a; label 1; ...; jump back."""
    return _synthetic([
        UOp("_LOAD_FAST", 0), UOp("_STORE_FAST", 1), UOp(LABEL, 1), UOp("_LOAD_FAST", 1),
        UOp("_LOAD_FAST", 0), UOp("_BINARY_OP_ADD"), UOp("_STORE_FAST", 1),
        UOp("_LOAD_FAST", 1), UOp("_POP_JUMP_IF_TRUE", jump_to=1), UOp("_LOAD_FAST", 1),
        UOp("_RETURN_VALUE"),
    ])


def test_analysis_of_a_loop():
    trace = _loop_trace()
    found = analysis._analyze(trace, {})
    assert type(found) is analysis._Analysis
    assert found.uops == trace.uops and found.uops is not trace.uops
    assert type(found.altered) is bytearray
    # Every uop that is not a label pushes or pops: all altered but the label.
    assert list(found.altered) == [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert [len(s.stack) for s in found.states] == [0, 1, 0, 0, 1, 2, 1, 0, 1, 0, 1]
    assert all(type(s) is analysis.State for s in found.states)
    # The label's state is the join of the entry and the back edge (the same).
    assert found.states[2] == found.states[1].pop(1)


def test_analysis_error_no_label():
    trace = _synthetic([UOp("_LOAD_FAST", 0), UOp("_POP_JUMP_IF_FALSE", jump_to=9),
                        UOp("_LOAD_FAST", 0), UOp("_RETURN_VALUE")])
    with pytest.raises(analysis.AnalysisError) as error:
        analysis._analyze(trace, {})
    assert str(error.value) == "_POP_JUMP_IF_FALSE -> @18: no label"


def test_analysis_error_depths_at_a_label_fallen_into():
    # The jump reaches the label with 1 item, the fall-through with 2.
    trace = _synthetic([UOp("_LOAD_FAST", 0), UOp("_LOAD_FAST", 0),
                        UOp("_POP_JUMP_IF_FALSE", jump_to=7), UOp("_LOAD_FAST", 0),
                        UOp(LABEL, 7), UOp("_RETURN_VALUE")])
    with pytest.raises(analysis.AnalysisError) as error:
        analysis._analyze(trace, {})
    assert str(error.value) == "stack depths differ at uop 4"


def test_analysis_error_depths_at_a_label_jumped_to():
    # The entry reaches the label with no item, the back edge with 1.
    trace = _synthetic([UOp(LABEL, 3), UOp("_LOAD_FAST", 0), UOp("_LOAD_FAST", 0),
                        UOp("_POP_JUMP_IF_TRUE", jump_to=3), UOp("_RETURN_VALUE")])
    with pytest.raises(analysis.AnalysisError) as error:
        analysis._analyze(trace, {})
    assert str(error.value) == "stack depths differ at uop 0"


def test_analysis_error_pop_underflow():
    trace = _synthetic([UOp("_LOAD_FAST", 0), UOp("_BINARY_OP_ADD"), UOp("_RETURN_VALUE")])
    with pytest.raises(analysis.AnalysisError) as error:
        analysis._analyze(trace, {})
    assert str(error.value) == "_BINARY_OP_ADD pops 2 of 1 items"


def test_analysis_transfer_exception_propagates():
    raised = LookupError("from the transfer function")
    seen = []

    def transfer(uop, state):
        seen.append(uop)
        raise raised

    trace = _loop_trace()
    with pytest.raises(LookupError) as error:
        analysis._analyze(trace, {"_BINARY_OP_ADD": transfer})
    assert error.value is raised
    assert seen == [trace.uops[5]]


@pytest.mark.parametrize("bad", [42, "xy", (1, 2), (None,), (None, None, None), [None, None],
                                 ("state", None), (None, 5), ((), ())],
                         ids=repr)
def test_analysis_transfer_bad_result(bad):
    trace = _loop_trace()
    with pytest.raises(TypeError, match="transfer function of uop 5 \\(_BINARY_OP_ADD\\)"):
        analysis._analyze(trace, {"_BINARY_OP_ADD": lambda uop, state: bad})


def test_analysis_transfer_not_a_state():
    """A tuple of the right shape that is not a State (nor exactly one)."""
    class Sub(analysis.State):
        __slots__ = ()

    def transfer(uop, state):
        return (Sub(*analysis.generic_transfer(uop, state)[0]), None)

    with pytest.raises(TypeError, match="not a pair of State or None"):
        analysis._analyze(_loop_trace(), {"_BINARY_OP_ADD": transfer})
    with pytest.raises(TypeError, match="not a pair of State or None"):
        analysis._analyze(_loop_trace(), {
            "_BINARY_OP_ADD": lambda uop, state: (tuple.__new__(analysis.State, ((), (), ())),
                                                  None)})
    with pytest.raises(TypeError, match="not a pair of State or None"):
        analysis._analyze(_loop_trace(), {
            "_BINARY_OP_ADD": lambda uop, state: (analysis.State([], ()), None)})


@pytest.mark.parametrize("falsy", [None, 0, False, (), [], ""], ids=repr)
def test_analysis_transfer_falsy_result_is_generic(falsy):
    trace = _loop_trace()
    expected = analysis._analyze(trace, {})
    calls = []

    def transfer(uop, state):
        calls.append(uop)
        return falsy

    found = analysis._analyze(trace, {"_BINARY_OP_ADD": transfer, "_LOAD_FAST": transfer})
    assert found.states == expected.states and found.altered == expected.altered
    assert len(calls) == 6  # (the loop body twice: its back edge changes the label once)


def test_analysis_transfer_outcome_used():
    """A transfer's outcome is used as it is: the very objects."""
    made = []

    def transfer(uop, state):
        after = analysis.new(analysis.State, (state.stack[:-2] + (analysis.Item(int),),
                                              state.locals))
        made.append(after)
        return after, None

    found = analysis._analyze(_loop_trace(), {"_BINARY_OP_ADD": transfer})
    assert found.states[6] is made[-1]


def test_analysis_bad_input():
    trace = _loop_trace()
    entry = analysis.entry_state(trace)
    args = dict(uops=trace.uops, uop_type=UOp, label=LABEL, transfers={},
                effects=analysis.EFFECTS, entry=entry, state_type=analysis.State,
                join=analysis.State.join, unknown=analysis.UNKNOWN, error=analysis.AnalysisError)

    def call(**changes):
        return _runtime.analyze(*{**args, **changes}.values())

    assert call()[1] == analysis._analyze(trace, {}).states

    class SubUOp(UOp):
        __slots__ = ()

    sub = SubUOp.__new__(SubUOp)
    for field in ("name", "oparg", "operand0", "operand1", "offset", "exit_to", "jump_to",
                  "comment", "exit_after", "exit_steps", "exit_after_steps"):
        setattr(sub, field, getattr(trace.uops[1], field))
    nameless = UOp.__new__(UOp)
    for bad, error in [
        (dict(uops=tuple(trace.uops)), TypeError),
        (dict(uops=[]), ValueError),
        (dict(uops=trace.uops[:3] + [object()]), TypeError),
        (dict(uops=trace.uops[:1] + [sub]), TypeError),
        (dict(uops=trace.uops[:1] + [nameless]), TypeError),
        (dict(uops=[UOp(LABEL, "x")]), TypeError),
        (dict(uops=[UOp(b"_LOAD_FAST")]), TypeError),
        (dict(uop_type=int), TypeError),
        (dict(label=b"_LABEL"), TypeError),
        (dict(transfers=[]), TypeError),
        (dict(transfers=collections.OrderedDict()), TypeError),
        (dict(effects=[]), TypeError),
        (dict(entry=tuple(entry)), TypeError),
        (dict(entry=None), TypeError),
        (dict(state_type=dict), TypeError),
        (dict(join=None), TypeError),
        (dict(join=lambda old, new: (old, new)), TypeError),
        (dict(error=42), TypeError),
    ]:
        with pytest.raises(error):
            call(**bad)
    # A uop without a jump_to int, a uop whose oparg is not an int.
    with pytest.raises(TypeError):
        call(uops=trace.uops[:8] + [UOp("_POP_JUMP_IF_TRUE", jump_to="1")])
    with pytest.raises(TypeError):
        call(uops=[UOp("_LOAD_FAST", None)])
    # Effects that are not Effects.
    load = trace.uops[0]
    for effect, error in [((0, 1), TypeError), ((0, "1", True, False, None), TypeError),
                          ((-1, 0, True, False, None), ValueError),
                          ((0, 1 << 40, True, False, None), ValueError),
                          ((1, 0, True, True, 2), ValueError)]:
        with pytest.raises(error):
            call(uops=[load], effects={(load.name, load.oparg): effect})
    # What the join makes must be a State (None: differing depths).
    with pytest.raises(TypeError, match="join"):
        call(join=lambda old, new: tuple(old))
    with pytest.raises(analysis.AnalysisError, match="stack depths differ at uop 2"):
        call(join=lambda old, new: None)
    # The C generic transfer checks its state too.
    with pytest.raises(TypeError):
        analysis._c_generic_transfer(load, ((), ()))
    with pytest.raises(TypeError):
        analysis._c_generic_transfer(load, analysis.new(analysis.State, ([], ())))
    with pytest.raises(TypeError):
        analysis._c_generic_transfer(object(), entry)


def _refcounts(*objects):
    gc.collect()
    return [sys.getrefcount(o) for o in objects]


def test_analysis_does_not_leak():
    """Neither the analysis nor its error paths keep references or memory."""
    func = nested_loops
    trace = translate.translate(func.__code__)
    transfers = Specializer(trace, feedback.from_tier1(func.__code__, trace.instructions),
                            func.__globals__).transfers()
    broken = _synthetic([UOp(LABEL, 3), UOp("_LOAD_FAST", 0), UOp("_LOAD_FAST", 0),
                         UOp("_POP_JUMP_IF_TRUE", jump_to=3), UOp("_RETURN_VALUE")])
    underflow = _synthetic([UOp("_LOAD_FAST", 0), UOp("_BINARY_OP_ADD")])
    def raising(uop, state):
        raise ValueError("raised")  # (a new one: one raised again keeps its old traceback)

    def bad(uop, state):
        return (state, 42)

    def rounds(count):
        for _ in range(count):
            analysis._analyze(trace, transfers)
            for case, table in ((broken, {}), (underflow, {}), (_loop_trace(), {"_LOAD_FAST": raising}),
                                (_loop_trace(), {"_STORE_FAST": bad})):
                with pytest.raises((analysis.AnalysisError, ValueError, TypeError)):
                    analysis._analyze(case, table)

    rounds(3)  # (the caches of the transfer functions filled)
    found = analysis._analyze(trace, transfers)
    watched = (analysis.UNKNOWN, found.states[0], found.states[0].locals, trace.uops[0],
               trace.uops[5], trace.uops[0].name, transfers, broken.uops[0],
               underflow.uops[1], analysis.State, UOp, analysis.AnalysisError)
    total = getattr(sys, "gettotalrefcount", lambda: 0)
    tracemalloc.start()
    try:
        rounds(20)
        # (What the last round left: the last exception's traceback holds its
        # frames, and so the states they had; the same after every round.)
        before, total_before = _refcounts(*watched), total()
        start, _ = tracemalloc.get_traced_memory()
        rounds(200)
        after = _refcounts(*watched)
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after == before
    assert end - start < 20_000, f"{end - start} bytes more after 200 rounds"
    if total_before:
        assert total() - total_before < 1000


def python_analyze(trace, transfers):
    """The Python _analyze that csrc/analyze.c replaced (as it was, but for
    its comments: see the C file's), to check the C one against: the same
    visits in the same order, the same states and altered."""
    uops = trace.uops
    transfer_of = transfers.get
    labels = {u.oparg: i for i, u in enumerate(uops) if u.name == LABEL}
    states = [None] * len(uops)
    states[0] = analysis.entry_state(trace)
    altered = bytearray(len(uops))
    last = len(uops) - 1

    def merge(target, new):
        old = states[target]
        merged = new if old is None else old.join(new)
        if merged is None:
            raise analysis.AnalysisError(f"stack depths differ at uop {target}")
        if merged is old or merged == old:
            return False
        states[target] = merged
        return True

    work = [0]
    pending = {0}
    while work:
        index = heapq.heappop(work)
        pending.discard(index)
        state = states[index]
        while True:
            uop = uops[index]
            name = uop.name
            if name == LABEL:
                fallthrough, jump = state, None
            else:
                transfer = transfer_of(name)
                fallthrough, jump = (transfer is not None and transfer(uop, state)) \
                    or analysis.generic_transfer(uop, state)
                if fallthrough is not state or jump is not None:
                    altered[index] = 1
            if jump is not None:
                target = labels.get(uop.jump_to)
                if target is None:
                    raise analysis.AnalysisError(f"{uop.describe()}: no label")
            follow = False
            if fallthrough is not None and index < last:
                old = states[index + 1]
                if old is None:
                    states[index + 1] = fallthrough
                    follow = True
                elif uops[index + 1].name != LABEL:
                    if fallthrough is not old and fallthrough != old:
                        states[index + 1] = fallthrough
                        follow = True
                else:
                    merged = old.join(fallthrough)
                    if merged is None:
                        raise analysis.AnalysisError(f"stack depths differ at uop {index + 1}")
                    if merged is not old and merged != old:
                        states[index + 1] = merged
                        follow = True
            if jump is not None:
                if merge(target, jump) and target not in pending:
                    pending.add(target)
                    heapq.heappush(work, target)
            if not follow:
                break
            index += 1
            if work and work[0] <= index:
                if index not in pending:
                    pending.add(index)
                    heapq.heappush(work, index)
                break
            state = states[index]
    return analysis._Analysis(list(uops), states, altered)


def _logged(transfers, log):
    """`transfers`, each logging the uop it is called for."""
    def logging(transfer):
        def logged(uop, state):
            log.append(uop)
            return transfer(uop, state)
        return logged
    return {name: logging(transfer) for name, transfer in transfers.items()}


def _analyzed_both(func, which):
    """(C, Python) of: the analysis of `func`'s trace and the uops the
    transfer functions were called for, in order (or the error raised)."""
    def run(analyze):
        trace = translate.translate(func.__code__)
        found = feedback.from_tier1(func.__code__, trace.instructions) if which == "tier1" \
            else feedback.Feedback()
        log = []
        transfers = _logged(Specializer(trace, found, func.__globals__).transfers(), log)
        try:
            result = analyze(trace, transfers)
        except analysis.AnalysisError as e:
            result = str(e)
        return result, [trace.uops.index(uop) for uop in log]
    return run(analysis._analyze), run(python_analyze)


@pytest.mark.parametrize("which", ["tier1", "empty"])
@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_c_analysis_is_the_python_one(func, which):
    (c, c_calls), (python, python_calls) = _analyzed_both(func, which)
    assert c_calls == python_calls  # the same visits, in the same order
    assert type(c) is type(python)
    if isinstance(c, str):
        assert c == python
        return
    assert c.states == python.states
    assert type(c.altered) is bytearray and c.altered == python.altered
    # The same states shared between neighbours (a uop that fell through with
    # the very state it was given).
    assert [a is b for a, b in zip(c.states, c.states[1:])] \
        == [a is b for a, b in zip(python.states, python.states[1:])]


def test_analysis_altered_by_a_jump():
    """A uop that jumps alters the state even where it falls through with
    the very state it was given; one that does neither does not."""
    trace = _synthetic([UOp("_CHECK_EVAL_BREAKER"), UOp("_LOAD_FAST", 0), UOp("_STORE_FAST", 1),
                        UOp(LABEL, 1), UOp("_CHECK_EVAL_BREAKER", jump_to=1),
                        UOp("_LOAD_FAST", 1), UOp("_RETURN_VALUE")])
    found = analysis._analyze(trace, {
        "_CHECK_EVAL_BREAKER": lambda uop, state: (state, state if uop.jump_to >= 0 else None)})
    assert list(found.altered) == [0, 1, 1, 0, 1, 1, 1]
    assert found.states[1] is found.states[0]
    assert found.states[5] is found.states[4] is found.states[3]
