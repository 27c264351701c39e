"""The public API: the wrapper as a stand-in for the function, errors, modules, switches."""

import copy
import functools
import gc
import importlib
import inspect
import os
import pickle
import subprocess
import sys
import textwrap
import types
import weakref

import pytest
from differential import fresh

import cpjit


@cpjit.jit
def documented(a: int, b: str = "x", *rest, key=None, **extra) -> tuple:
    """The docstring."""
    return a, b, rest, key, extra


class Vector:
    def __init__(self, x, y):
        self.x, self.y = x, y

    @cpjit.jit(warmup=0)
    def dot(self, other):
        return self.x * other.x + self.y * other.y

    @cpjit.jit
    @staticmethod
    def zero():
        return Vector(0, 0)

    @cpjit.jit
    @classmethod
    def unit(cls):
        return cls(1, 0)


def test_wrapper_looks_like_the_function():
    func = documented.__wrapped__
    assert isinstance(func, types.FunctionType)
    assert documented.__name__ == "documented"
    assert documented.__qualname__ == "documented"
    assert documented.__doc__ == "The docstring."
    assert documented.__module__ == __name__
    assert documented.__code__ is func.__code__
    assert documented.__defaults__ == ("x",)
    assert documented.__kwdefaults__ == {"key": None}
    assert documented.__globals__ is globals()
    assert documented.__annotations__ == func.__annotations__
    assert inspect.signature(documented) == inspect.signature(func)
    assert documented(1, "y", 3, key=4, z=5) == (1, "y", (3,), 4, {"z": 5})
    assert "documented" in repr(documented)


def test_methods_bind():
    v, w = Vector(1, 2), Vector(3, 4)
    assert v.dot(w) == 11
    assert Vector.dot(v, w) == 11
    bound = v.dot
    assert bound.__self__ is v and bound() if False else bound(w) == 11
    assert Vector.zero().x == 0 and Vector.unit().x == 1
    assert isinstance(vars(Vector)["zero"], staticmethod)
    assert isinstance(vars(Vector)["unit"], classmethod)
    assert vars(Vector)["dot"].compiled


def test_pickle_and_copy_by_reference():
    assert pickle.loads(pickle.dumps(documented)) is documented
    assert copy.copy(documented) is documented
    assert copy.deepcopy(documented) is documented
    assert pickle.loads(pickle.dumps(Vector.dot)) is vars(Vector)["dot"]


def test_attributes_of_the_function_and_the_wrapper():
    def f():
        return 1
    f.custom = "kept"
    wrapper = cpjit.jit(f)
    assert wrapper.custom == "kept"
    wrapper.other = 2
    assert wrapper.other == 2
    wrapper.__defaults__ = None
    assert f.__defaults__ is None


def test_rebinding_code_recompiles():
    def f(x):
        for _ in range(1):
            pass
        return x + 1

    def g(x):
        for _ in range(1):
            pass
        return x * 10

    wrapper = cpjit.jit(f)
    assert wrapper(1) == 2 and wrapper.compiled
    wrapper.__code__ = g.__code__
    assert wrapper(2) == 20
    assert wrapper.compiled


def test_wrapping_a_wrapper_is_a_no_op():
    assert cpjit.jit(documented) is documented
    assert cpjit.jit(strict=True)(documented) is documented


@pytest.mark.parametrize("bad", [42, len, dict, print, "text", functools.partial(print, 1),
                                 [].append, object(), Vector(1, 2).dot.__func__])
def test_bad_input_raises_type_error(bad):
    if isinstance(bad, cpjit._runtime.JitFunction):
        assert cpjit.jit(bad) is bad
        return
    with pytest.raises(TypeError, match="cpjit.jit\\(\\) expects a Python function"):
        cpjit.jit(bad)


def test_bad_warmup():
    with pytest.raises(ValueError):
        cpjit.jit(warmup=-1)(lambda: 0)


def test_compiled_fallback_reason_and_stats():
    def loop(n):
        total = 0
        for i in range(n):
            total += i
        return total

    wrapper = cpjit.jit(loop)
    assert not wrapper.compiled and wrapper.fallback_reason is None
    assert wrapper.stats["calls"] == 0
    assert wrapper(100) == 4950  # a loop: compiled at the first call
    stats = wrapper.stats
    assert wrapper.compiled and wrapper.fallback_reason is None
    assert stats["uops"] > 5 and stats["code_bytes"] > 100
    assert stats["compile_time"] > 0 and set(stats["pass_times"]) >= {"translate", "emit"}
    assert isinstance(stats["side_exits"], dict)


