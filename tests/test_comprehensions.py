"""Comprehensions of a jitted function run as machine code: their code objects
are compiled with the function and their machine code attached to them
(_runtime.attach_code), so that the function's calls of them enter it.
Differentially against the interpreter, with the entries counted."""

import gc
import sys

import pytest
from differential import check, fresh, run, same

import cpjit
from cpjit import _runtime


def entries() -> int:
    return _runtime.counters()["entries"]


def comprehensions(xs, scale):
    squares = [x * x for x in xs if x % 3]
    evens = {x % 7 for x in xs if x % 2 == 0}
    index = {x: i * scale for i, x in enumerate(xs)}
    grid = [[a + b for b in range(3)] for a in xs[:4]]  # nested: the inner one too
    return squares, evens, index, grid


def nested_codes(func):
    """Every comprehension code object of `func`, nested ones included."""
    found = []
    stack = [func.__code__]
    while stack:
        code = stack.pop()
        for const in code.co_consts:
            if hasattr(const, "co_code") and const.co_name.startswith("<"):
                found.append(const)
                stack.append(const)
    return found


def test_comprehensions_run_as_machine_code():
    w = check(comprehensions, list(range(40)), 3, calls=8)
    codes = nested_codes(w.__wrapped__)
    assert len(codes) == 5
    attached = [_runtime.attached_code(c) for c in codes]
    assert all(a is not None for a in attached), [c.co_name for c in codes]
    before = entries()
    w(list(range(10)), 2)
    # the function itself, its four comprehensions and the inner one 4 times
    assert entries() - before == 1 + 4 + 4
    assert [n.qualname for n in w._info.nested] == [
        "comprehensions.<listcomp>", "comprehensions.<setcomp>", "comprehensions.<dictcomp>",
        "comprehensions.<listcomp>", "comprehensions.<listcomp>.<listcomp>"]


