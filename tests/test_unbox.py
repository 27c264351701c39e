"""Unboxed ints and floats, differentially: every way out of raw code must leave the
interpreter exactly the state it would have had.

Each check runs a function several times (the first compilation profiles, the
second uses the profile), and the inputs of later calls are chosen to break
what earlier calls taught the compiler.
"""

import sys

import pytest
from differential import check, fresh

import cpjit


def int_loop(n, start):
    s = start
    for i in range(n):
        s += i * i
    return s


@pytest.mark.parametrize("start", [0, 2**62 - 10, -(2**62), 2**70, 1.5])
def test_int_accumulator_and_overflow(start):
    check(int_loop, 200, start, calls=3)


def test_overflow_in_the_middle_of_a_loop():
    w = check(int_loop, 10, 2**63 - 200, calls=3)
    assert w.compiled


def counts(n):
    evens = odds = 0
    i = 0
    while i < n:
        if i % 2 == 0:
            evens += 1
        else:
            odds -= 1
        i += 1
    return evens, odds, i


def test_while_loop_with_branches():
    check(counts, 101, calls=3)


def floats(xs, scale):
    total = 0.0
    for x in xs:
        total += x * scale - 1.0 / (x + 2.0)
    return total


@pytest.mark.parametrize("xs", [[0.5, 1.5, 2.25], [1, 2, 3], [0.5, 2, 3.5], [-2.0, 1.0]])
def test_floats_with_ints_mixed_in_and_division_by_zero(xs):
    check(floats, xs, 2.0, calls=3)


def mixed(n, f):
    acc = 0.0
    k = 0
    for i in range(n):
        acc += i * f
        k += i
    return acc, k


def test_int_times_float():
    check(mixed, 50, 0.5, calls=3)
    check(mixed, 50, 2, calls=3)


def division(a, b, n):
    q = 0
    r = 0
    for i in range(1, n):
        q += (a * i) // b
        r += (a * i) % b
    return q, r, a / b


@pytest.mark.parametrize("a,b", [(7, 3), (-7, 3), (7, -3), (-7, -3), (5, 0)])
def test_floor_division_and_modulo(a, b):
    check(division, a, b, 10, calls=3)


def peek_locals():
    return dict(sys._getframe(1).f_locals)


def seen_by_callee(n):
    s = 0
    t = 0.5
    snapshots = []
    for i in range(n):
        s += i
        t *= 1.5
        if i % 3 == 0:
            snapshots.append(peek_locals())
    return s, t, snapshots


def test_raw_locals_are_boxed_before_a_call_can_look():
    check(seen_by_callee, 10, calls=3)


def locals_in_loop(n):
    out = []
    x = 0
    for i in range(n):
        x += i
        out.append(sorted(locals().items()))
    return out


def test_locals_builtin_inside_an_unboxed_loop():
    check(locals_in_loop, 4, calls=3)


def raises_inside(xs):
    total = 0
    i = 0
    for x in xs:
        total += 100 // x
        i += 1
    return total, i


def test_exception_from_an_unboxed_loop():
    check(raises_inside, [5, 2, 0, 4], calls=3)


def catches_inside(xs):
    total = 0
    errors = 0
    for x in xs:
        try:
            total += 100 // x
        except ZeroDivisionError:
            errors += 1
            total -= 1
    return total, errors


def test_exception_caught_inside_an_unboxed_loop():
    check(catches_inside, [5, 0, 2, 0, 4], calls=3)


def control_flow(n, stop):
    s = 0
    for i in range(n):
        if i == stop:
            break
        if i % 3 == 0:
            continue
        s += i
    else:
        s = -s
    for j in range(n):
        s += j
        if s > 1000:
            return s, j
    return s, n


@pytest.mark.parametrize("stop", [5, 100])
def test_break_continue_else_and_return_inside_loops(stop):
    check(control_flow, 60, stop, calls=3)


def nested(n):
    total = 0
    for i in range(n):
        row = 0
        for j in range(i):
            row += i * j
        total += row
    return total


def test_nested_loops():
    check(nested, 30, calls=3)


