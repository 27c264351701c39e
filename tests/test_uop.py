"""cpjit.ir.UOp, whose fields are those of a C base (csrc/uop.c): it must
behave as the dataclass with slots it replaced: the same fields, positional
order and defaults, the same errors for calls that do not fit, replace(),
field-wise ==, unhashable, a dataclass's repr; and, being C, hold its
fields' references right (reference counts, cycles through a field) and
survive fields that are not set.  Also what layout.c and stackwalk.c take
as the uop type (csrc/uopfields.c)."""

import copy
import gc
import inspect
import math
import pickle
import sys
import weakref

import pytest

from cpjit import _runtime, analysis
from cpjit.analysis import AnalysisError
from cpjit.ir import LABEL, ExitStep, Obj, UOp

FIELDS = ("name", "oparg", "operand0", "operand1", "offset", "exit_to", "jump_to", "comment",
          "exit_after", "exit_steps", "exit_after_steps")
DEFAULTS = {"oparg": 0, "operand0": 0, "operand1": 0, "offset": -1, "exit_to": -1, "jump_to": -1,
            "comment": "", "exit_after": -1, "exit_steps": (), "exit_after_steps": ()}
# A value for every field, none of them a default.
VALUES = ("_LOAD_FAST", 3, Obj(None), 7, 12, 10, 20, "a comment", 14,
          (ExitStep("local", 0, 1),), (ExitStep("sync_i64", 2),))


def fields(uop: UOp) -> tuple:
    return tuple(getattr(uop, name) for name in FIELDS)


# ---- construction ----

def test_the_fields_in_positional_order():
    assert UOp.__match_args__ == FIELDS
    assert tuple(UOp.__annotations__) == FIELDS
    assert list(inspect.signature(UOp).parameters) == list(FIELDS)


def test_defaults():
    uop = UOp("_NOP")
    assert fields(uop) == ("_NOP", *DEFAULTS.values())
    assert uop.comment is "" and uop.exit_steps is ()  # noqa: F632 (the very objects)
    signature = inspect.signature(UOp)
    assert signature.parameters["name"].default is inspect.Parameter.empty
    assert {name: p.default for name, p in signature.parameters.items() if name != "name"} \
        == DEFAULTS


@pytest.mark.parametrize("count", range(1, len(FIELDS) + 1))
def test_positional_and_keyword_arguments(count):
    given = dict(zip(FIELDS, VALUES[:count]))
    expected = ({**DEFAULTS, **given})
    expected = tuple(expected[name] for name in FIELDS)
    assert fields(UOp(*VALUES[:count])) == expected
    assert fields(UOp(**given)) == expected
    assert fields(UOp(*VALUES[:count - 1], **dict(list(given.items())[count - 1:]))) == expected
    keywords = dict(reversed(given.items()))  # (in any order)
    assert fields(UOp(**keywords)) == expected
    assert UOp(*VALUES[:count]) == UOp(**keywords)


def test_any_values():
    """Like a dataclass, the fields take any object (the emitter and the stack
    walk refuse a uop whose fields are not what they read)."""
    uop = UOp(5, oparg="3", jump_to=None, exit_steps=[])
    assert (uop.name, uop.oparg, uop.jump_to, uop.exit_steps) == (5, "3", None, [])


def test_keywords_spelled_at_run_time():
    name = "".join(["op", "arg"])  # (not the interned str)
    assert UOp("_X", **{name: 4}).oparg == 4


