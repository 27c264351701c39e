"""Inline caches of attributes, methods and globals: every way a cached answer can go stale.

Each test runs the same sequence of calls and mutations plainly and jitted
(the jitted function is compiled at its first call, its caches filled by the
first iterations) and compares everything observed.
"""

import math
import types

from differential import check, fresh

import cpjit


class Plain:
    def __init__(self, x):
        self.x = x

    def method(self):
        return "method"


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x):
        self.x = x

    def method(self):
        return "slotted"


class WithProperty:
    def __init__(self, x):
        self._x = x

    @property
    def x(self):
        return self._x * 10


class WithGetattr:
    def __getattr__(self, name):
        return f"computed {name}"


class WithSetattr:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value * 2)


def read_x(objs):
    out = []
    for o in objs:
        try:
            out.append(o.x)
        except AttributeError as e:
            out.append(str(e))
    return out


def test_load_attr_across_shapes():
    def inputs():
        a, b = Plain(1), Plain(2)
        b.extra = 1  # same type, more attributes
        c = Plain(3)
        c.__dict__  # materialized dict
        d = Plain(4)
        del d.x
        return ([a, b, c, d, Slotted(5), Slotted.__new__(Slotted), WithProperty(6), WithGetattr(),
                 types.SimpleNamespace(x=7), math, a, b],)
    check(read_x, inputs=inputs, calls=3)


def reads_then_class_changes(obj):
    before = [obj.x for _ in range(3)]
    type(obj).x = property(lambda self: "class property")  # a data descriptor now wins
    after = [obj.x for _ in range(3)]
    del type(obj).x
    again = [obj.x for _ in range(3)]
    return before, after, again


def test_class_gaining_a_data_descriptor():
    def inputs():
        cls = type("Dyn", (), {})
        obj = cls()
        obj.x = "instance"
        return (obj,)
    check(reads_then_class_changes, inputs=inputs, calls=2)


def write_attrs(objs, value):
    for o in objs:
        try:
            o.x = value
        except AttributeError as e:
            o = str(e)
    return [getattr(o, "x", None) if not isinstance(o, WithProperty) else o._x for o in objs]


def test_store_attr_across_shapes():
    def inputs():
        fresh_obj = Plain(0)
        del fresh_obj.x  # storing re-adds the attribute
        return ([Plain(1), fresh_obj, Slotted(2), Slotted.__new__(Slotted), WithSetattr(),
                 WithProperty(3), types.SimpleNamespace()], 5)
    check(write_attrs, inputs=inputs, calls=3)


def add_many_attributes(obj, n):
    for i in range(n):
        setattr(obj, f"a{i}", i)
        obj.x = i
    return sorted(vars(obj).items())


def test_store_attr_when_shared_keys_overflow():
    check(add_many_attributes, inputs=lambda: (Plain(0), 40))


def call_methods(objs):
    out = []
    for o in objs:
        out.append(o.method())
    return out


def test_load_method_and_shadowing():
    def inputs():
        shadowed = Plain(1)
        shadowed.method = lambda: "instance attribute"
        return ([Plain(0), Plain(1), shadowed, Slotted(2), Plain(3)],)
    check(call_methods, inputs=inputs, calls=3)


def methods_then_class_changes(obj):
    first = [obj.method() for _ in range(3)]
    type(obj).method = lambda self: "replaced"
    second = [obj.method() for _ in range(3)]
    obj.method = lambda: "shadowed later"
    third = [obj.method() for _ in range(3)]
    return first, second, third


def test_method_replaced_and_shadowed_while_cached():
    def inputs():
        cls = type("Dyn", (), {"method": lambda self: "original"})
        return (cls(),)
    check(methods_then_class_changes, inputs=inputs, calls=2)


def module_attributes(n):
    total = 0.0
    for i in range(n):
        total += math.sqrt(i) + math.pi
    return total


def test_module_attribute():
    check(module_attributes, 50, calls=2)


VALUE = 1


def read_global(n):
    out = []
    for _ in range(n):
        out.append(VALUE)
    return out


