"""Every compiled instruction family, differentially against the plain interpreter."""

import copy
import math
import sys

import pytest
from differential import check, compiled_without_exits, fresh, run, same

import cpjit

G = 10


def loads_and_stores(a, b):
    x = a
    y = b
    del x
    x = y
    return x, y, G, len


def test_locals_constants_globals():
    w = check(loads_and_stores, 1, "two")
    assert compiled_without_exits(w)


def store_global(v):
    global G2
    G2 = v
    return G2


def test_store_global():
    w = check(store_global, 42)
    assert compiled_without_exits(w)


def unbound_local(flag):
    if flag:
        x = 1
    return x  # noqa: F821 - UnboundLocalError when flag is false


def test_unbound_local_raises_like_the_interpreter():
    check(unbound_local, True)
    check(unbound_local, False)


def name_error():
    return undefined_name_for_cpjit_tests  # noqa: F821


def test_name_error():
    check(name_error)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm2(self):
        return self.x * self.x + self.y * self.y

    @property
    def swapped(self):
        return Point(self.y, self.x)


def attributes(p):
    p.x = p.x + 1
    q = p.swapped
    del q.y
    return p.norm2(), q.x, hasattr(q, "y")


def test_attributes_and_methods():
    check(attributes, inputs=lambda: (Point(1, 2),))


def missing_attribute(p):
    return p.z


def test_attribute_error():
    check(missing_attribute, Point(1, 2))


def kw(a, b=2, *args, c, d=4, **kwargs):
    return a, b, args, c, d, sorted(kwargs.items())


def calls(f):
    r1 = f(1, c=3)
    r2 = f(1, 2, 3, c=5, e=6)
    r3 = dict(a=1, b=2)
    r4 = "-".join(["a", "b"])
    r5 = max(3, 7, key=lambda v: -v)
    return r1, r2, r3, r4, r5


def test_calls_positional_and_keyword():
    w = check(calls, kw, expect_compiled=False)
    assert w.compiled  # MAKE_FUNCTION of the lambda side-exits


def bound_method_call(p):
    m = p.norm2
    return m()


def test_bound_method_object_call():
    check(bound_method_call, Point(3, 4))


def plain_and_other_calls(f, p, xs):
    a = f(1, c=2)            # keywords: _CALL
    b = p.norm2()            # a method: _CALL
    m = p.norm2
    c = m()                  # a bound method object under a NULL: _CALL_FUNCTION unpacks nothing
    d = f(*xs, c=1)          # CALL_FUNCTION_EX
    e = abs(len(xs) - 9)     # builtins under a NULL
    g = kw(4, c=5)
    return a, b, c, d, e, g, bound_method_call(p)  # a Python function under a NULL


def test_plain_calls_use_the_call_function_uop():
    """A callable under a NULL called without keywords is a _CALL_FUNCTION
    (no method or keyword case to test); method and keyword calls keep _CALL."""
    w = check(plain_and_other_calls, kw, Point(3, 4), [1, 2], calls=3)
    names = [u.name for u in w._info.trace.uops]
    assert "_CALL_FUNCTION" in names and "_CALL" in names, names


def appends(items, target):
    for item in items:
        target.append(item)      # list.append, inline (METH_O otherwise)
    [].append(items)             # a temporary list, released at once
    seen = set()
    for item in items:
        seen.add(item)           # another METH_O method
    return target, len(seen)


class Log(list):
    def append(self, item):
        super().append(("logged", item))


@pytest.mark.parametrize("target", [[], list(range(7)), [None] * 8])
def test_list_append_inline(target):
    """list.append goes into the list's spare room, or grows it; the item's
    reference count is the interpreter's."""
    item = object()
    items = [item, 2, "three", item] * 5
    w = check(appends, items, inputs=lambda: (items, list(target)), calls=8)
    uops = [u for u in w._info.trace.uops if u.name == "_CALL_METHOD_DESCRIPTOR_O"]
    assert len(uops) == 3 and all(u.operand0.value is list.append for u in uops)
    before = sys.getrefcount(item)
    out = w(items, list(target))[0]
    assert sys.getrefcount(item) == before + 10
    del out
    assert sys.getrefcount(item) == before
    # a list subclass, a set (no append), None, on the same code: side exits
    for other in (Log(target), set(), None):
        want = run(fresh(appends), (items, copy.copy(other)))
        got = run(w, (items, copy.copy(other)))
        assert same(want, got), (want.summary(), got.summary())


