"""Differential testing: run a function plainly and jitted on the same inputs and compare.

Compared: the result (==, and type), or the exception's type, message and
formatted traceback (lines, carets and chained exceptions included), and the
state of the arguments afterwards (side effects), for inputs built fresh for
each run by a factory.
"""

from __future__ import annotations

import copy
import dataclasses
import traceback
import types
from typing import Any, Callable

import cpjit


@dataclasses.dataclass
class Outcome:
    kind: str  # "ok" or "exc"
    value: Any = None
    exc_type: type | None = None
    message: str = ""
    traceback: str = ""
    args_after: Any = None

    def summary(self) -> str:
        if self.kind == "ok":
            return f"returned {self.value!r}"
        return f"raised {self.exc_type.__name__}: {self.message}\n{self.traceback}"


def _call(func, args, kwargs):
    return func(*args, **kwargs)


def run(func: Callable, args=(), kwargs=None) -> Outcome:
    """Call `func` and describe what happened (the traceback without this helper's frames)."""
    kwargs = kwargs or {}
    try:
        value = _call(func, args, kwargs)
    except BaseException as error:  # noqa: BLE001 - compared, then re-raised by the caller
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code in (run.__code__, _call.__code__):
            tb = tb.tb_next
        error.__traceback__ = tb
        text = "".join(traceback.format_exception(error))
        return Outcome("exc", None, type(error), str(error), text, _snapshot(args, kwargs))
    return Outcome("ok", value, None, "", "", _snapshot(args, kwargs))


def _snapshot(args, kwargs):
    try:
        return copy.deepcopy((args, kwargs))
    except Exception:  # noqa: BLE001 - not every argument can be copied: compare them live
        return (args, kwargs)


def same(a: Outcome, b: Outcome) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "ok":
        return (type(a.value) is type(b.value) and _equal(a.value, b.value)
                and _equal(a.args_after, b.args_after))
    return (a.exc_type is b.exc_type and a.message == b.message and a.traceback == b.traceback
            and _equal(a.args_after, b.args_after))


def _equal(a, b, depth: int = 0, seen: set | None = None) -> bool:
    """Structural equality: containers item by item, plain objects by their
    attributes, floats with nan equal to nan, cycles followed once."""
    if a is b:
        return True
    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:
        return True  # a cycle: compared where it started
    seen.add((id(a), id(b)))
    if depth > 50 or (type(a) is not type(b) and (
            type(a).__qualname__, type(a).__module__) != (type(b).__qualname__, type(b).__module__)):
        return False  # per-input classes (built by an inputs factory) compare by name
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y, depth + 1, seen) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (list(a) == list(b)
                and all(_equal(a[k], b[k], depth + 1, seen) for k in a))
    if type(a).__eq__ is object.__eq__:
        if hasattr(a, "__dict__"):
            return _equal(vars(a), vars(b), depth + 1, seen)
        try:  # iterators and other C objects: compare what would pickle them
            return _equal(a.__reduce_ex__(4)[1:], b.__reduce_ex__(4)[1:], depth + 1, seen)
        except Exception:  # noqa: BLE001 - no state to compare: same type is all we know
            return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return repr(a) == repr(b)


def fresh(func: types.FunctionType) -> types.FunctionType:
    """A copy of `func` with its own code object, so that one run does not warm up the other."""
    code = func.__code__.replace()
    clone = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__,
                               func.__closure__)
    clone.__kwdefaults__ = func.__kwdefaults__
    clone.__qualname__ = func.__qualname__
    return clone


def check(func: types.FunctionType, *args, inputs: Callable[[], tuple] | None = None,
          kwargs: dict | None = None, expect_compiled: bool = True, calls: int = 1,
          **jit_options) -> Any:
    """Run `func` plainly and jitted (compiled at the first call unless `warmup`
    is given) `calls` times on the same inputs; assert every outcome is the same.

    `inputs`, if given, builds fresh positional arguments for each run (for
    functions that mutate their arguments).  Returns the jitted wrapper.
    """
    jit_options.setdefault("warmup", 0)
    wrapper = cpjit.jit(fresh(func), **jit_options)
    plain = fresh(func)
    for _ in range(calls):
        call_args = inputs() if inputs is not None else args
        want = run(plain, call_args, kwargs)
        call_args = inputs() if inputs is not None else args
        got = run(wrapper, call_args, kwargs)
        assert same(want, got), (f"{func.__qualname__}{call_args!r}:\n"
                                 f"plain: {want.summary()}\njitted: {got.summary()}")
    if expect_compiled:
        assert wrapper.compiled, f"{func.__qualname__} was not compiled: {wrapper.fallback_reason}"
    return wrapper


def compiled_without_exits(wrapper) -> bool:
    """True when the wrapper's machine code never side-exited."""
    return wrapper.compiled and not any(wrapper.stats["side_exits"].values())