def raising(xs, divisor):
    return [x // divisor for x in xs]


@pytest.mark.parametrize("divisor", [1, 0, "a"])
def test_an_error_inside_a_comprehension(divisor):
    """The traceback has the comprehension's frame and line, as plain."""
    check(raising, [3, 4, 5], divisor, calls=6)


def closure(xs, offset):
    bump = offset * 2
    return [x + bump + offset for x in xs], {k: bump for k in xs[:2]}


def test_a_comprehension_using_the_function_s_locals():
    w = check(closure, [1, 2, 3], 10, calls=8)
    assert all(n.record is not None for n in w._info.nested), \
        [n.reason for n in w._info.nested]


def over(iterable):
    return [item for item in iterable]


def generated(n):
    yield from range(n)
    raise ValueError("generator failed")


def test_iterables_of_every_kind():
    w = check(over, [1, 2], calls=8)
    for iterable in ((1, 2), "abc", {1: 2}, range(5), 5, None):
        assert same(run(fresh(over), (iterable,)), run(w, (iterable,)))
    # iterators are consumed by a run: each run gets its own
    for make in (lambda: iter([4, 5]), lambda: map(str, [1, 2]), lambda: generated(3)):
        assert same(run(fresh(over), (make(),)), run(w, (make(),)))


def test_tracing_runs_comprehensions_in_the_interpreter():
    w = check(comprehensions, list(range(10)), 1, calls=8)
    seen = []

    def tracer(frame, event, arg):
        if event == "call":
            seen.append(frame.f_code.co_name)
        return None

    sys.settrace(tracer)
    try:
        result = w(list(range(5)), 1)
    finally:
        sys.settrace(None)
    assert result == comprehensions(list(range(5)), 1)
    assert seen.count("<listcomp>") == 1 + 4 + 1  # every comprehension frame is seen


def test_attached_code_goes_with_the_function():
    def make():
        def f(xs):
            return [x + 1 for x in xs]
        return f

    f = make()
    w = cpjit.jit(f, warmup=0)
    for _ in range(6):
        w([1, 2])
    inner = nested_codes(f)[0]
    assert _runtime.attached_code(inner) is not None
    del w
    gc.collect()
    assert _runtime.attached_code(inner) is None
    assert f([1, 2]) == [2, 3]


def storming(w, xs, expected, calls=100):
    """Call `w` with floats where its comprehension speculated on ints:
    right every time, the side exits of the int guard piling up."""
    for _ in range(calls):
        assert w(xs) == expected


def test_a_comprehension_s_storm_compiles_its_function_again():
    """Compiled for ints (its profile), then given floats: after a storm of
    side exits the comprehension runs in the interpreter, right as before,
    until its function's next call compiles both again, the comprehension
    without speculating where its guard kept failing; then it runs as
    machine code again, right for floats and ints alike."""
    def mixed(xs):
        return [x + 1 for x in xs]

    w = check(mixed, [1, 2, 3], calls=8)
    first = w._info
    nested = first.nested[0].record
    assert "_ADD_I64" in [u.name for u in nested.trace.uops]
    storming(w, [1.5, 2.5], [2.5, 3.5])
    assert sum(nested.emitted.exit_counts(nested.emitted.code).values()) >= 64
    after = w._info
    assert after is not first and after.generation == first.generation + 1
    renewed = after.nested[0].record
    add = [u for u in renewed.trace.uops if "ADD" in u.name]
    assert [u.name for u in add] == ["_BINARY_OP_ADD"]
    assert add[0].offset in renewed.feedback.no_speculation
    assert _runtime.attached_code(renewed.code) is renewed.emitted.code
    for xs, expected in (([0.5], [1.5]), ([5, 6], [6, 7])):
        before = entries()
        assert w(xs) == expected
        assert entries() - before == 2  # the function and its comprehension
    storming(w, [0.5, 1], [1.5, 2])
    assert w._info is after  # (nothing fails any more)


def test_an_inner_comprehension_s_storm_compiles_the_function_again():
    """The inner comprehension storms: the outer one (which calls it) passes
    the storm on; the function compiles all of them again."""
    def grid(rows):
        return [[x * 2 for x in row] for row in rows]

    w = check(grid, [[1, 2], [3]], calls=8)
    first = w._info
    storming(w, [[0.5, 1.5]] * 3, [[1.0, 3.0]] * 3)
    assert w._info.generation == first.generation + 1
    inner = w._info.nested[1]
    assert inner.qualname.endswith("<listcomp>.<listcomp>")
    assert "_MUL_I64" not in [u.name for u in inner.record.trace.uops]
    before = entries()
    assert w([[0.5], [2.5]]) == [[1.0], [5.0]]
    assert entries() - before == 1 + 1 + 2  # function, outer, inner twice


def test_a_storm_is_passed_on_once(monkeypatch):
    """A function that may not be compiled again (MAX_GENERATIONS reached):
    the storm of its comprehension asks once, the comprehension runs in the
    interpreter from then on, and the function stays right."""
    from cpjit import _api

    asked = []
    recompilation = _api._recompilation
    monkeypatch.setattr(_api, "_recompilation",
                        lambda *args: asked.append(1) or recompilation(*args))

    def shifted(xs):
        return [x + 1 for x in xs]

    w = check(shifted, [1, 2], calls=8)
    monkeypatch.setattr(_api, "MAX_GENERATIONS", w._info.generation)
    asked.clear()
    storming(w, [1.5] * 3, [2.5] * 3)
    assert len(asked) == 1
    storming(w, [1.5] * 3, [2.5] * 3, calls=20)
    assert len(asked) == 1
    before = entries()
    assert w([1, 0.5]) == [2, 1.5]
    assert entries() - before == 1  # the function only


def test_the_dump_shows_the_comprehensions():
    def doubled(xs):
        return [x * 2 for x in xs], {x: 0 for x in xs}

    w = cpjit.jit(doubled, warmup=0)
    for _ in range(8):
        w([1, 2])
    text = w.dump(timings=False)
    assert "comprehensions compiled with it" in text
    for name in (f"{w.__qualname__}.<listcomp>", f"{w.__qualname__}.<dictcomp>"):
        assert f"    {name}: " in text and " uops, " in text
        assert f"cpjit dump of {w.__module__}.{name}" in text  # its own dump follows
    assert text.count("== 5. Machine code ==") == 3


def test_a_comprehension_that_does_not_compile_runs_in_the_interpreter(monkeypatch):
    from cpjit import pipeline

    compile_code = pipeline.compile_code

    def refusing(code, qualname, **options):
        if code.co_name == "<listcomp>":
            raise pipeline.PassError("pass unbox failed on it: a test")
        return compile_code(code, qualname, **options)

    monkeypatch.setattr(pipeline, "compile_code", refusing)
    w = check(comprehensions, list(range(20)), 2, calls=8)
    reasons = {n.qualname: n.reason for n in w._info.nested}
    assert reasons["comprehensions.<listcomp>"] == "pass unbox failed on it: a test"
    assert reasons["comprehensions.<setcomp>"] is None
    assert "comprehensions.<listcomp>: runs in the interpreter: pass unbox failed" in w.dump()


def test_the_command_line_dump_shows_the_comprehensions(tmp_path):
    from cpjit import dump

    source = tmp_path / "with_comprehension.py"
    source.write_text("def f(xs):\n    return [x * 2 for x in xs if x]\n")
    text = dump.dump_file_function(f"{source}:f", call="[1, 2, 0]", timings=False)
    assert "    f.<listcomp>: " in text
    assert "cpjit dump of with_comprehension.f.<listcomp>" in text


def test_a_function_whose_loop_is_a_comprehension_compiles_at_its_first_call():
    """As a function with a loop of its own does: one call can run long."""
    def only(xs):
        return [x for x in xs]

    def none(xs):
        return len(xs)

    w, v = cpjit.jit(only), cpjit.jit(none)
    assert w([1]) == [1] and v([1]) == 1
    assert w.compiled and not v.compiled
