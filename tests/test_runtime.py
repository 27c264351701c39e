"""Running on the real frame: introspection, interrupts, recursion, tracing, refcounts, threads."""

import _thread
import gc
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest
from differential import check, fresh, run, same

import cpjit


# ---- what a callee sees of its jitted caller ----

def look_at_caller():
    caller = sys._getframe(1)
    return (caller.f_code.co_name, caller.f_lineno, caller.f_back.f_code.co_name,
            dict(caller.f_locals),
            [(s.name, s.lineno, s.line) for s in traceback.extract_stack(limit=4)[:-1]])


def introspected(n):
    total = 0
    for i in range(n):
        total += i
    seen = look_at_caller()
    return total, seen


def test_callee_sees_the_same_frames():
    w = check(introspected, 5)
    assert w.compiled


def locals_of_self(a, b):
    c = a + b
    return sorted(locals().items())


def test_locals_builtin():
    check(locals_of_self, 1, 2)


def getframe_chain(depth):
    if depth == 0:
        names = []
        frame = sys._getframe(0)
        while frame is not None and frame.f_code.co_name != "_call":
            names.append((frame.f_code.co_name, frame.f_lineno))
            frame = frame.f_back
        return names
    return getframe_chain(depth - 1)


def _with_global(name, value, func, *args):
    """Call func(*args) with module global `name` bound to `value`."""
    saved = globals()[name]
    globals()[name] = value
    try:
        return run(func, args)
    finally:
        globals()[name] = saved


def test_no_extra_frame_from_the_wrapper():
    jitted = cpjit.jit(fresh(getframe_chain), warmup=0)
    got = _with_global("getframe_chain", jitted, jitted, 3)
    want = run(fresh(getframe_chain), (3,))
    assert same(got, want), (got.summary(), want.summary())
    assert [name for name, _ in got.value[:4]] == ["getframe_chain"] * 4
    assert jitted.compiled


# ---- side exits ----

def sum_values(xs):
    total = 0
    for x in xs:
        total = total + x
    return total


@pytest.mark.parametrize("k", [0, 1, 5, 99])
def test_side_exit_in_the_middle_of_a_loop(k):
    def inputs():
        xs = list(range(100))
        xs[k] = 0.5  # the type changes at iteration k
        return (xs,)
    check(sum_values, inputs=inputs)


def concat(xs):
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total


def test_mixed_types_in_a_loop():
    check(concat, [1, 2.5, 3, True])
    check(concat, ["a", "b", "c"])
    check(concat, [[1], [2]])


def unsupported_in_loop(n):
    out = []
    for i in range(n):
        with open("/dev/null") as f:  # BEFORE_WITH: side exit
            out.append(i + len(f.name))
    return out


def test_unsupported_instruction_in_a_loop():
    w = check(unsupported_in_loop, 5)
    exits = w.stats["side_exits"]
    assert sum(exits.values()) == 1  # one exit per call: the interpreter finishes the frame


# ---- exceptions ----

def raise_in_loop(xs):
    total = 0
    for x in xs:
        total += 10 // x
    return total


def catch_in_same_function(xs):
    total = 0
    for x in xs:
        try:
            total += 10 // x
        except ZeroDivisionError:
            total -= 1
    return total


def catch_in_caller(xs):
    try:
        return raise_in_loop(xs)
    except ZeroDivisionError as e:
        return "caught", str(e), e.__traceback__.tb_next.tb_lineno


def test_exception_raised_in_machine_code():
    check(raise_in_loop, [1, 2, 0, 4])
    check(catch_in_same_function, [1, 2, 0, 4, 0])
    check(catch_in_caller, [1, 0])


def test_exception_propagates_through_jitted_caller():
    jitted_inner = cpjit.jit(fresh(raise_in_loop), warmup=0)

    def outer(xs):
        return jitted_inner(xs) + 1

    got = run(cpjit.jit(outer, warmup=0), ([5, 0],))
    assert got.exc_type is ZeroDivisionError
    assert "in outer" in got.traceback and "in raise_in_loop" in got.traceback
    assert "total += 10 // x" in got.traceback


def chained(x):
    try:
        return {}[x]
    except KeyError as e:
        raise ValueError("bad key") from e


def test_chained_exceptions():
    check(chained, "k")


# ---- interrupts and threads ----

def spin_forever():
    n = 0
    while True:
        n += 1


def spin_range(n):
    s = 0
    for i in range(n):
        s += i
    return s


def _interrupt_after(delay):
    def fire():
        time.sleep(delay)
        _thread.interrupt_main()
    thread = threading.Thread(target=fire)
    thread.start()
    return thread


@pytest.mark.parametrize("func,args", [(spin_forever, ()), (spin_range, (10**12,))])
def test_ctrl_c_stops_a_jitted_infinite_loop(func, args):
    jitted = cpjit.jit(fresh(func), warmup=0)
    thread = _interrupt_after(0.3)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        jitted(*args)
    thread.join()
    assert time.perf_counter() - started < 5
    assert jitted.compiled