@pytest.mark.parametrize("call, message", [
    (lambda: UOp(), r"UOp\(\) missing 1 required positional argument: 'name'"),
    (lambda: UOp(oparg=1, offset=2), r"missing 1 required positional argument: 'name'"),
    (lambda: UOp(*VALUES, 0), r"UOp\(\) takes from 1 to 11 positional arguments but 12 were "
                              r"given"),
    (lambda: UOp("_X", opar=1), r"UOp\(\) got an unexpected keyword argument 'opar'"),
    (lambda: UOp("_X", 1, oparg=2), r"UOp\(\) got multiple values for argument 'oparg'"),
    (lambda: UOp("_X", name="_Y"), r"got multiple values for argument 'name'"),
    (lambda: UOp.__new__(UOp).__init__(), r"missing 1 required positional argument: 'name'"),
])
def test_calls_that_do_not_fit(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_no_python_init_runs():
    """The class is called through the C base's vectorcall: no __init__ or
    __new__ written in Python."""
    assert "__init__" not in vars(UOp) and "__new__" not in vars(UOp)
    assert UOp.__init__ is _runtime.UOpBase.__init__
    assert UOp.__new__ is _runtime.UOpBase.__new__


def test_new_and_init_apart():
    """As with the dataclass: __new__ makes a uop with no field set, __init__
    sets every field (again, if called again)."""
    uop = UOp.__new__(UOp)
    with pytest.raises(AttributeError, match="'UOp' object has no attribute 'name'"):
        uop.name
    uop.__init__("_X", 2, jump_to=5)
    assert fields(uop) == fields(UOp("_X", 2, jump_to=5))
    uop.__init__("_Y")
    assert fields(uop) == fields(UOp("_Y"))
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'x'"):
        uop.__init__("_Z", x=1)
    assert uop.name == "_Y"  # (unchanged by a call that fails)


def test_subclasses():
    class Plain(UOp):
        __slots__ = ()

    class WithInit(UOp):
        __slots__ = ("extra",)

        def __init__(self, name, extra, **fields):
            super().__init__(name, **fields)
            self.extra = extra

    class WithNew(UOp):
        __slots__ = ()

        def __new__(cls, *args, **kwargs):
            made = super().__new__(cls)
            made.comment = "new"
            return made

    assert type(Plain("_X", 1)) is Plain and fields(Plain("_X", 1)) == fields(UOp("_X", 1))
    uop = WithInit("_X", "more", oparg=3)
    assert (uop.name, uop.oparg, uop.extra) == ("_X", 3, "more")
    assert fields(WithNew("_X", 4)) == fields(UOp("_X", 4))  # (__init__ sets every field)
    Plain.__init__ = lambda self, name: UOp.__init__(self, name, comment="late")
    try:
        assert Plain("_X").comment == "late"  # (an __init__ given later counts too)
    finally:
        del Plain.__init__
    assert Plain("_X").comment == ""
    assert repr(Plain("_X")).startswith("test_subclasses.<locals>.Plain(name='_X', oparg=0,")


# ---- fields ----

def test_fields_are_settable_and_only_they():
    uop = UOp("_X")
    for name, value in zip(FIELDS, VALUES):
        setattr(uop, name, value)
    assert fields(uop) == VALUES
    with pytest.raises(AttributeError):
        uop.other = 1
    assert not hasattr(uop, "__dict__")
    with pytest.raises(TypeError):
        weakref.ref(uop)


@pytest.mark.parametrize("name", FIELDS)
def test_a_deleted_field(name):
    uop = UOp(*VALUES)
    delattr(uop, name)
    message = f"'UOp' object has no attribute '{name}'"
    with pytest.raises(AttributeError, match=message):
        getattr(uop, name)
    with pytest.raises(AttributeError):
        delattr(uop, name)
    for use in (uop.replace, lambda: uop == UOp(*VALUES), lambda: UOp(*VALUES) == uop,
                lambda: repr(uop), lambda: copy.copy(uop)):
        with pytest.raises(AttributeError, match=message):
            use()
    setattr(uop, name, VALUES[FIELDS.index(name)])
    assert uop == UOp(*VALUES)


# ---- replace, ==, hash, repr, copies ----

def test_replace():
    uop = UOp(*VALUES)
    same = uop.replace()
    assert same is not uop and type(same) is UOp and fields(same) == VALUES
    assert all(getattr(same, name) is getattr(uop, name) for name in FIELDS)
    changed = uop.replace(name="_Y", exit_steps=(), comment="")
    assert fields(changed) == ("_Y", *VALUES[1:7], "", VALUES[8], (), VALUES[10])
    assert fields(uop) == VALUES  # (the original untouched)
    with pytest.raises(AttributeError, match="'UOp' object has no attribute 'opar'"):
        uop.replace(opar=1)
    with pytest.raises(TypeError, match="positional"):
        uop.replace("_Y")
    assert fields(uop) == VALUES


def test_replace_keeps_the_class():
    class Sub(UOp):
        __slots__ = ()
    assert type(Sub("_X").replace(oparg=1)) is Sub


@pytest.mark.parametrize("index", range(len(FIELDS)))
def test_equality_is_field_by_field(index):
    uop = UOp(*VALUES)
    assert uop == UOp(*VALUES) and not uop != UOp(*VALUES)
    other = uop.replace(**{FIELDS[index]: "different"})
    assert uop != other and not uop == other


def test_equality_as_the_dataclass_had_it():
    """Tuples of the fields compared: identity first, then ==; only uops of
    the very same class."""
    nan = math.nan
    assert UOp("_X", operand0=nan) == UOp("_X", operand0=nan)
    assert UOp("_X", operand0=float("nan")) != UOp("_X", operand0=float("nan"))
    assert UOp("_X", oparg=1) == UOp("_X", oparg=1.0) == UOp("_X", oparg=True)

    class Sub(UOp):
        __slots__ = ()
    assert UOp("_X") != Sub("_X") and Sub("_X") == Sub("_X")
    assert UOp("_X") != ("_X", *DEFAULTS.values()) and UOp("_X") != None  # noqa: E711
    with pytest.raises(TypeError):
        UOp("_X") < UOp("_Y")

    class Refusing:
        def __eq__(self, other):
            raise ValueError("no")
    with pytest.raises(ValueError, match="no"):
        UOp("_X", operand1=Refusing()) == UOp("_X", operand1=Refusing())


def test_unhashable():
    assert UOp.__hash__ is None
    with pytest.raises(TypeError, match="unhashable type: 'UOp'"):
        hash(UOp("_X"))
    with pytest.raises(TypeError):
        {UOp("_X")}


def test_repr():
    assert repr(UOp("_LOAD_FAST", 1, offset=4, comment="x")) == (
        "UOp(name='_LOAD_FAST', oparg=1, operand0=0, operand1=0, offset=4, exit_to=-1, "
        "jump_to=-1, comment='x', exit_after=-1, exit_steps=(), exit_after_steps=())")
    uop = UOp("_X")
    uop.operand0 = [uop]
    assert repr(uop).startswith("UOp(name='_X', oparg=0, operand0=[...], operand1=0,")


def test_copies_and_pickles():
    uop = UOp(*VALUES)
    for other in (copy.copy(uop), copy.deepcopy(uop), pickle.loads(pickle.dumps(uop))):
        assert type(other) is UOp and other is not uop and other == uop


def test_match():
    match UOp("_JUMP", 0, jump_to=4):
        case UOp("_JUMP", jump_to=target):
            assert target == 4
        case _:
            pytest.fail("no match")


# ---- references ----

def test_reference_counts():
    value, other = object(), object()
    before = sys.getrefcount(value), sys.getrefcount(other)
    for _ in range(3):
        made = [UOp(value, value, value, value, value, value, value, value, value, value, value)
                for _ in range(100)]
        made += [UOp(value, **{name: value for name in FIELDS[1:]}) for _ in range(100)]
        made += [u.replace() for u in made] + [u.replace(name=other, oparg=other) for u in made]
        made[0].__init__(other, value)
        for u in made[:10]:
            u.operand0 = other
            copy.copy(u.replace(operand1=other))
            repr(u)
            del u.operand1
            u.__init__(other, operand1=value)
        del made, u
    for call in (lambda: UOp(value, value, value, bad=value), lambda: UOp(value, name=value),
                 lambda: UOp(value, *[value] * 11), lambda: UOp(oparg=value),
                 lambda: UOp(value).replace(bad=value)):
        for _ in range(10):
            with pytest.raises((TypeError, AttributeError)):
                call()
    assert (sys.getrefcount(value), sys.getrefcount(other)) == before


@pytest.mark.parametrize("name", FIELDS)
def test_a_cycle_through_a_field_is_collected(name):
    class Holder:
        pass
    holder = Holder()
    holder.uop = UOp(**{"name": "_X", name: holder})
    alive = weakref.ref(holder)
    del holder
    gc.collect()
    assert alive() is None


def test_a_uop_in_its_own_field_is_collected():
    class Holder:
        pass
    holder = Holder()
    uop = UOp("_X", operand0=holder)
    uop.operand1 = uop
    alive = weakref.ref(holder)
    del holder, uop
    gc.collect()
    assert alive() is None


# ---- the uop type of the C walks (csrc/uopfields.c) ----

def walk(uops, uop_type):
    return _runtime.stack_walk(tuple(uops), uop_type, LABEL, analysis._OPARG_FREE_STEPS,
                               analysis._STEPS, 4, None, frozenset(), AnalysisError)


def test_the_walks_read_the_fields_of_the_base():
    class Sub(UOp):
        __slots__ = ("extra",)

    uops = [UOp("_LOAD_FAST", 0), UOp("_POP_TOP")]
    assert walk(uops, UOp) == [0, 1]
    assert walk([Sub(u.name, u.oparg) for u in uops], Sub) == [0, 1]
    with pytest.raises(TypeError, match="uop 0 is a UOp, not a Sub"):
        walk(uops, Sub)


def test_a_field_the_type_hides_is_not_read():
    class Hiding(UOp):
        __slots__ = ()
        oparg = property(lambda self: 0)

    with pytest.raises(TypeError, match="Hiding.oparg is not an object slot of its own"):
        walk([Hiding("_POP_TOP")], Hiding)
    with pytest.raises(TypeError, match="the uop type must be a ready type"):
        walk([UOp("_POP_TOP")], "UOp")


def test_a_field_hidden_after_a_walk_is_not_read():
    # The fields found are kept per type while its version tag stays the
    # same: hiding one afterwards changes the tag, and the walk sees it.
    class Later(UOp):
        __slots__ = ()

    uops = [Later("_LOAD_FAST", 0), Later("_POP_TOP")]
    assert walk(uops, Later) == [0, 1]
    assert walk(uops, Later) == [0, 1]  # (the fields kept)
    Later.oparg = property(lambda self: 0)
    with pytest.raises(TypeError, match="Later.oparg is not an object slot of its own"):
        walk(uops, Later)
    del Later.oparg
    assert walk(uops, Later) == [0, 1]


def test_a_field_hidden_in_a_base_after_a_walk_is_not_read():
    class Base(UOp):
        __slots__ = ()

    class Derived(Base):
        __slots__ = ()

    uops = [Derived("_LOAD_FAST", 0), Derived("_POP_TOP")]
    assert walk(uops, Derived) == [0, 1]
    Base.oparg = property(lambda self: 0)
    with pytest.raises(TypeError, match="Derived.oparg is not an object slot of its own"):
        walk(uops, Derived)
