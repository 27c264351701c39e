"""On a CPython cpjit does not compile for, everything still works, in the
interpreter, and says why (on a supported one these tests check the opposite)."""

import types

import pytest

import cpjit
from cpjit import _versions


def loop(n):
    total = 0
    for i in range(n):
        total += i
    return total


def test_jitted_functions_run_and_say_why():
    wrapper = cpjit.jit(types.FunctionType(loop.__code__, globals()))
    assert wrapper(10) == 45 and wrapper(10) == 45
    if _versions.UNSUPPORTED:
        assert not wrapper.compiled
        assert wrapper.fallback_reason == _versions.UNSUPPORTED
        assert _versions.UNSUPPORTED in wrapper.dump()
    else:
        assert wrapper.compiled and wrapper.fallback_reason is None


def test_strict_refuses_an_unsupported_interpreter():
    func = types.FunctionType(loop.__code__, globals())
    if _versions.UNSUPPORTED:
        with pytest.raises(cpjit.JitError, match="not supported"):
            cpjit.jit(func, strict=True)
    else:
        assert cpjit.jit(func, strict=True)(4) == 6