def rebinding_globals(n):
    global VALUE
    out = []
    for i in range(n):
        out.append(VALUE)
        VALUE = i
        if i == 3:
            del VALUE
            try:
                out.append(VALUE)
            except NameError as e:
                out.append(str(e))
            VALUE = "back"
    return out


def test_global_rebound_and_deleted():
    global VALUE
    for func in (read_global, rebinding_globals):
        VALUE = 1
        jitted = cpjit.jit(fresh(func), warmup=0)
        got = jitted(8)
        VALUE = 1
        want = fresh(func)(8)
        assert got == want
        assert jitted.compiled
    VALUE = 1


def uses_builtin(xs):
    return [len(x) for x in xs]


def test_builtin_then_shadowed_by_a_global():
    g = {"__builtins__": __builtins__}
    exec("def f(xs):\n    out = []\n    for x in xs:\n        out.append(len(x))\n"
         "    return out\n", g)
    jitted = cpjit.jit(g["f"], warmup=0)
    assert jitted(["ab", "c"]) == [2, 1]
    g["len"] = lambda x: "shadowed"
    assert jitted(["ab", "c"]) == ["shadowed", "shadowed"]
    del g["len"]
    assert jitted(["ab", "c"]) == [2, 1]
    assert jitted.compiled


def test_globals_dict_grows_while_cached():
    g = {"__builtins__": __builtins__, "k": 1}
    exec("def f(n):\n    s = 0\n    for i in range(n):\n        s += k\n    return s\n", g)
    jitted = cpjit.jit(g["f"], warmup=0)
    assert jitted(3) == 3
    for i in range(200):  # resize the dict: new keys object
        g[f"name{i}"] = i
    g["k"] = 5
    assert jitted(3) == 15
    for i in range(200):
        del g[f"name{i}"]
    g["k"] = 7
    assert jitted(2) == 14


def undefined_global():
    return not_defined_anywhere  # noqa: F821


def test_undefined_global_raises_name_error():
    check(undefined_global, calls=2)


# Polymorphic sites: one cache entry per type, most recent first, the least
# recent evicted past CPJIT_CACHE_ENTRIES types.

def _shape_classes(count):
    classes = []
    for k in range(count):
        def method(self, k=k):
            return f"m{k}"
        namespace = {"method": method, "__init__": lambda self, v: setattr(self, "x", v)}
        if k % 3 == 2:
            namespace["__slots__"] = ("x",)
        classes.append(type(f"Shape{k}", (), namespace))
    return classes


def visit(objs, rounds):
    out = []
    for _ in range(rounds):
        for o in objs:
            o.x = o.x + 1
            out.append((o.x, o.method()))
    return out


def test_polymorphic_sites_with_more_types_than_entries():
    for count in (2, 4, 7):
        classes = _shape_classes(count)
        check(visit, inputs=lambda: ([cls(k) for k, cls in enumerate(classes)], 5), calls=3)


def test_a_polymorphic_entry_goes_stale_with_its_type():
    classes = _shape_classes(3)
    mine, theirs = ([cls(k) for k, cls in enumerate(classes)] for _ in range(2))
    plain, jitted = fresh(visit), cpjit.jit(fresh(visit), warmup=0)
    assert jitted(mine, 3) == plain(theirs, 3)
    classes[1].method = lambda self: "replaced"  # the second entry's type changes
    for objs in (mine, theirs):
        objs[0].method = lambda: "shadowed"  # the first type's instance shadows its method
    assert jitted(mine, 2) == plain(theirs, 2)
    assert jitted.compiled


def test_cache_layout_matches_the_runtime():
    from pathlib import Path
    from cpjit import ir
    header = (Path(__file__).resolve().parent.parent / "csrc" / "runtime.h").read_text()
    assert f"#define CPJIT_CACHE_WORDS {ir.CACHE_WORDS} " in header
    assert f"#define CPJIT_CACHE_ENTRIES {ir.CACHE_ENTRIES} " in header