def assigned_in_loop(n):
    for i in range(n):
        last = i * 2.5
    return last  # noqa: F821 - unbound when n == 0


def test_local_first_assigned_inside_the_loop():
    check(assigned_in_loop, 5, calls=2)
    check(assigned_in_loop, 0, calls=2)


def type_changes(xs):
    acc = 0
    for x in xs:
        acc = acc + x
    return acc


@pytest.mark.parametrize("make", [lambda: [1, 2, 3] * 5, lambda: [1, 2, 3.5, 4],
                                  lambda: [0.5] * 3 + [1], lambda: [1, 2, "x"]])
def test_value_types_changing_between_and_within_calls(make):
    check(type_changes, inputs=lambda: (make(),), calls=4)


def swaps(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a, b


def test_tuple_swap_of_raw_locals():
    check(swaps, 90, calls=3)
    check(swaps, 100, calls=3)  # past 2**63: the overflow exit keeps going in tier 1


def subscripts(xs, n):
    total = 0.0
    for i in range(n):
        xs[i] = xs[i] * 2.0 + xs[-1 - i]
        total += xs[i]
    return total, xs


def test_list_subscripts_with_raw_indexes():
    check(subscripts, inputs=lambda: ([0.5, 1.5, 2.5, 3.5], 4), calls=3)
    check(subscripts, inputs=lambda: ([0.5, 1.5], 4), calls=3)  # IndexError


def index_paths(xs, t, k, n):
    # k: a typed int index; i - k: a raw (unboxed) one; -1 and 1: constants
    total = xs[k] + t[k] + xs[-1] + t[1]
    xs[k] = total
    for i in range(n):
        total += xs[i - k] + t[i - k]
        xs[i - k] = total
    return total, xs


@pytest.mark.parametrize("k", [-5, -4, -1, 0, 3, 4])
def test_indexes_at_both_ends_of_every_index_path(k):
    """Python's index rule (cpjit_item_index): each of -len-1, -len, -1, 0,
    len-1 and len on a list and a tuple, by a typed int, a raw int and a
    constant index; the out-of-range ones raise the interpreter's IndexError."""
    check(index_paths, inputs=lambda: ([1.0, 2.0, 3.0, 4.0], (1.0, 2.0, 3.0, 4.0), 0, 4),
          calls=2)  # warm the uops up with in-range indexes
    check(index_paths, inputs=lambda: ([1.0, 2.0, 3.0, 4.0], (1.0, 2.0, 3.0, 4.0), k, 4),
          calls=3)


def accumulator_under_call(xs):
    acc = 0.0
    for x in xs:
        acc += abs(x) * 2.0  # the accumulator sits under a boxed call
    return acc


def test_raw_value_under_a_call():
    check(accumulator_under_call, [1.5, -2.5, 3.0], calls=3)
    check(accumulator_under_call, [1.5, -2.5, "3"], calls=3)


OPERATORS = ("<", "<=", "==", "!=", ">", ">=")


def _branches_on(op: str, negated: bool):
    """A loop branching on `a OP b` (or `not a OP b`: the jump the other way)
    of two raw ints, built for one operator."""
    test = f"not a {op} b" if negated else f"a {op} b"
    namespace = {}
    exec(f"def branches(pairs):\n"
         f"    taken = 0\n"
         f"    for a, b in pairs:\n"
         f"        a += 0\n"
         f"        b -= 0\n"
         f"        if {test}:\n"
         f"            taken += 1\n"
         f"    return taken\n", namespace)
    return namespace["branches"]


@pytest.mark.parametrize("negated", [False, True])
@pytest.mark.parametrize("op", OPERATORS)
def test_every_int_compare_and_branch_both_ways(op, negated):
    """Each operator has its own compare-and-jump uop; a jump on a false
    compare is one on the opposite operator: both ways, at and around equality."""
    values = [-(2**63), -3, -1, 0, 1, 2, 2**62, 2**63 - 1]
    pairs = [(a, b) for a in values for b in values]
    w = check(_branches_on(op, negated), pairs, calls=3)
    assert any(u.name.startswith("_CMP_I64_JUMP_") for u in w._info.trace.uops)


def compare_and_branch(xs, limit):
    hits = 0
    for x in xs:
        if x * 2 > limit:
            hits += 1
        elif x < -limit:
            hits -= 1
    return hits


@pytest.mark.parametrize("xs,limit", [([1, 5, -9, 7], 4), ([1.5, 5.5, -9.5], 4.0),
                                      ([1, 2**62, 3], 4), ([float("nan"), 1.0], 0.5)])
def test_compare_and_branch_on_raw_values(xs, limit):
    check(compare_and_branch, xs, limit, calls=3)


def negative(n):
    s = 0
    f = 0.0
    for i in range(n):
        s += -i
        f -= -(i * 0.5)
    return s, f


def test_negation():
    check(negative, 20, calls=3)


def interrupted(n):
    s = 0
    for i in range(n):
        s += i
    return s


def test_exit_while_unboxed_stays_correct_under_a_debug_allocator():
    import subprocess
    import textwrap
    script = textwrap.dedent("""
        import cpjit
        def f(xs, scale):
            acc = 0.0
            k = 0
            for x in xs:
                acc += x * scale + k
                k += 1
            return acc, k
        j = cpjit.jit(f)
        for xs in ([0.5, 1.5], [1.0] * 100, [2.0, 3, 4.5], [1.0, "x"]):
            try:
                print(j(xs, 2.0) == f(xs, 2.0))
            except TypeError as e:
                print(type(e).__name__)
    """)
    import os
    env = dict(os.environ, PYTHONMALLOC="debug")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "TypeError"]