def gets(d, keys, default):
    out = []
    for key in keys:
        out.append(d.get(key, default))  # dict.get, inline (METH_FASTCALL otherwise)
        out.append(d.get(key))
    return out


class BadKey:
    """Hashes like 1; comparing raises (an error inside the lookup)."""

    def __hash__(self):
        return hash(1)

    def __eq__(self, other):
        raise ValueError("no comparing")

    def __deepcopy__(self, memo):  # (the differential check compares the very object)
        return self


class Shrinking:
    """Hashes like "a"; comparing empties the dict being searched."""

    def __init__(self, d):
        self.d = d

    def __hash__(self):
        return hash("a")

    def __eq__(self, other):
        self.d.clear()
        return False

    def __deepcopy__(self, memo):
        return self


class MyDict(dict):
    def get(self, key, default=None):
        return ("MyDict", key, default)


def test_dict_get_inline():
    """dict.get on an exact dict is a lookup in the uop: hits, misses, with
    and without a default, errors from the key (unhashable, a raising
    __eq__), a dict changed by the lookup, other receivers."""
    d = {"a": 1, 2: "two", (3,): None, 1: "one"}
    default = object()
    w = check(gets, d, ["a", 2, "zz", (3,), 7.5], default, calls=8)
    uops = [u for u in w._info.trace.uops if u.name == "_CALL_METHOD_DESCRIPTOR_FAST"]
    assert len(uops) == 2 and all(u.operand0.value is dict.get for u in uops)
    before = sys.getrefcount(default)
    out = w(d, ["zz", "a", "yy"], default)
    assert sys.getrefcount(default) == before + 2
    del out
    assert sys.getrefcount(default) == before
    for args in ((d, [[1]], None), (d, [BadKey()], 0), ({"a": 1}, [Shrinking({"a": 1})], 0),
                 (MyDict(d), ["a"], 5), ({}, ["a"], None), ([1, 2], [0], None)):
        want, got = run(fresh(gets), args), run(w, args)
        assert same(want, got), (args, want.summary(), got.summary())
    shrinking = {"a": 1}
    assert w(shrinking, [Shrinking(shrinking)], 0) == [0, None] and shrinking == {}


def wrong_gets(d):
    return d.get(), d.get(1, 2, 3)


def test_dict_get_with_a_wrong_number_of_arguments():
    check(wrong_gets, {1: 2}, calls=8)


def bad_call(f):
    return f(1, 2, 3)


def test_call_error():
    check(bad_call, kw)


ARITH_VALUES = [0, 1, -7, 13, 2**29, -(2**29), 2**40, -(2**70), 3.5, -0.0, float("inf"),
                float("nan"), True, 2 + 3j]


def arith(a, b):
    out = []
    for op in (lambda: a + b, lambda: a - b, lambda: a * b, lambda: a / b, lambda: a // b,
               lambda: a % b, lambda: a ** b if abs(b) < 50 else 0, lambda: a & b,
               lambda: a | b, lambda: a ^ b, lambda: a << (b % 8) if isinstance(b, int) else 0,
               lambda: a >> 3 if isinstance(a, int) else 0):
        try:
            out.append(op())
        except Exception as e:  # noqa: BLE001
            out.append(type(e).__name__)
    return out