def test_warmup_counts_calls_in_the_interpreter():
    def no_loop(x):
        return x + 1

    wrapper = cpjit.jit(no_loop, warmup=3)
    for i in range(3):
        assert wrapper(i) == i + 1
        assert not wrapper.compiled
    assert wrapper(10) == 11
    assert wrapper.compiled


def test_generators_fall_back_with_a_reason():
    def gen(n):
        yield from range(n)

    wrapper = cpjit.jit(gen, warmup=0)
    assert list(wrapper(3)) == [0, 1, 2]
    assert not wrapper.compiled
    assert "generators" in wrapper.fallback_reason
    with pytest.raises(cpjit.JitError, match="generators"):
        cpjit.jit(gen, strict=True)


def test_strict_refuses_instructions_that_side_exit():
    def uses_with(path):
        with open(path) as f:
            return f.read()

    with pytest.raises(cpjit.JitError, match="BEFORE_WITH"):
        cpjit.jit(uses_with, strict=True)
    def plain_loop(n):
        total = 0
        for i in range(n):
            total += i * i
        return total

    strict = cpjit.jit(strict=True)(plain_loop)
    assert strict(10) == 285 and strict.compiled


def test_a_function_running_one_long_loop_is_compiled_at_its_first_call():
    def long_loop(n):
        total = 0
        for i in range(n):
            total += i
        return total

    wrapper = cpjit.jit(long_loop)
    before = cpjit._runtime.counters()["entries"]
    assert wrapper(1_000_000) == 499999500000
    assert wrapper.compiled
    assert cpjit._runtime.counters()["entries"] == before + 1


