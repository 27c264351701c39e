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
from cpjit.analysis import ANY, MAYBE_UNBOUND, NULL, UNBOUND, AnalysisError, Item, State, new
from cpjit.ir import Obj, UOp


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


# -- StateTransfer: _STORE_FAST, _GUARD_TYPE, _GUARD_LOCAL_TYPE --

def python_store_fast(uop, state):
    """Specializer._store_fast as it was."""
    return (state.store(uop.oparg, state.stack[-1].type, pops=1), None)


def python_guard_type(uop, state):
    """Specializer._guard_type as it was."""
    stack = state.stack
    index = len(stack) - uop.oparg
    if index < 0:
        raise AnalysisError(f"{uop.describe()} guards item {uop.oparg} of {len(stack)}")
    guarded = uop.operand0.value
    item = stack[index]
    if item.alias >= 0 and state.locals[item.alias] is not UNBOUND:
        return (state.refine(item.alias, guarded), None)
    if item.type is guarded:
        return (state, None)
    return (new(State, (stack[:index] + (new(Item, (guarded, item.alias, item.hint)),)
                        + stack[index + 1:], state.locals)), None)


def python_guard_local_type(uop, state):
    """Specializer._guard_local_type as it was."""
    return (state.refine(uop.oparg, uop.operand0.value), None)


PYTHON_TRANSFERS = {"_STORE_FAST": python_store_fast, "_GUARD_TYPE": python_guard_type,
                    "_GUARD_LOCAL_TYPE": python_guard_local_type}


def state_transfer(name):
    return _runtime.StateTransfer(name, State, Item, UNBOUND, AnalysisError)


# Stacks with items loaded from locals 0 and 2 (aliases), and locals of each kind.
ALIASED = (
    (),
    (Item(int, 0),),
    (Item(ANY, 0, len), Item(float, -1), Item(int, 2)),
    (Item(int, 2), Item(ANY, 0), Item(int, 2, None), Item(list, 0)),
    (Item(list, 0), Item(NULL), Item(str, 1, str)),
)
STATE_LOCALS = ((int, ANY, int, UNBOUND), (ANY, float, UNBOUND, MAYBE_UNBOUND),
                (list, ANY, int, ANY), (UNBOUND, UNBOUND, UNBOUND, UNBOUND))


@pytest.mark.parametrize("stack", ALIASED)
@pytest.mark.parametrize("state_locals", STATE_LOCALS)
def test_state_transfers_as_the_python_functions(stack, state_locals):
    state = State(stack, state_locals)
    uops = [("_STORE_FAST", UOp("_STORE_FAST", local)) for local in range(4) if stack]
    uops += [("_GUARD_LOCAL_TYPE", UOp("_GUARD_LOCAL_TYPE", local, Obj(kind)))
             for local in range(4) for kind in (int, list, float)]
    uops += [("_GUARD_TYPE", UOp("_GUARD_TYPE", depth, Obj(kind)))
             for depth in range(1, len(stack) + 1) for kind in (int, list, float)]
    for name, uop in uops:
        got = state_transfer(name)(uop, state)
        want = PYTHON_TRANSFERS[name](uop, state)
        assert got == want, (name, uop, state)
        assert got[1] is None and type(got[0]) is State
        assert all(type(item) is Item for item in got[0].stack)
        # The very state where nothing changed (remove_uops counts on it),
        # the very locals where they did not change.
        assert (got[0] is state) == (want[0] is state), (name, uop)
        assert (got[0].locals is state.locals) == (want[0].locals is state.locals)
        assert (got[0].stack is state.stack) == (want[0].stack is state.stack)


def test_the_tables_have_them():
    for name in PYTHON_TRANSFERS:
        transfer = specialize._TRANSFERS[name]
        assert isinstance(transfer, _runtime.StateTransfer) and name in repr(transfer)


def test_state_transfers_in_real_code_are_unchanged():
    # The compiler's passes, with the C transfers and with the Python ones:
    # floats in nested loops (guards, their re-analysis) and stores.
    def energy(xs, ys, ms):
        total = 0.0
        for i in range(len(ms)):
            for j in range(i + 1, len(ms)):
                dx = xs[i] - xs[j]
                dy = ys[i] - ys[j]
                total -= ms[i] * ms[j] / (dx * dx + dy * dy) ** 0.5
        return total

    for _ in range(10):  # (tier 1's feedback: floats, which the guards check)
        energy([0.5, 1.5, 3.0], [1.0, 0.5, 2.0], [1.0, 2.0, 0.5])

    def passes():
        record = pipeline.compile_code(energy.__code__, "energy", keep=True,
                                       globals_=energy.__globals__)
        return [(r.name, r.changes, [u.replace() for u in r.trace.uops] if r.trace else None)
                for r in record.reports]

    with_c = passes()
    saved = {name: specialize._TRANSFERS[name] for name in PYTHON_TRANSFERS}
    specialize._TRANSFERS.update(PYTHON_TRANSFERS)
    try:
        with_python = passes()
    finally:
        specialize._TRANSFERS.update(saved)
    assert with_c == with_python
    assert any("_GUARD" in u.name for _, _, uops in with_c if uops for u in uops)