def test_other_threads_get_the_gil_during_a_jitted_loop():
    jitted = cpjit.jit(fresh(spin_range), warmup=0)
    jitted(10)
    ticks = [0]
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            ticks[0] += 1

    # One call long enough for many switch intervals (5 ms): calibrated, not assumed.
    started = time.perf_counter()
    jitted(1_000_000)
    n = int(1_000_000 * 0.2 / max(time.perf_counter() - started, 1e-4))
    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.05)
    ticks[0] = 0
    started = time.perf_counter()
    jitted(n)
    elapsed = time.perf_counter() - started
    seen = ticks[0]
    stop.set()
    thread.join()
    assert seen > 1000, f"the other thread ran {seen} times in {elapsed:.2f}s"


def test_four_threads_calling_jitted_functions():
    jitted = cpjit.jit(fresh(spin_range), warmup=0)
    jitted_sum = cpjit.jit(fresh(sum_values), warmup=0)
    errors = []

    def work(seed):
        try:
            for k in range(200):
                n = seed * 100 + k
                assert jitted(n) == n * (n - 1) // 2
                xs = list(range(k)) + ([0.5] if k % 7 == 0 else [])
                assert jitted_sum(xs) == sum(xs)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert jitted.compiled and jitted_sum.compiled


# ---- recursion ----

def recurse_forever(n):
    return recurse_forever(n + 1)


def test_recursion_error_default_limit():
    jitted = cpjit.jit(fresh(recurse_forever), warmup=0)
    got = _with_global("recurse_forever", jitted, jitted, 0)
    want = run(fresh(recurse_forever), (0,))
    assert got.exc_type is want.exc_type is RecursionError
    assert got.message == want.message
    assert jitted.compiled


RECURSION_SCRIPT = textwrap.dedent("""
    import sys, cpjit
    sys.setrecursionlimit(100_000)

    @cpjit.jit(warmup=0)
    def down(n):
        return down(n + 1) + 1

    try:
        down(0)
    except RecursionError as e:
        print("RecursionError", e)
    # the interpreter is fine afterwards
    print(down.compiled, sum(range(10)))
""")