def binary_ops(a, b):
    r = []
    r.append(a + b)
    r.append(a - b)
    r.append(a * b)
    r.append(a / b)
    r.append(a // b)
    r.append(a % b)
    r.append(a & b)
    r.append(a | b)
    r.append(a ^ b)
    r.append(a << 3)
    r.append(a >> 2)
    r.append(a ** 2)
    x = a
    x += b
    x -= b
    x *= b
    x //= b
    x %= b
    x &= b
    x |= b
    x ^= b
    r.append(x)
    return r


INT_PAIRS = [(7, 3), (-7, 3), (7, -3), (-7, -3), (0, 5), (2**29, 2**29 - 1), (-(2**29), 3),
             (2**62, 3), (-(2**70), 2**33), (1, 2**64)]


@pytest.mark.parametrize("a,b", INT_PAIRS)
def test_int_binary_ops(a, b):
    check(binary_ops, a, b)


def float_ops(a, b):
    return [a + b, a - b, a * b, a / b, -a, a < b, a <= b, a == b, a != b, a > b, a >= b]


FLOAT_PAIRS = [(1.5, 2.25), (-0.0, 0.0), (1e308, 1e308), (float("inf"), 1.0),
               (float("nan"), 1.0), (3, 0.5), (0.5, 3), (2**40, 0.5), (7, 2)]


@pytest.mark.parametrize("a,b", FLOAT_PAIRS)
def test_float_ops(a, b):
    check(float_ops, a, b)


def division_errors(a, b):
    return a / b


@pytest.mark.parametrize("a,b", [(1, 0), (1.0, 0.0), (0, 0), (5, 0.0)])
def test_zero_division_traceback(a, b):
    check(division_errors, a, b)


def floor_mod_zero(a, b):
    return a // b, a % b


def test_floor_mod_by_zero():
    check(floor_mod_zero, 5, 0)


def type_error(a, b):
    return a + b


@pytest.mark.parametrize("a,b", [(1, "x"), ("x", None), ([1], (2,)), (None, None)])
def test_binary_type_errors(a, b):
    check(type_error, a, b)


def str_and_sequence_ops(s, t, xs):
    return s + t, s * 3, 3 * s, s % (1, 2) if "%" in s else s, xs + xs, xs * 2


def test_str_and_sequence_ops():
    check(str_and_sequence_ops, "a%sb%s", "c", [1, 2])


def unary(a):
    return -a, +a, ~a if isinstance(a, int) else None, not a


@pytest.mark.parametrize("a", [0, 5, -(2**30), 2**30, 2**100, 1.5, -0.0, True, False])
def test_unary(a):
    check(unary, a)


def unary_error(a):
    return -a


def test_unary_error():
    check(unary_error, "x")


def compare(a, b):
    return a < b, a <= b, a == b, a != b, a > b, a >= b


@pytest.mark.parametrize("a,b", [(1, 2), (2, 1), (3, 3), (1, 2.5), (2.5, 1), (float("nan"), 1.0),
                                 ("a", "b"), ("x", "x"), ((1, 2), (1, 3)), (2**40, 2**40 + 1),
                                 (-(2**30), 2**30)])
def test_compare(a, b):
    check(compare, a, b)


def compare_error(a, b):
    return a < b


def test_compare_type_error():
    check(compare_error, 1, "x")


def identity_and_membership(a, xs, d):
    return a is None, a is not None, a in xs, a not in xs, a in d, "k" in d


def test_is_and_contains():
    check(identity_and_membership, 3, [1, 2, 3], {3: 4})
    check(identity_and_membership, None, (None,), {})


def contains_error(a, b):
    return a in b


def test_contains_error():
    check(contains_error, 1, 5)


def branches(a, b, xs):
    r = []
    if a:
        r.append(1)
    if not b:
        r.append(2)
    if a is None:
        r.append(3)
    if b is not None:
        r.append(4)
    r.append(a and b)
    r.append(a or b)
    r.append(xs and xs[0])
    while a > 0:
        a -= 1
        r.append(a)
    return r


@pytest.mark.parametrize("a,b", [(3, 0), (0, 1), (2, None), (1.5, ""), (0, [])])
def test_branches(a, b):
    check(branches, a, b, [7])


class Falsy:
    def __bool__(self):
        return False


class BadBool:
    def __bool__(self):
        raise ValueError("no truth")


def truth(x):
    if x:
        return "yes"
    return "no"


def test_truth_of_objects():
    check(truth, Falsy())
    check(truth, [0])
    check(truth, BadBool())


def iteration(n, xs, t, d, s):
    total = 0
    for i in range(n):
        total += i
    for x in xs:
        total += x
    for v in t:
        total += v
    for k in d:
        total += d[k]
    for c in s:
        total += len(c)
    for i in range(10, 0, -3):
        total += i
    for a, b in zip(xs, t):
        total += a * b
    return total


def test_iteration():
    w = check(iteration, 100, [1, 2, 3], (4, 5, 6), {"a": 1, "b": 2}, "hello")
    assert compiled_without_exits(w)


def gen_values(n):
    for i in range(n):
        yield i * i


def iterate_generator(n):
    return [v for v in gen_values(n)]


def test_iterate_generator_and_comprehension():
    check(iterate_generator, 5)


def iteration_error(x):
    for v in x:
        pass


def test_iteration_error():
    check(iteration_error, 5)


def subscripts(xs, t, d, s):
    xs[0] = xs[-1]
    xs[1] += 10
    d["k"] = t[1]
    del d["j"]
    del xs[2]
    return xs[0], xs[-1], t[0], t[-2], d["k"], s[1:3], s[::-1], xs[1:], t[:1], d


def test_subscripts():
    check(subscripts, inputs=lambda: ([1, 2, 3, 4], (5, 6, 7), {"j": 0}, "abcdef"))


def subscript_errors(container, key):
    return container[key]


@pytest.mark.parametrize("container,key", [([1], 5), ((1,), -2), ({}, "x"), ("ab", 2), (5, 0),
                                           ({}, [])])
def test_subscript_errors(container, key):
    check(subscript_errors, container, key)


def store_subscript_error(xs, k):
    xs[k] = 1


def test_store_subscript_error():
    check(store_subscript_error, inputs=lambda: ([1, 2], 5))
    check(store_subscript_error, inputs=lambda: ((1, 2), 0))


def displays(a, b):
    lst = [a, b, 3]
    tup = (a, b)
    dct = {"a": a, "b": b}
    dct2 = {a: 1, b: 2}
    st = {a, b, a}
    sl = slice(a, b)
    lc = [x * 2 for x in lst]
    dc = {x: x for x in lst}
    sc = {x % 2 for x in lst}
    starred = [*lst, *tup]
    merged = {**dct, "c": 3}
    return lst, tup, dct, dct2, st, sl, lc, dc, sc, starred, merged, (*lst,)


def test_displays():
    check(displays, 1, 2)


def unhashable_display(a):
    return {a: 1}


def test_unhashable_key_error():
    check(unhashable_display, [1])


def bad_star(a):
    return [*a]


def bad_merge(a):
    return {**a}


def test_display_errors():
    check(bad_star, 5)
    check(bad_merge, 5)


def unpacking(t, xs, it):
    a, b = t
    c, d, e = xs
    f, g = it
    (h, i), j = (1, 2), 3
    return a, b, c, d, e, f, g, h, i, j


def test_unpack_sequence():
    check(unpacking, inputs=lambda: ((1, 2), [3, 4, 5], iter("ab")))
    check(unpacking, (1, 2), [3, 4, 5], {7: 0, 8: 0})


def bad_unpack(x):
    a, b = x
    return a, b


@pytest.mark.parametrize("make", [lambda: (1, 2, 3), lambda: (1,), lambda: [1, 2, 3],
                                  lambda: "abc", lambda: 5, lambda: iter([1])])
def test_unpack_errors(make):
    check(bad_unpack, inputs=lambda: (make(),))


def fstrings(x, y):
    return f"{x}-{y!r}-{x:>5}-{y!s:<4}-{x!a}-{x:{y}}", "%s=%d" % ("a", x)


def test_format_value_and_build_string():
    check(fstrings, 42, 3)
    check(fstrings, 3.5, 8)


def stack_ops(a, b, c):
    a, b = b, a
    a, b, c = c, a, b
    x = y = a
    obj = Point(1, 2)
    obj.x += 1
    d = {"k": 1}
    d["k"] += 2
    return a, b, c, x, y, obj.x, d


def test_copy_and_swap():
    check(stack_ops, 1, 2, 3)


def cells(a):
    b = a + 1

    def inner(c):
        nonlocal b
        b += c
        return a + b + c

    r = inner(1)
    return r, b


def test_closures():
    check(cells, 1, expect_compiled=False)


def make_adder(n):
    def adder(x):
        return x + n
    return adder


def test_free_variables():
    adder = make_adder(5)
    check(adder, 3)


def long_function(x):
    # enough locals and constants for EXTENDED_ARG
    v0 = x + 0; v1 = v0 + 1; v2 = v1 + 2; v3 = v2 + 3; v4 = v3 + 4; v5 = v4 + 5  # noqa: E702
    acc = 0
    for i in range(300):
        acc += i % 7
        if acc > 1000:
            acc -= 999
    return v5 + acc + math.floor(2.5)


def test_many_instructions():
    check(long_function, 1)


def assertions(x):
    assert x > 0, "x must be positive"
    return x


def test_assert():
    check(assertions, 1)
    check(assertions, -1)


def raises_and_catches(x):
    try:
        return 1 / x
    except ZeroDivisionError as e:
        return str(e)
    finally:
        x = None


def test_try_except_finally():
    check(raises_and_catches, 2)
    check(raises_and_catches, 0)


def with_statement(path):
    import io
    with io.StringIO("abc") as f:
        return f.read() + path


def test_with_statement_side_exits():
    w = check(with_statement, "!")
    assert any(w.stats["side_exits"].values())


# MAKE_FUNCTION: every part a function can get from the stack.

def make_functions(a, b):
    def plain(x):
        return x + 1

    def with_defaults(x, y=a, *, z=b):
        return (x, y, z)

    def annotated(x: int, y: "str" = "s") -> list:
        return [x, y]

    def closure(x):
        return x * a + b

    square = lambda v: v * v  # noqa: E731
    made = [plain, with_defaults, annotated, closure, square]
    described = [(f.__name__, f.__qualname__, f.__defaults__, f.__kwdefaults__,
                  f.__annotations__, f.__closure__ is not None, f.__module__) for f in made]
    return (described, plain(a), with_defaults(1), with_defaults(1, 2, z=3), annotated(a),
            closure(2), square(b), [(lambda k=k: k)() for k in range(3)],
            sorted([b, a, 3], key=lambda v: -v))


@pytest.mark.parametrize("a,b", [(1, 2), (2.5, "x" * 0 or 4), ("s", "t")])
def test_make_function(a, b):
    w = check(make_functions, a, b, calls=2)
    assert compiled_without_exits(w) or isinstance(a, str)


def make_many_closures(n):
    adders = []
    for k in range(n):
        adders.append(lambda x, k=k: x + k)
    return [f(10) for f in adders]


def test_make_function_in_a_loop():
    assert compiled_without_exits(check(make_many_closures, 50, calls=3))


# CALL_FUNCTION_EX: f(*args), f(*args, **kwargs), and the conversions and
# errors the interpreter does itself (side exits).

def spread(f, args, kwargs):
    if kwargs is None:
        return f(*args)
    return f(*args, **kwargs)


def target(a, b=2, *rest, c=3, **extra):
    return (a, b, rest, c, sorted(extra.items()))


class Mapping:
    def keys(self):
        return ["c", "d"]

    def __getitem__(self, key):
        return key * 2


@pytest.mark.parametrize("f,args,kwargs", [
    (target, (1,), None),
    (target, (1, 2, 3, 4), {"c": 5, "d": 6}),
    (target, [1, 2], None),  # a list: converted to a tuple by the interpreter
    (target, (1,), Mapping()),  # not a dict: merged by the interpreter
    (max, (3, 9, 4), None),
    (target, (), None),  # TypeError: missing argument
    (target, (1,), {"a": 2}),  # TypeError: multiple values
    (target, 5, None),  # TypeError: not iterable
    (target, (1,), 5),  # TypeError: not a mapping
    (print, ("x",), {"file": None, "end": ""}),
])
def test_call_function_ex(f, args, kwargs):
    check(spread, f, args, kwargs, calls=2)


def wrapper_loop(f, n):
    total = 0
    for i in range(n):
        total += f(*(i, 1), **{"c": i})[0]
    return total


def test_call_function_ex_in_a_loop():
    assert compiled_without_exits(check(wrapper_loop, target, 100, calls=3))


def merge_keywords(f, first, second):
    return f(1, **first, **second)


@pytest.mark.parametrize("first,second", [
    ({"c": 1}, {"d": 2}),
    ({"c": 1}, {"c": 2}),  # TypeError: multiple values for keyword argument 'c'
    ({"c": 1}, {1: 2}),  # TypeError: keywords must be strings
    ({}, Mapping()),
    ({"c": 1}, Mapping()),  # the mapping repeats 'c'
])
def test_dict_merge(first, second):
    check(merge_keywords, target, first, second, calls=2)


# dict subscripts: exact dicts inline; the key's __hash__/__eq__ run exactly as
# often as in the interpreter; KeyError and unhashable keys as it raises them.

class CountingKey:
    hashes = 0

    def __init__(self, name):
        self.name = name

    def __hash__(self):
        CountingKey.hashes += 1
        return hash(self.name)

    def __eq__(self, other):
        return isinstance(other, CountingKey) and other.name == self.name

    def __repr__(self):
        return f"K({self.name})"


class MissingDict(dict):
    def __missing__(self, key):
        return f"missing {key}"


def dict_subscripts(d, keys):
    CountingKey.hashes = 0
    out = []
    for key in keys:
        try:
            d[key] = d[key] + 1 if key in d else 0
            out.append(d[key])
        except (KeyError, TypeError) as error:
            out.append(f"{type(error).__name__}: {error}")
    return out, CountingKey.hashes, sorted(map(str, d.items()))


@pytest.mark.parametrize("make", [
    lambda: ({"a": 1, 2: 5}, ["a", "a", 2, "b", 2.0]),
    lambda: ({CountingKey("x"): 1}, [CountingKey("x"), CountingKey("y"), CountingKey("x")]),
    lambda: ({"a": 1}, [["unhashable"], "a"]),
    lambda: (MissingDict(a=1), ["a", "b"]),
])
def test_dict_subscripts(make):
    check(dict_subscripts, inputs=make, calls=3)


def lookups(d, keys):
    total = 0
    for key in keys:
        total += d[key]
    return total


@pytest.mark.parametrize("keys", [["a", "b", "a"], ["a", "zz"], [CountingKey("a")]])
def test_dict_lookup_key_error(keys):
    check(lookups, {"a": 1, "b": 2}, keys, calls=3)


# RAISE_VARARGS: raise exc [from cause] as the interpreter's do_raise does it,
# messages, causes, contexts and traceback lines included.

class NotAnException:
    pass


class BadFactory(Exception):
    def __new__(cls, *args):
        return 42


def raiser(kind, value):
    if kind == "instance":
        raise ValueError(f"bad {value}")
    if kind == "class":
        raise KeyError
    if kind == "from":
        raise RuntimeError("wrapped") from ValueError(value)
    if kind == "from class":
        raise RuntimeError("wrapped") from TypeError
    if kind == "from none":
        try:
            {}[value]
        except KeyError:
            raise LookupError("no context shown") from None
    if kind == "not an exception":
        raise NotAnException()
    if kind == "bad cause":
        raise ValueError("x") from 5
    if kind == "bad factory":
        raise BadFactory
    if kind == "in a loop":
        for k in range(value):
            if k == 3:
                raise IndexError(k)
    if kind == "reraise":
        try:
            [][value]
        except IndexError:
            raise
    return kind


def raise_and_describe(kind, value):
    try:
        raiser(kind, value)
    except BaseException as error:
        return (type(error).__name__, str(error), type(error.__cause__).__name__,
                type(error.__context__).__name__, error.__suppress_context__)
    return None


@pytest.mark.parametrize("kind", ["instance", "class", "from", "from class", "from none",
                                  "not an exception", "bad cause", "bad factory", "in a loop",
                                  "reraise", "none"])
def test_raise(kind):
    check(raiser, kind, 7, calls=2)
    check(raise_and_describe, kind, 7, calls=2)
    w = check(raiser, kind, 7, calls=2)
    if kind != "reraise":  # only the bare raise is left to the interpreter
        assert not w.stats["unsupported"]


def raise_given(exc, cause):
    raise exc from cause


def test_raise_leaks_no_reference():
    import sys
    exc, cause = ValueError("kept"), KeyError("cause")
    w = cpjit.jit(fresh(raise_given), warmup=0)

    def rounds(n):
        for _ in range(n):
            try:
                w(exc, cause)
            except ValueError:
                pass
        exc.__traceback__ = None
        return sys.getrefcount(exc), sys.getrefcount(cause)

    rounds(3)
    assert rounds(100) == rounds(3)
    assert w.compiled and not w.stats["unsupported"]