def _mapping_at(address):
    """The permissions of the mapping that holds `address` ("" when unmapped)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            bounds, perms = line.split()[:2]
            start, end = (int(part, 16) for part in bounds.split("-"))
            if start <= address < end:
                return perms
    return ""


def _looping(n):
    for i in range(n):
        pass
    return n


def test_memory_is_released_with_the_wrapper():
    before = cpjit._runtime.counters()["code_bytes"]
    wrapper = cpjit.jit(fresh(_looping))
    wrapper(3)
    code = wrapper._code
    address = code.address
    assert _mapping_at(address).startswith("r-x")
    assert cpjit._runtime.counters()["code_bytes"] > before
    code_ref = weakref.ref(code)
    del code, wrapper
    gc.collect()
    assert code_ref() is None
    assert cpjit._runtime.counters()["code_bytes"] == before
    # Unmapped, or kept for reuse: then no longer executable.
    assert "x" not in _mapping_at(address)


def test_freed_code_memory_is_reused_and_bounded():
    """Freed code memory goes to a small pool (at most 4 MiB, never executable)
    and the next compilations take it from there: compiling and dropping many
    functions maps nothing new, and each reused block runs its new code."""
    counters = cpjit._runtime.counters
    live = counters()["code_bytes"]
    addresses = set()
    for k in range(40):
        wrapper = cpjit.jit(fresh(_looping), warmup=0)
        assert wrapper(k) == k
        assert wrapper.compiled
        addresses.add(wrapper._code.address)
        assert _mapping_at(wrapper._code.address).startswith("r-x")
        del wrapper
        gc.collect()
        assert counters()["code_bytes"] == live
        assert 0 < counters()["pooled_bytes"] <= 4 << 20
    assert len(addresses) < 40  # blocks were reused
    with open("/proc/self/maps") as maps:
        assert not [line for line in maps if line.split()[1].startswith("rwx")]


def test_code_is_never_writable_and_executable():
    wrappers = [cpjit.jit(fresh(test_memory_is_released_with_the_wrapper), warmup=0)
                for _ in range(3)]
    mapped = []
    for w in wrappers:
        w2 = cpjit.jit(lambda n: [i for i in range(n)], warmup=0)
        w2(3)
        mapped.append(w2._code.address)
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    perms = {int(line.split("-")[0], 16): line.split()[1] for line in lines}
    for address in mapped:
        assert perms[address].startswith("r-x"), perms[address]
    assert not [line for line in lines if line.split()[1].startswith("rwx")]


MODULE_SOURCE = textwrap.dedent('''
    import math

    def square(x):
        return x * x

    def total(xs):
        s = 0
        for x in xs:
            s += square(x)
        return s

    class Shape:
        def __init__(self, side):
            self.side = side

        def area(self):
            return square(self.side)

        @staticmethod
        def describe():
            return "shape"

        @classmethod
        def unit(cls):
            return cls(1)

        class Inner:
            def value(self):
                return 7

    sqrt = math.sqrt  # imported: left alone
''')


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    package = tmp_path / "cpjit_testpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text(MODULE_SOURCE)
    (tmp_path / "cpjit_other.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [n for n in sys.modules if n.startswith(("cpjit_testpkg", "cpjit_other"))]:
        del sys.modules[name]
    cpjit.uninstall()


def test_jit_module(package_dir):
    module = importlib.import_module("cpjit_testpkg.shapes")
    wrappers = cpjit.jit_module(module)
    names = sorted(w.__qualname__ for w in wrappers)
    assert names == ["Shape.Inner.value", "Shape.__init__", "Shape.area", "Shape.describe",
                     "Shape.unit", "square", "total"]
    assert isinstance(module.square, cpjit._runtime.JitFunction)
    assert module.sqrt is __import__("math").sqrt
    assert module.total([1, 2, 3]) == 14
    assert module.Shape(3).area() == 9
    assert module.Shape.describe() == "shape" and module.Shape.unit().side == 1
    assert module.Shape.Inner().value() == 7
    assert isinstance(vars(module.Shape)["describe"], staticmethod)
    with pytest.raises(TypeError):
        cpjit.jit_module("not a module")


def test_install_and_uninstall(package_dir):
    cpjit.install(["cpjit_testpkg"])
    shapes = importlib.import_module("cpjit_testpkg.shapes")
    other = importlib.import_module("cpjit_other")
    assert isinstance(shapes.square, cpjit._runtime.JitFunction)
    assert isinstance(other.f, types.FunctionType)
    assert shapes.total([2]) == 4
    cpjit.uninstall()
    del sys.modules["cpjit_testpkg.shapes"]
    again = importlib.import_module("cpjit_testpkg.shapes")
    assert isinstance(again.square, types.FunctionType)


def test_cpjit_disable_turns_everything_off():
    script = textwrap.dedent("""
        import cpjit
        @cpjit.jit(warmup=0)
        def f(n):
            return sum(i for i in range(n))
        print(f(10), f.compiled, f.fallback_reason)
    """)
    env = dict(os.environ, CPJIT_DISABLE="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "45 False disabled by CPJIT_DISABLE=1"


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def test_a_recursive_function_is_recompiled_once_its_profile_has_run():
    """The profiling code of a recursive function is still running below its
    next call: the recompilation waits until the profile saw the deep paths."""
    plain_globals, jit_globals = {}, {}
    plain = plain_globals["fib"] = types.FunctionType(fib.__code__.replace(), plain_globals)
    wrapper = jit_globals["fib"] = cpjit.jit(
        types.FunctionType(fib.__code__.replace(), jit_globals), warmup=0)
    assert wrapper(18) == plain(18) == 2584
    assert wrapper(18) == 2584
    assert wrapper._info.generation == 2 and not wrapper._info.profile
    names = [u.name for u in wrapper._info.trace.uops]
    assert "_BINARY_OP_ADD_INT" in names, names
    assert wrapper._code.active == 0


def squares(xs):
    total = 0
    for x in xs:
        total += x * x
    return total


def test_a_profile_waits_for_code_the_first_call_skipped():
    """The first call skips the loop: its profile has seen nothing there, so the
    profiling code runs another call (PROFILE_CALLS at most) before the
    compilation that uses it; the loop is then typed."""
    wrapper = cpjit.jit(types.FunctionType(squares.__code__.replace(), globals()), warmup=0)
    assert wrapper([]) == 0
    assert wrapper([1, 2, 3]) == 14  # (the loop's profile sites now ran)
    assert wrapper._info.profile
    assert wrapper([4, 5]) == 41
    assert wrapper._info.generation == 2 and not wrapper._info.profile
    names = [u.name for u in wrapper._info.trace.uops]
    assert "_MUL_I64" in names and "_ADD_I64" in names, names


def test_a_profile_stops_waiting_after_profile_calls():
    """Code that never runs (here: the loop of calls that all skip it) does not
    keep a function in its profiling code for more than PROFILE_CALLS calls."""
    from cpjit import _api
    wrapper = cpjit.jit(types.FunctionType(squares.__code__.replace(), globals()), warmup=0)
    for _ in range(_api.PROFILE_CALLS):
        assert wrapper([]) == 0
        assert wrapper._info.profile
    assert wrapper([]) == 0
    assert wrapper._info.generation == 2 and not wrapper._info.profile