def test_sum_of_squares_allocates_no_ints_per_iteration():
    jitted = cpjit.jit(int_loop)
    jitted(10, 0)
    jitted(10, 0)  # the compilation with the profile
    text = jitted.dump(sections=("uops",))
    loop = text[text.index("final:"):]
    assert "_MUL_I64" in loop and "_ADD_I64" in loop and "_FOR_ITER_RANGE_I64" in loop
    assert "_BOX_INSERT" not in loop.split("_JUMP")[0]


def bottom_compare(xs, n):
    """fannkuch's shape: a while loop whose closing compare on raw ints makes a bool
    (not fused with its branch), inside a loop that calls a function."""
    best = 0
    total = 0
    for x in xs:
        level = 1
        while level < n:
            total += level
            level += 1
        got = len(xs[:level])  # a call with arguments right after the inner loop
        if got > best:
            best = got
    return best, total, level


def test_compare_into_a_bool_leaves_nothing_on_the_stack():
    w = check(bottom_compare, list(range(30)), 5, calls=3)
    assert w.compiled


def test_the_stack_check_rejects_a_trace_that_leaves_an_item_behind():
    from cpjit import analysis, pipeline
    record = pipeline.compile_code(bottom_compare.__code__, "bottom_compare",
                                   globals_=globals())
    trace = record.trace
    analysis.check_stack(trace)  # the real trace is fine
    pop = next(i for i, u in enumerate(trace.uops) if u.name == "_STORE_FAST")
    del trace.uops[pop]  # a value never popped: the loop grows the stack
    with pytest.raises(analysis.AnalysisError, match="stack depth|room for"):
        analysis.check_stack(trace)


def powers(xs, e):
    total = 0.0
    for x in xs:
        total += x ** e + (x * 2.0) ** 0.5
    return total


@pytest.mark.parametrize("xs,e", [
    ([1.5, 2.0, 3.25], 2.5),
    ([1.5, 2.0, 3.25], 3),  # an int exponent
    ([0.0, 1.0], 0.5),  # a zero base: the interpreter's special cases
    ([-2.0], 0.5),  # a negative base: a complex result
    ([1e300], 2.0),  # overflow: OverflowError
    ([2.0, float("inf"), float("nan")], 1.5),
    ([1e-300], 5.0),  # underflow to 0.0 is no error
])
def test_float_power(xs, e):
    check(powers, xs, e, calls=3)


def test_exit_actions_match_the_runtime():
    import re
    from pathlib import Path
    from cpjit.ir import EXIT_ACTIONS
    header = (Path(__file__).resolve().parent.parent / "csrc" / "runtime.h").read_text()
    declared = {name.lower(): int(value) for name, value in
                re.findall(r"CPJIT_EXIT_([A-Z0-9_]+) = (\d+)", header)}
    assert declared == EXIT_ACTIONS