@pytest.mark.parametrize("args, error, message", [
    (("_LOAD_FAST", State, Item, UNBOUND, AnalysisError), ValueError,
     "no transfer function for _LOAD_FAST"),
    (("_STORE_FAST", int, Item, UNBOUND, AnalysisError), TypeError,
     "state_type must be a tuple subclass"),
    (("_STORE_FAST", State, Item, UNBOUND, "AnalysisError"), TypeError,
     "analysis_error must be an exception class"),
    ((1, State, Item, UNBOUND, AnalysisError), TypeError, "must be str"),
])
def test_bad_state_transfer_construction(args, error, message):
    with pytest.raises(error, match=message):
        _runtime.StateTransfer(*args)


@pytest.mark.parametrize("name, uop, state, error, message", [
    ("_STORE_FAST", UOp("_STORE_FAST", 0), State((), (int,)), IndexError, "out of range"),
    ("_STORE_FAST", UOp("_STORE_FAST", 5), State((Item(),), (int,)), IndexError, "out of range"),
    ("_STORE_FAST", UOp("_STORE_FAST", -1), State((Item(),), (int,)), TypeError, "an int from 0"),
    ("_STORE_FAST", UOp("_STORE_FAST", 0), State(((1, "x", 2),), (int,)), TypeError,
     "an int alias"),
    ("_STORE_FAST", UOp("_STORE_FAST", 0), ([], ()), TypeError, "tuple of two tuples"),
    ("_GUARD_TYPE", UOp("_GUARD_TYPE", 2, Obj(int)), State((Item(),), (int,)), AnalysisError,
     "_GUARD_TYPE oparg=2 .* guards item 2 of 1"),
    ("_GUARD_TYPE", UOp("_GUARD_TYPE", 0, Obj(int)), State((Item(),), (int,)), IndexError,
     "out of range"),
    ("_GUARD_TYPE", UOp("_GUARD_TYPE", 1, int), State((Item(),), (int,)), AttributeError,
     "value"),
    ("_GUARD_TYPE", UOp("_GUARD_TYPE", 1, Obj(int)), State((Item(int, 3),), (int,)), IndexError,
     "out of range"),
    ("_GUARD_LOCAL_TYPE", UOp("_GUARD_LOCAL_TYPE", 1, Obj(int)), State((), (int,)), IndexError,
     "out of range"),
    ("_GUARD_LOCAL_TYPE", object(), State((), (int,)), TypeError, "not an object slot"),
])
def test_bad_state_transfer_calls(name, uop, state, error, message):
    with pytest.raises(error, match=message):
        state_transfer(name)(uop, state)
    with pytest.raises(TypeError, match=r"takes \(uop, state\)"):
        state_transfer(name)(uop)


def test_state_transfers_leak_nothing_and_are_collected():
    transfers = {name: state_transfer(name) for name in PYTHON_TRANSFERS}
    states = [State(stack, state_locals) for stack in ALIASED for state_locals in STATE_LOCALS]
    calls = [(transfers["_STORE_FAST"], UOp("_STORE_FAST", 2)),
             (transfers["_GUARD_TYPE"], UOp("_GUARD_TYPE", 1, Obj(float))),
             (transfers["_GUARD_LOCAL_TYPE"], UOp("_GUARD_LOCAL_TYPE", 0, Obj(list)))]
    bad = UOp("_GUARD_TYPE", 9, Obj(int))

    def one_round():
        for state in states:
            for transfer, uop in calls:
                try:
                    transfer(uop, state)
                except (IndexError, AnalysisError):
                    pass  # (an empty stack's store or guard)
            try:
                transfers["_GUARD_TYPE"](bad, state)
            except AnalysisError:
                pass

    for _ in range(20):
        one_round()
    gc.collect()
    held = (*states, *[s.stack for s in states], *[s.locals for s in states],
            *[u for _, u in calls], float, list)
    counts = [sys.getrefcount(x) for x in held]
    grown = growth_per_batch(one_round, rounds=200)
    assert min(grown) < 4096, f"bytes more after each 200 rounds: {grown}"
    assert [sys.getrefcount(x) for x in held] == counts
    # (The uops' opargs are small ints, shared: a leaked reference a call
    # would add thousands over these rounds.)
    zeros = sys.getrefcount(0)
    for _ in range(200):
        one_round()
    assert abs(sys.getrefcount(0) - zeros) < 100

    class Marker:
        pass

    marker = Marker()
    cyclic = type("Cyclic", (AnalysisError,), {})
    looped = _runtime.StateTransfer("_STORE_FAST", State, Item, UNBOUND, cyclic)
    cyclic.transfer, cyclic.marker = looped, marker
    alive = weakref.ref(marker)
    del looped, cyclic, marker
    gc.collect()
    assert alive() is None