def test_unbounded_recursion_with_a_high_limit_is_not_a_crash():
    result = subprocess.run([sys.executable, "-c", RECURSION_SCRIPT], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RecursionError maximum recursion depth exceeded" in result.stdout
    assert "True 45" in result.stdout


# ---- tracing and profiling ----

def traced(n):
    total = 0
    for i in range(n):
        total += helper(i)
    return total


def helper(i):
    return i * 2


def _trace_events(func, *args):
    events = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name in ("traced", "helper", "turns_tracing_on"):
            events.append((event, frame.f_code.co_name, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    try:
        func(*args)
    finally:
        sys.settrace(None)
    return events


def test_settrace_sees_the_same_events():
    jitted = cpjit.jit(fresh(traced), warmup=0)
    jitted(2)
    assert jitted.compiled
    assert _trace_events(jitted, 3) == _trace_events(fresh(traced), 3)


def test_setprofile_sees_the_same_events():
    def profile(func, *args):
        events = []
        sys.setprofile(lambda frame, event, arg: events.append(
            (event, frame.f_code.co_name, getattr(arg, "__name__", None))))
        try:
            func(*args)
        finally:
            sys.setprofile(None)
        return [e for e in events if e[1] != "profile"]

    jitted = cpjit.jit(fresh(traced), warmup=0)
    jitted(2)
    assert profile(jitted, 3) == profile(fresh(traced), 3)


_tracer_events = []


def _tracer(frame, event, arg):
    if frame.f_code.co_name == "turns_tracing_on":
        _tracer_events.append((event, frame.f_lineno))
    return _tracer


def start_tracing():
    sys._getframe(1).f_trace = _tracer  # what pdb.set_trace() does for its caller
    sys.settrace(_tracer)


def turns_tracing_on(n):
    total = 0
    start_tracing()
    for i in range(n):
        total += i
    return total


def test_tracing_turned_on_inside_a_jitted_function():
    results = []
    for func in (cpjit.jit(fresh(turns_tracing_on), warmup=0), fresh(turns_tracing_on)):
        _tracer_events.clear()
        try:
            value = func(3)
        finally:
            sys.settrace(None)
        results.append((value, list(_tracer_events)))
    assert results[0] == results[1]
    assert results[0][1], "no events recorded"


# ---- reference counts ----

class Thing:
    pass


def uses_objects(a, b, items):
    out = [a, b]
    for x in items:
        out.append(x)
    d = {"a": a}
    t = (a, b)
    return len(out) + len(d) + len(t)


def fails_with_objects(a, b):
    c = [a, b]
    return c[5]


def test_no_reference_leaks():
    jitted_ok = cpjit.jit(fresh(uses_objects), warmup=0)
    jitted_err = cpjit.jit(fresh(fails_with_objects), warmup=0)
    a, b, items = Thing(), Thing(), [Thing(), Thing()]
    for _ in range(3):  # compile, warm caches
        jitted_ok(a, b, items)
        with pytest.raises(IndexError):
            jitted_err(a, b)
    gc.collect()
    before = [sys.getrefcount(o) for o in (a, b, items, items[0])]
    for _ in range(1000):
        jitted_ok(a, b, items)
        try:
            jitted_err(a, b)
        except IndexError:
            pass
    gc.collect()
    after = [sys.getrefcount(o) for o in (a, b, items, items[0])]
    assert before == after
    assert jitted_ok.compiled and jitted_err.compiled


def test_no_leak_through_side_exits():
    jitted = cpjit.jit(fresh(sum_values), warmup=0)
    marker = 0.5
    xs = [1, 2, marker, 3]
    jitted(xs)
    before = sys.getrefcount(marker), sys.getrefcount(xs)
    for _ in range(500):
        jitted(xs)
    assert (sys.getrefcount(marker), sys.getrefcount(xs)) == before


# ---- frames pushed by the runtime (the fast call path) ----

def capture_frame(a, b=10):
    c = a + b
    return sys._getframe()


def fails_and_keeps_frame(a):
    d = [a]
    return d[a]


def calls_capture(a):
    frame = capture_frame(a)
    return frame


def _describe_frame(frame):
    return (frame.f_code.co_name, frame.f_lineno, dict(frame.f_locals),
            frame.f_back.f_code.co_name if frame.f_back else None)


def test_frame_object_outlives_its_frame():
    got = cpjit.jit(fresh(capture_frame), warmup=0)
    for args in ((1,), (1, 2)):
        assert _describe_frame(got(*args)) == _describe_frame(fresh(capture_frame)(*args))
    frame = got(5)
    del got
    gc.collect()
    assert frame.f_locals == {"a": 5, "b": 10, "c": 15}


def test_frame_object_of_a_jitted_callee():
    jitted_capture = cpjit.jit(fresh(capture_frame), warmup=0)
    got = _with_global("capture_frame", jitted_capture, cpjit.jit(fresh(calls_capture), warmup=0), 3)
    want = run(fresh(calls_capture), (3,))
    assert _describe_frame(got.value) == _describe_frame(want.value)
    assert got.value.f_back.f_back is not None


def test_traceback_keeps_the_frames_of_jitted_functions():
    jitted = cpjit.jit(fresh(fails_and_keeps_frame), warmup=0)
    for func in (jitted, fresh(fails_and_keeps_frame)):
        try:
            func(3)
        except IndexError as error:
            tb = error.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            assert tb.tb_frame.f_locals == {"a": 3, "d": [3]}
            assert tb.tb_lineno == fails_and_keeps_frame.__code__.co_firstlineno + 2
        else:
            raise AssertionError("no IndexError")
    assert jitted.compiled


class Reporter:
    """Its finalizer records what it sees of the frame that drops it."""

    def __init__(self, log):
        self.log = log

    def __del__(self):
        caller = sys._getframe(1)
        seen = caller.f_locals
        self.log.append((caller.f_code.co_name, caller.f_lineno,
                         [seen.get(name) for name in ("total", "scale", "i")]))


def drop_inside_loops(n):
    log = []
    reporter = Reporter(log)
    total = 0
    scale = 0.5
    for i in range(n):
        total += i  # total and scale live unboxed in this loop
        scale *= 1.5
        if i == n // 2:
            reporter = None  # the finalizer runs here
    items = [Reporter(log), Reporter(log)]
    for i in range(2):
        total += 1
        items[i] = i  # and here, twice (a list store)
    for i in range(3):
        total += 1
        held = [i, (i, Reporter(log))] if i == 1 else [i, (i, i)]
        del held  # here, once: a tuple in a list (the others die quietly)
    return total, scale, log


def test_finalizers_see_the_line_and_the_locals_as_plain():
    """Objects dropped by machine code (a local store, a list store) are
    finalized with the frame as the interpreter would have it: the current
    line published, unboxed locals boxed back."""
    w = check(drop_inside_loops, 10, calls=3)
    assert w.compiled
    _, _, log = w(10)
    assert [line for _, line, _ in log] == [
        drop_inside_loops.__code__.co_firstlineno + k for k in (9, 13, 13, 17)]


def leaky(path, n):
    total = 0
    for i in range(n):
        handle = open(path)
        total += i
        handle = total  # the file is dropped unclosed here, after the last call
    return total


def test_resource_warning_names_the_line_that_dropped_the_file(tmp_path):
    import warnings
    path = tmp_path / "data.txt"
    path.write_text("x")

    def warned(func):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            func(path, 4)
            gc.collect()
        return [(w.category, w.filename, w.lineno) for w in caught]

    jitted = cpjit.jit(fresh(leaky), warmup=0)
    for _ in range(2):
        warned(jitted)
    plain = warned(leaky)
    assert [category for category, _, _ in plain] == [ResourceWarning] * 4
    assert warned(jitted) == plain
    assert jitted.compiled