def constants_under_a_guard(xs, flag):
    """Exits at the same instruction that box different but equal constants
    (1 and 1.0 and True) must not share a stub."""
    total = 0
    for x in xs:
        if flag:
            total += x * 1 + (x < 1.0) + (x == True)  # noqa: E712
        else:
            total += x * 1.0
    return total


@pytest.mark.parametrize("xs", [[1, 2, 3], [1, 2, 2**70], [1.5, 2.5], [0, 1.5, True]])
def test_equal_constants_keep_their_type_through_side_exits(xs):
    check(constants_under_a_guard, xs, True, calls=3)
    check(constants_under_a_guard, xs, False, calls=3)


def turn_tracing_on(x):
    if x == 3:
        sys.settrace(lambda frame, event, arg: None)
    return x * 1.5


def traced_midway(xs):
    total = 0.0
    for x in xs:
        total = total + turn_tracing_on(x)  # `total` is unboxed under the call
    sys.settrace(None)
    return total


def test_exit_after_a_call_boxes_what_lies_under_it():
    try:
        w = check(traced_midway, [1.0, 2.0, 3, 4.0], calls=5, warmup=0)
    finally:
        sys.settrace(None)
    assert any(w.stats["side_exits"].values()), "the call's exit after its effect was not taken"
    uops = w._info.trace.uops
    assert any(u.exit_after_steps for u in uops if u.name.startswith("_CALL"))


def augmented_items(vectors, scale, k):
    """nbody's v[0] -= dx * m: COPY and SWAP over a constant index and raw values."""
    for v in vectors:
        v[0] -= v[1] * scale
        v[-1] += scale * 2.0
        v[k] *= 1.5
        v[1], v[0] = v[0], v[1]
    return vectors


@pytest.mark.parametrize("make", [
    lambda: ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], 0.5, 2),
    lambda: ([[1.0, 2.0, 3.0], [4, 5, 6]], 0.5, 1),  # ints among the floats
    lambda: ([[1.0, 2.0]], 0.5, 2),  # index out of range: IndexError
    lambda: ([[1.0, 2.0, 3.0], (4.0, 5.0, 6.0)], 0.5, 0),  # a tuple: TypeError
    lambda: ([[1.0, 2.0, 3.0]] * 3, 2, -3),  # one list three times, an int scale
])
def test_augmented_subscripts_with_raw_values(make):
    check(augmented_items, inputs=make, calls=3)


def test_the_augmented_subscript_pattern_keeps_values_raw():
    w = check(augmented_items, inputs=lambda: ([[1.0, 2.0, 3.0]] * 4, 0.5, 2), calls=3)
    names = [u.name for u in w._info.trace.uops]
    # v[0] -= ...: the item read straight into a slot, the result stored from one
    assert "_POP_LIST_ITEM_F64" in names and "_STORE_LIST_ITEM_F64" in names
    assert names.count("_SWAP") == 1  # the tuple swap; the augmented ones are virtual


def differences(a, b):
    """nbody's dx = a[0] - b[0]: both items read straight into slots, the
    deeper one while the second list is still to be loaded."""
    total = 0.0
    for k in range(len(a)):
        total += a[k][0] - b[k][0] + a[k][1] * b[k][1]
    return total


@pytest.mark.parametrize("make", [
    lambda: ([[1.0, 2.0]] * 5, [[0.5, 4.0]] * 5),
    lambda: ([[1.0, 2.0]] * 3 + [[1, 2.0]], [[0.5, 4.0]] * 4),  # an int item (deeper)
    lambda: ([[1.0, 2.0]] * 4, [[0.5, 4.0]] * 3 + [["x", 4.0]]),  # a str item: TypeError
    lambda: ([[1.0, 2.0]] * 3 + [[1.0]], [[0.5, 4.0]] * 4),  # too short: IndexError
])
def test_list_items_unboxed_where_they_are_read(make):
    w = check(differences, inputs=make, calls=3)
    assert w.compiled


