"""Slicing without slice objects (optimize.fuse_slices): BUILD_SLICE and the
subscript after it as one uop, checked differentially against the interpreter
on the very wrapper whose code has the fused uop, so that every odd input
(bounds out of range, negative, None, of other types, steps, subclasses, values
that are not lists) goes through it or through its side exit.
"""

import copy

import pytest
from differential import fresh, run, same

import cpjit

WARM_CALLS = 8  # enough for the profile (the fused uop needs the container's type)


def fused(func, *warm_args, name):
    """A wrapper of `func` warmed on `warm_args` until its code has the uop `name`."""
    wrapper = cpjit.jit(fresh(func), warmup=0)
    for _ in range(WARM_CALLS):
        wrapper(*warm_args)
    names = [uop.name for uop in wrapper._info.trace.uops]
    assert name in names, names
    assert "_BUILD_SLICE" not in names
    return wrapper


def same_as_plain(wrapper, func, *args):
    """The outcome of wrapper(*args), asserted the same as the plain
    function's, each run on its own deep copy of the arguments (the
    assignments change them; an iterator given is consumed)."""
    plain = fresh(func)
    want, got = run(plain, copy.deepcopy(args)), run(wrapper, copy.deepcopy(args))
    assert same(want, got), f"{args!r}:\nplain: {want.summary()}\njitted: {got.summary()}"
    return got


def two(seq, i, j):
    part = seq[i:j]
    return part, part is seq


def three(seq, i, j, k):
    part = seq[i:j:k]
    return part, part is seq


BOUNDS = [(None, None), (0, 3), (2, None), (None, -2), (-3, -1), (5, 2), (-100, 100),
          (100, 200), (0, 0), (2**40, 3), (-(2**40), None), (True, 2), (1.5, 2), ("a", 2)]


@pytest.mark.parametrize("seq, uop", [([1, "b", 3.0, None, 5, 6], "_BINARY_SLICE_LIST"),
                                      ((1, "b", 3.0, None, 5, 6), "_BINARY_SLICE_TUPLE"),
                                      ("héllo, wörld", "_BINARY_SLICE_STR"),
                                      ("ascii text", "_BINARY_SLICE_STR")])
def test_two_bounds(seq, uop):
    w = fused(two, seq, 1, 3, name=uop)
    for i, j in BOUNDS:
        same_as_plain(w, two, seq, i, j)
    for other in ([], (), "", [7], "x", type(seq)(seq)):
        same_as_plain(w, two, other, None, None)
        same_as_plain(w, two, other, 0, 1)
    # other containers side-exit: the interpreter slices them (or raises)
    for other in (range(8), b"bytes", bytearray(b"abc"), {1: 2}, 5, None):
        same_as_plain(w, two, other, 1, 3)


class MyList(list):
    def __getitem__(self, item):
        return ("MyList", item.start, item.stop, item.step)


def test_a_subclass_side_exits():
    w = fused(two, [1, 2, 3], 0, 2, name="_BINARY_SLICE_LIST")
    same_as_plain(w, two, MyList([1, 2, 3]), 0, 2)


STEPS = [1, 2, 3, -1, -2, None, 0, 2**40, -(2**40), 1.0]


@pytest.mark.parametrize("seq, uop", [(list(range(10)), "_BINARY_SLICE_LIST"),
                                      (tuple(range(10)), "_BINARY_SLICE_TUPLE"),
                                      ("0123456789", "_BINARY_SLICE_STR")])
def test_three_bounds(seq, uop):
    w = fused(three, seq, 1, 8, 1, name=uop)
    for k in STEPS:
        for i, j in BOUNDS[:10] + [(None, None), (8, 1), (-1, None)]:
            same_as_plain(w, three, seq, i, j, k)


@pytest.mark.parametrize("seq, uop", [((1, 2, 3, 4, 5), "_BINARY_SLICE_TUPLE"),
                                      ("reversed", "_BINARY_SLICE_STR"),
                                      ("héllo wörld", "_BINARY_SLICE_STR")])
def test_a_step_on_tuples_and_strs_stays_in_machine_code(seq, uop):
    """`s[::-1]`: the uop makes the slice object itself, without side exits."""
    def reverse(seq):
        return seq[::-1], seq[1::2], seq[::-2]

    w = fused(reverse, seq, name=uop)
    exits = sum(w.stats["side_exits"].values())
    for _ in range(5):
        same_as_plain(w, reverse, seq)
    assert sum(w.stats["side_exits"].values()) == exits


