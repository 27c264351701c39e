"""_LOAD_FAST's transfer function in C (csrc/transfer.c) against the Python
function it replaced: the same outcome (the very same shared items, a State
of the same stack and locals), made items kept in the shared dict, errors for
what is not a uop and a state, no leaks."""

import gc
import sys
import weakref

import pytest
from memory import growth_per_batch

from cpjit import _runtime, pipeline, specialize
from cpjit.analysis import ANY, MAYBE_UNBOUND, NULL, UNBOUND, Item, State, new
from cpjit.ir import UOp


def python_load_fast(items):
    """Specializer._load_fast as it was, with its own dict of items."""

    def transfer(uop, state):
        local = state.locals[uop.oparg]
        key = (local if isinstance(local, type) else ANY, uop.oparg)
        item = items.get(key)
        if item is None:
            item = items[key] = new(Item, (*key, None))
        return (new(State, (state.stack + (item,), state.locals)), None)

    return transfer


LOCALS = (int, ANY, float, UNBOUND, MAYBE_UNBOUND, list, NULL, bool)
STACKS = ((), (Item(int, 0),), (Item(), Item(NULL), Item(str, -1, len)))


def test_the_table_has_it():
    assert isinstance(specialize._TRANSFERS["_LOAD_FAST"], _runtime.LoadFastTransfer)


@pytest.mark.parametrize("stack", STACKS)
def test_as_the_python_function(stack):
    c_items, py_items = {}, {}
    c_transfer = _runtime.LoadFastTransfer(State, Item, c_items, ANY)
    py_transfer = python_load_fast(py_items)
    for local in range(len(LOCALS)):
        state = State(stack, LOCALS)
        for _ in range(2):  # (made, then found)
            got, want = c_transfer(UOp("_LOAD_FAST", local), state), \
                py_transfer(UOp("_LOAD_FAST", local), state)
            assert got == want and got[1] is None
            assert type(got[0]) is State and got[0].locals is state.locals
            assert got[0].stack[:-1] == stack
            assert type(got[0].stack[-1]) is Item
    assert c_items == py_items
    assert all(type(item) is Item for item in c_items.values())
    # One shared item per key: what a load pushes is the one in the dict.
    state = State(stack, LOCALS)
    assert c_transfer(UOp("_LOAD_FAST", 0), state)[0].stack[-1] is c_items[(int, 0)]
    assert c_transfer(UOp("_LOAD_FAST", 1), state)[0].stack[-1] is c_items[(ANY, 1)]


def test_keywords_and_positional_construction():
    items = {}
    made = _runtime.LoadFastTransfer(state_type=State, item_type=Item, items=items, any=ANY)
    assert made(UOp("_LOAD_FAST", 0), State((), (int,)))[0].stack == (Item(int, 0),)
    assert list(items) == [(int, 0)]


def test_the_analysis_of_real_code_is_unchanged():
    # The compiler's passes, with the C transfer and with the Python one.
    def f(xs, n):
        total = 0
        for i in range(n):
            if xs[i] > total:
                total += xs[i] * i
        return total

    def passes():
        record = pipeline.compile_code(f.__code__, "f", keep=True, globals_=f.__globals__)
        return [(r.name, r.changes, [u.replace() for u in r.trace.uops] if r.trace else None)
                for r in record.reports]

    with_c = passes()
    saved = specialize._TRANSFERS["_LOAD_FAST"]
    specialize._TRANSFERS["_LOAD_FAST"] = python_load_fast({})
    try:
        with_python = passes()
    finally:
        specialize._TRANSFERS["_LOAD_FAST"] = saved
    assert with_c == with_python
    assert any(changes for _, changes, _ in with_c)


@pytest.mark.parametrize("args, error, message", [
    ((State, Item, {}, ANY, 1), TypeError, "at most 4 arguments"),
    ((State, Item, [], ANY), TypeError, "must be dict, not list"),
    ((int, Item, {}, ANY), TypeError, "state_type must be a tuple subclass"),
    ((State, "Item", {}, ANY), TypeError, "item_type must be a tuple subclass"),
])
def test_bad_construction(args, error, message):
    with pytest.raises(error, match=message):
        _runtime.LoadFastTransfer(*args)


@pytest.mark.parametrize("call, error, message", [
    (lambda t: t(UOp("_LOAD_FAST", 0)), TypeError, r"takes \(uop, state\)"),
    (lambda t: t(UOp("_LOAD_FAST", 0), State((), (int,)), 1), TypeError, r"takes \(uop, state\)"),
    (lambda t: t(uop=UOp("_LOAD_FAST", 0), state=State((), (int,))), TypeError, "takes"),
    (lambda t: t(UOp("_LOAD_FAST", 0), ((), [int])), TypeError, "tuple of two tuples"),
    (lambda t: t(UOp("_LOAD_FAST", 0), None), TypeError, "not NoneType"),
    (lambda t: t(UOp("_LOAD_FAST", 3), State((), (int,))), IndexError, "out of range"),
    (lambda t: t(UOp("_LOAD_FAST", -1), State((), (int,))), TypeError, "an int from 0"),
    (lambda t: t(UOp("_LOAD_FAST", "0"), State((), (int,))), TypeError, "an int from 0"),
    (lambda t: t(object(), State((), (int,))), AttributeError, "oparg"),
    (lambda t: t(UOp("_LOAD_FAST", 1 << 70), State((), (int,))), OverflowError, "too large"),
])
def test_bad_calls(call, error, message):
    transfer = _runtime.LoadFastTransfer(State, Item, {}, ANY)
    with pytest.raises(error, match=message):
        call(transfer)


def test_a_plain_tuple_state_makes_a_state():
    transfer = _runtime.LoadFastTransfer(State, Item, {}, ANY)
    after, jump = transfer(UOp("_LOAD_FAST", 0), ((), (float,)))
    assert type(after) is State and after == ((Item(float, 0),), (float,)) and jump is None


def test_no_leaks_and_collected():
    items = {}
    transfer = _runtime.LoadFastTransfer(State, Item, items, ANY)
    state = State((Item(),), LOCALS)
    uops = [UOp("_LOAD_FAST", k) for k in range(len(LOCALS))]
    bad = UOp("_LOAD_FAST", 99)

    def rounds(n):
        for _ in range(n):
            for uop in uops:
                transfer(uop, state)
            try:
                transfer(bad, state)
            except IndexError:
                pass

    rounds(20)
    gc.collect()
    counts = [sys.getrefcount(x) for x in (state, state.stack, state.locals, *items.values())]
    grown = growth_per_batch(lambda: rounds(1))
    assert min(grown) < 4096, f"bytes more after each 1000 rounds: {grown}"
    assert [sys.getrefcount(x) for x in (state, state.stack, state.locals, *items.values())] \
        == counts
    # A cycle through the items dict is collected (the type traverses its fields).
    class Marker:
        pass

    cycle, marker = {}, Marker()
    looped = _runtime.LoadFastTransfer(State, Item, cycle, ANY)
    cycle["self"], cycle["marker"] = looped, marker
    alive = weakref.ref(marker)
    del looped, cycle, marker
    gc.collect()
    assert alive() is None


def test_a_made_item_is_held_by_the_dict_alone():
    items = {}
    transfer = _runtime.LoadFastTransfer(State, Item, items, ANY)
    transfer(UOp("_LOAD_FAST", 0), State((), (int,)))  # (its outcome dropped at once)
    (item,) = items.values()
    assert sys.getrefcount(item) == 3  # the dict, `item` here and getrefcount's argument
