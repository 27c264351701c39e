"""`for ... in range(...)` without a range object, and global loads inside loops with
raw locals that run no Python code: differentially, with the uops they rely on
checked, so that losing the optimization fails a test as surely as a wrong result.
"""

import sys

import pytest
from differential import check, fresh

import cpjit


def final_uops(wrapper) -> list[str]:
    return [uop.name for uop in wrapper._info.trace.uops]


def pairs(n, m):
    total = 0
    for i in range(n):
        for j in range(i + 1, m):
            total += i * j
    return total


@pytest.mark.parametrize("n, m", [(0, 0), (5, 8), (8, 5), (-3, 4), (30, 31)])
def test_nested_ranges_of_raw_ints(n, m):
    w = check(pairs, n, m, calls=3)
    names = final_uops(w)
    assert "_RANGE_ITER_I64" in names  # range(i + 1, m): i and m are raw
    assert "_CALL_RANGE" not in names and "_GET_ITER_BUILTIN" not in names


def counted(a, b):
    out = []
    for k in range(a, b):
        out.append(k)
    return out


@pytest.mark.parametrize("a, b", [
    (0, 5), (5, 0), (-7, -2), (2**30 - 2, 2**30 + 2),  # past one digit: side exit
    (2**62, 2**62 + 3), (-(2**63), -(2**63) + 2), (2**63 - 2, 2**63 + 1), (2**70, 2**70 + 2),
    (True, 3), (0.5, 3), (1, "x"), (None, 2),  # TypeError from range(), as plain
])
def test_range_of_boxed_arguments(a, b):
    w = check(counted, a, b, calls=3)
    if type(a) is int and type(b) is int and abs(a) < 2**30 and abs(b) < 2**30:
        assert "_RANGE_ITER" in final_uops(w)


def longest(n):
    last = None
    low = -n
    for k in range(low, n):  # -n is raw: the raw uop makes the iterator
        last = k
        if k > low + 3:
            break
    return last


@pytest.mark.parametrize("n", [0, 3, 10, 2**62, 2**63 - 1])
def test_a_range_longer_than_a_c_long_side_exits(n):
    """range(-2**63 + 1, 2**63 - 1) has more items than a C long counts: the
    interpreter makes its long iterator; the result is the same."""
    w = check(longest, n, calls=5)  # (the profile waits for the loop: 4 calls at most)
    assert "_RANGE_ITER_I64" in final_uops(w)


def kept(n):
    r = range(n)  # not iterated at once: _CALL_RANGE makes the range object
    total = 0
    for k in r:
        total += k
    return total, len(r), r


def test_a_range_object_that_is_kept():
    w = check(kept, 12, calls=3)
    assert "_CALL_RANGE" in final_uops(w)


RANGE_USER = """
def f(n):
    total = 0
    for i in range(n):
        for j in range(i):
            total += j
    return total
"""


def test_range_rebound_between_calls():
    """A module whose `range` becomes another callable: the cached global
    changes, and the uop's check of the callable side-exits."""
    plain, jitted = {}, {}
    exec(RANGE_USER, plain)
    exec(RANGE_USER, jitted)
    f = cpjit.jit(jitted["f"], warmup=0)
    for rebound in (None, lambda n: [n] * 2, None):
        for namespace in (plain, jitted):
            if rebound is None:
                namespace.pop("range", None)
            else:
                namespace["range"] = rebound
        for n in (0, 4, 10):
            assert f(n) == plain["f"](n)
    assert f.compiled and "_RANGE_ITER_I64" in final_uops(f)


def globals_in_a_loop(n):
    total = 0.0
    for i in range(n):
        total += SCALE * 2.0 + i  # a global read where `total` and `i` are raw
    return total


SCALE = 0.5


def test_global_read_in_a_loop_with_raw_locals_needs_no_boxing():
    w = check(globals_in_a_loop, 50, calls=3)
    names = final_uops(w)
    loop = names[names.index("_FOR_ITER_RANGE_I64"):]
    assert "_LOAD_GLOBAL_CACHED_QUIET" in loop
    assert "_SYNC_LOCAL_F64" not in loop[:loop.index("_JUMP")]


def rebinding(n, box):
    total = 0
    for i in range(n):
        total += LIMIT + i
        if i == 3:
            box.append(i)
            globals()["LIMIT"] = LIMIT + 100  # a new value: the cached entry still holds
        if i == 5:
            globals()[7] = "a key that is not a str"  # lookups may now compare objects
        if i == 6:
            del globals()[7]
    return total


LIMIT = 1


def test_globals_changing_inside_a_loop_with_raw_locals():
    def reset():
        globals()["LIMIT"] = 1
        globals().pop(7, None)
        return (12, [])
    w = check(rebinding, inputs=reset, calls=3)
    assert "_LOAD_GLOBAL_CACHED_QUIET" in final_uops(w)


def undefined_later(n):
    total = 0
    for i in range(n):
        total += i
        if i == 4:
            del globals()["GONE"]
        total += GONE
    return total


def test_a_global_deleted_inside_a_loop_raises_name_error_as_plain():
    globals()["GONE"] = 2
    plain = fresh(undefined_later)
    with pytest.raises(NameError) as want:
        plain(10)
    globals()["GONE"] = 2
    w = cpjit.jit(fresh(undefined_later), warmup=0)
    with pytest.raises(NameError) as got:
        w(10)
    assert str(got.value) == str(want.value)
    assert got.traceback[-1].lineno == want.traceback[-1].lineno
    assert "_LOAD_GLOBAL_CACHED_QUIET" in final_uops(w)


def test_range_iterators_from_the_jit_are_freed():
    w = cpjit.jit(fresh(pairs), warmup=0)
    for _ in range(5):
        w(20, 20)
    assert not w._info.profile
    before = sys.getallocatedblocks()
    for _ in range(200):
        w(20, 20)
    # 20 iterators per call: a leak would show 4,000 blocks; other tests'
    # leftovers (freelists, caches) move the count by tens
    assert sys.getallocatedblocks() - before < 1000