def test_a_list_slice_shares_its_items():
    item = object()

    def shares(seq):
        return seq[::-1][0] is item and seq[:1][0] is item

    w = fused(shares, [item], name="_BINARY_SLICE_LIST")
    assert w([item]) is True


def assign(seq, i, j, value):
    seq[i:j] = value
    return seq


def assign_step(seq, i, j, k, value):
    seq[i:j:k] = value
    return seq


def test_slice_assignment():
    w = fused(assign, [0, 1, 2, 3], 1, 2, [9, 9], name="_STORE_SLICE_LIST")
    for i, j in BOUNDS:
        for value in ([], [7], [7, 8, 9], (5, 6), "ab", range(3), iter([1, 2]), 5, None):
            same_as_plain(w, assign, [0, 1, 2, 3, 4], i, j, value)
    same_as_plain(w, assign, (0, 1, 2), 0, 1, [5])  # a tuple: TypeError from the interpreter


def test_slice_assignment_from_the_list_itself():
    def onto_itself(seq, i, j):
        seq[i:j] = seq
        return seq

    w = fused(onto_itself, [1, 2, 3], 1, 2, name="_STORE_SLICE_LIST")
    for i, j in [(0, 0), (1, 2), (None, None), (3, 1)]:
        same_as_plain(w, onto_itself, [1, 2, 3], i, j)


def test_extended_slice_assignment():
    w = fused(assign_step, [0, 1, 2, 3], 0, 4, 1, [7, 8, 9, 6], name="_STORE_SLICE_LIST")
    for k, value in [(1, [1]), (2, [7, 8]), (2, [7]), (-1, [4, 3, 2, 1]), (0, [])]:
        same_as_plain(w, assign_step, [0, 1, 2, 3], 0, 4, k, value)


def test_a_generator_assigned_runs_with_the_frame_at_the_subscript():
    """The value's iteration runs Python code, which sees the jitted frame."""
    import sys

    def lines():
        yield sys._getframe(1).f_lineno
        yield sys._getframe(1).f_code.co_name

    def assign_lines(seq):
        seq[1:2] = lines()
        return seq

    w = fused(assign_lines, [0, 1, 2], name="_STORE_SLICE_LIST")
    same_as_plain(w, assign_lines, [0, 1, 2])


def test_released_items_run_their_finalizers():
    log = []

    class Noisy:
        def __del__(self):
            log.append("del")

    def replace(seq):
        seq[0:1] = [1]
        return len(seq)

    w = fused(replace, [0, 0], name="_STORE_SLICE_LIST")
    log.clear()
    assert w([Noisy(), 2]) == 2
    assert log == ["del"]


def spread(seq,
           i):
    return seq[
        i:i + 2]


def spread_store(seq,
                 i, value):
    seq[
        i:
        i + 1] = value
    return seq


def test_tracebacks_name_the_subscript():
    """The fused uop's errors are the subscript's (its line and carets), and
    its side exit redoes the BUILD_SLICE on its own line."""
    w = fused(spread, [1, 2, 3], 0, name="_BINARY_SLICE_LIST")
    for args in ([[1, 2, 3], 1], [[1, 2, 3], "x"], [(1, 2), 0], [None, 0]):
        same_as_plain(w, spread, *args)
    w = fused(spread_store, [1, 2, 3], 0, [5], name="_STORE_SLICE_LIST")
    for args in ([[1, 2, 3], 1, 5], [[1, 2, 3], 1, None], [[1, 2], "x", []], [(1,), 0, []]):
        outcome = same_as_plain(w, spread_store, *args)
    assert outcome.kind == "exc"


def test_repeated_side_exits_compile_the_slice_generically():
    """A site whose containers are not what the feedback saw is recompiled
    with BUILD_SLICE and the generic subscript."""
    w = fused(two, [1, 2, 3], 0, 2, name="_BINARY_SLICE_LIST")
    for _ in range(300):
        assert w(range(5), 1, 3) == (range(1, 3), False)
    names = [uop.name for uop in w._info.trace.uops]
    assert "_BINARY_SLICE_LIST" not in names and "_BUILD_SLICE" in names
    same_as_plain(w, two, [1, 2, 3], 0, 2)