def shared_items(n):
    v = [float(n), float(n + 1)]
    first = v[0]  # the float in v[0] is also `first`'s
    total = float(n)
    alias = total  # and the one in `total` is also `alias`'s
    for i in range(n):
        v[0] += 0.25
        v[1] -= 0.5
        total += v[0]
    return v, first, total, alias


def test_floats_referenced_elsewhere_are_never_changed_in_place():
    check(shared_items, 20, calls=3)


def bump(v, n):
    for i in range(n):
        v[0] += 0.25
    return v


def test_a_float_only_its_list_holds_is_updated_in_place():
    w = cpjit.jit(fresh(bump), warmup=0)
    w([0.0], 10)
    w([0.0], 10)  # the compilation with the profile
    v = [float("1.5")]
    before = id(v[0])
    assert w(v, 100) == [26.5]
    assert id(v[0]) == before  # no float allocated per iteration


def accumulate(start, n):
    total = start
    for i in range(n):
        total += i
    return total


def test_a_loop_entry_guard_that_keeps_failing_is_compiled_away():
    """`total` enters the loop as an int for a while, then as a float: the guard in
    front of the loop side-exits until the function is compiled again without it."""
    w = cpjit.jit(fresh(accumulate), warmup=0)
    for _ in range(3):
        assert w(1, 50) == accumulate(1, 50)
    names = [u.name for u in w._info.trace.uops]
    assert "_GUARD_LOCAL_TYPE" in names
    for k in range(200):
        assert w(0.5 + k, 50) == accumulate(0.5 + k, 50)
    assert w.compiled
    assert "_GUARD_LOCAL_TYPE" not in [u.name for u in w._info.trace.uops]
    before = sum(w.stats["side_exits"].values())
    for k in range(50):
        assert w(0.5 + k, 50) == accumulate(0.5 + k, 50)
    assert sum(w.stats["side_exits"].values()) == before  # no more exits


def caller_local(name):
    return sys._getframe(1).f_locals[name]


def synced_once_per_store(n, step):
    """`step` is raw but never stored in the loop; `total` is stored twice per
    iteration, each time before calls that look at it."""
    total = 0
    seen = []
    for i in range(n):
        total += step
        seen.append(caller_local("total"))  # synced here...
        seen.append(caller_local("total"))  # ...and still boxed here
        seen.append(caller_local("step"))
        total += i
        seen.append(caller_local("total"))  # stored since: synced again
        seen.append(caller_local("i"))
    return total, seen


def test_callees_see_raw_locals_synced_only_where_they_changed():
    w = check(synced_once_per_store, 12, 3, calls=3)
    final = w.dump(sections=("uops",))
    final = final[final.index("final:"):]
    names = synced_once_per_store.__code__.co_varnames
    syncs = [names[int(line.split("oparg=")[1].split()[0])]
             for line in final.splitlines() if "_SYNC_LOCAL_I64" in line]
    # Never `step` (not stored in the loop, so never changed in its slot).
    # In the loop, `total` and `i` before the first call and `total` again after
    # its second store: a call that follows another with no store between needs
    # no sync.  Then both on the way out of the loop.
    assert final.count("_ENTER_LOCAL_I64") == 3, final
    assert syncs == ["total", "i", "total", "total", "i"], final


def int_true_division(n, divisor, big):
    total = 0.0
    for i in range(n):
        total += (big + i) / (divisor + i)
    return total


@pytest.mark.parametrize("divisor, big", [(3, 7), (0, 7), (3, 2**62 + 1), (-5, 2**53 + 1),
                                          (0.5, 2**62 + 1)])
def test_int_true_division_is_the_interpreter_s(divisor, big):
    # int / int is not float arithmetic: CPython divides big ints exactly
    # (not their nearest floats) and says "division by zero", not "float
    # division by zero" (a raw float division's side exit would box the
    # ints as floats).  Found by tests/test_fuzz.py.
    check(int_true_division, 4, divisor, big, calls=3)
    w = check(int_true_division, 4, 3, 2**62 + 1, calls=3)
    assert "_DIV_F64" not in [u.name for u in w._info.trace.uops]
