"""The scans passes start with (cpjit.ir names, positions, jumps_into; C in
csrc/uopscan.c) against the comprehensions they replaced: the same lists for
real traces and made-up ones, other objects in the list read as attributes,
errors as the comprehension raised them or clear ones, a list that changes
under the scan, and no leaks."""

import gc
import sys

import pytest
from memory import growth_per_batch

from cpjit import _runtime, ir, pipeline
from cpjit.ir import LABEL, UOp


def reference_names(uops):
    return [uop.name for uop in uops]


def reference_positions(uops, names):
    return [i for i, uop in enumerate(uops) if uop.name in names]


def reference_jumps_into(uops, targets):
    return [i for i, uop in enumerate(uops) if uop.jump_to in targets and uop.name != LABEL]


def small_loop(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            total += i
        elif i % 3 == 1:
            total -= 1
    return total


def branches(xs, key):
    found = []
    for x in xs:
        if x == key:
            break
        if x:
            found.append(x)
        else:
            continue
    return found


@pytest.fixture(scope="module", params=[small_loop, branches, pipeline.compile_code])
def trace_uops(request):
    function = request.param
    record = pipeline.compile_code(function.__code__, function.__qualname__, keep=True,
                                   globals_=function.__globals__)
    # Every pass's uops, the translation's first: labels, jumps, guards, raw uops.
    found = [report.trace.uops for report in record.reports if report.trace]
    assert found and any(any(u.name == LABEL for u in uops) for uops in found)
    return found


def test_names_as_the_comprehension(trace_uops):
    for uops in trace_uops:
        assert ir.names(uops) == reference_names(uops)


@pytest.mark.parametrize("wanted", [
    {LABEL}, frozenset({"_LOAD_FAST", "_STORE_FAST"}), ("_CHECK_TRACING",), {"_NOTHING"},
    {"_LOAD_FAST": 1, LABEL: 2}, (), ["_POP_TOP", LABEL],
])
def test_positions_as_the_comprehension(trace_uops, wanted):
    for uops in trace_uops:
        assert ir.positions(uops, wanted) == reference_positions(uops, wanted)
    assert any(reference_positions(uops, {LABEL}) for uops in trace_uops)


def test_jumps_into_as_the_comprehension(trace_uops):
    for uops in trace_uops:
        labels = {uops[i].oparg: i for i in reference_positions(uops, {LABEL})}
        assert labels
        first = list(labels)[:1]
        # (-1, where uops that jump nowhere go, asked once of a set or dict)
        for targets in (labels, set(labels), frozenset(first), {}, {-1}, {-1: 0, **labels},
                        frozenset([-1, *first]), (-1, *first), [-1], tuple(labels)):
            assert ir.jumps_into(uops, targets) == reference_jumps_into(uops, targets)
        # (A label's jump_to is -1: a label is never found, even among -1's.)
        assert ir.jumps_into(uops, {-1}) == reference_jumps_into(uops, {-1})


def test_made_up_uops():
    uops = [UOp(LABEL, 4, jump_to=4), UOp("_JUMP", jump_to=4), UOp("_POP_TOP"),
            UOp("_POP_JUMP_IF_FALSE", jump_to=9), UOp("_JUMP", jump_to=4)]
    assert ir.names(uops) == [LABEL, "_JUMP", "_POP_TOP", "_POP_JUMP_IF_FALSE", "_JUMP"]
    assert ir.positions(uops, {"_JUMP"}) == [1, 4]
    assert ir.jumps_into(uops, {4}) == [1, 4]
    assert ir.jumps_into(uops, {4, 9}) == [1, 3, 4]
    assert ir.names([]) == [] and ir.positions([], {"x"}) == [] and ir.jumps_into([], {1}) == []


class Other:
    """Not a UOp: the scans ask it for its attributes."""

    def __init__(self, name, jump_to=-1):
        self.name = name
        self.jump_to = jump_to


class Sub(UOp):
    __slots__ = ()


class Hiding(UOp):
    """A subclass whose name is a property: read as an attribute, not the slot."""
    __slots__ = ()
    name = property(lambda self: "_HIDDEN")


def test_other_objects_are_asked_for_the_attribute():
    uops = [UOp("_POP_TOP"), Other("_POP_TOP", 3), Sub("_POP_TOP", jump_to=3),
            Other(LABEL, 3), Hiding("_POP_TOP", jump_to=3)]
    assert ir.names(uops) == reference_names(uops) == \
        ["_POP_TOP", "_POP_TOP", "_POP_TOP", LABEL, "_HIDDEN"]
    assert ir.positions(uops, {"_POP_TOP"}) == reference_positions(uops, {"_POP_TOP"}) == [0, 1, 2]
    assert ir.jumps_into(uops, {3}) == reference_jumps_into(uops, {3}) == [1, 2, 4]


def test_errors():
    with pytest.raises(TypeError, match="uops must be a list, not tuple"):
        ir.names((UOp("_POP_TOP"),))
    with pytest.raises(AttributeError, match="name"):
        ir.names([UOp("_POP_TOP"), object()])
    with pytest.raises(AttributeError, match="jump_to"):
        ir.jumps_into([object()], {1})
    with pytest.raises(TypeError, match="unhashable"):
        ir.positions([UOp([])], {"x"})  # (a name that is a list, looked up in a set)
    with pytest.raises(TypeError, match="is not a container|not iterable|argument of type"):
        ir.positions([UOp("_POP_TOP")], 3)
    unset = UOp.__new__(UOp)  # (no field set)
    with pytest.raises(TypeError, match="uop 1 has no name"):
        ir.positions([UOp("_POP_TOP"), unset], {"_POP_TOP"})
    with pytest.raises(TypeError, match="uop 0 has no jump_to"):
        ir.jumps_into([unset], {1})
    with pytest.raises(TypeError, match="the uop type must be a ready type"):
        _runtime.uop_names([], "UOp")
    with pytest.raises(TypeError, match="argument 4 must be str, not int"):
        _runtime.uop_jumps_into([], UOp, {1}, 3)


class Shrinking:
    """A container whose check empties the list being scanned."""

    def __init__(self, uops):
        self.uops = uops

    def __contains__(self, name):
        self.uops.clear()
        gc.collect()
        return True


def test_the_list_changes_under_the_scan():
    uops = [UOp("_POP_TOP"), UOp("_NOP"), UOp("_POP_TOP")]
    assert ir.positions(uops, Shrinking(uops)) == [0]
    assert uops == []
    uops = [UOp("_JUMP", jump_to=1), UOp("_JUMP", jump_to=1)]
    assert ir.jumps_into(uops, Shrinking(uops)) == [0]


def test_no_leaks(trace_uops):
    uops = trace_uops[0]
    labels = {uops[i].oparg: i for i in reference_positions(uops, {LABEL})}
    # (Long enough that the indexes found are ints of their own, not the small ones.)
    mixed = uops * (1 + 600 // len(uops)) + [Other("_POP_TOP", 3), Hiding("_POP_TOP")]

    def scans():
        ir.names(mixed)
        ir.positions(mixed, {"_POP_TOP", LABEL})
        ir.jumps_into(mixed, labels)
        for bad in (lambda: ir.names([object()]), lambda: ir.positions([UOp([])], {"x"}),
                    lambda: ir.jumps_into([UOp.__new__(UOp)], {1})):
            try:  # (not pytest.raises: what it keeps would count here)
                bad()
            except (TypeError, AttributeError):
                continue
            raise AssertionError("no error")

    counts = [sys.getrefcount(u) for u in mixed]
    every_name = sorted(set(reference_names(mixed)))
    name_counts = [sys.getrefcount(name) for name in every_name]
    for _ in range(20):
        scans()
    gc.collect()
    grown = growth_per_batch(scans)
    assert min(grown) < 4096, f"bytes more after each 1000 rounds: {grown}"
    assert [sys.getrefcount(u) for u in mixed] == counts
    assert [sys.getrefcount(name) for name in every_name] == name_counts
