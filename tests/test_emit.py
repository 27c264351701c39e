"""The emitter: the runtime's hole resolver (csrc/resolve.c) writes exactly the
patches the Python reference (emit._patch_all, which the dumps explain) does,
for functions that use every kind of hole."""

import json
import textwrap

import pytest
from differential import check, fresh

import cpjit
from cpjit import emit
from cpjit._stencils import HoleValue, Reloc


def arithmetic(xs, scale):
    total = 0.0
    count = 0
    for x in xs:
        total += x * scale ** 0.5
        count += 1
    return total, count


def calls_and_attributes(items):
    out = []
    for item in items:
        out.append(len(item.split(",")) + item.count("a"))
    return out


class Point:
    def __init__(self, x):
        self.x = x

    def moved(self, by):
        return Point(self.x + by)


def methods(points):
    return [p.moved(1).x for p in points]


CASES = [(arithmetic, ([1.0, 2.5, 4.0], 2.0)), (calls_and_attributes, (["a,b", "aa"],)),
         (methods, ([Point(1), Point(2)],)), (textwrap.dedent, ("  a\n  b\n",)),
         (json.decoder.JSONDecoder().raw_decode.__func__,
          (json.decoder.JSONDecoder(), '{"a": [1, 2.5, "x"]}'))]


@pytest.mark.parametrize("func,args", CASES, ids=lambda c: getattr(c, "__qualname__", ""))
def test_runtime_resolver_matches_the_python_reference(func, args):
    wrapper = cpjit.jit(fresh(func), warmup=0)
    for _ in range(3):
        wrapper(*args)
    assert wrapper.compiled, wrapper.fallback_reason
    emitted = wrapper._info.emitted
    reference = b"".join(emit.PATCH.pack(r.offset, emit.KIND[r.reloc], r.base, r.value)
                         for r in emitted.patches)
    assert emitted.patch_bytes == reference
    kinds = {r.hole for r in emitted.patches}
    assert {HoleValue.CONTINUE, HoleValue.EXIT_TARGET, HoleValue.ERROR_TARGET} <= kinds


def test_every_hole_kind_is_covered_by_the_cases():
    seen = set()
    for func, args in CASES:
        wrapper = cpjit.jit(fresh(func), warmup=0)
        for _ in range(3):
            wrapper(*args)
        seen |= {(r.hole, r.reloc) for r in wrapper._info.emitted.patches}
    holes = {hole for hole, _ in seen}
    assert {HoleValue.JUMP_TARGET, HoleValue.OPARG, HoleValue.OPERAND0, HoleValue.OPERAND1,
            HoleValue.INSTR, HoleValue.SYMBOL, HoleValue.OPARG_SLOT,
            HoleValue.OPERAND0_SLOT, HoleValue.OPERAND1_SLOT} <= holes
    assert {Reloc.ABS64, Reloc.REL32, Reloc.GOTREL32, Reloc.ABS32S} <= {r for _, r in seen}


def _traced(*uops):
    """A translated trace of a small function, its uops replaced by `uops`."""
    from cpjit import translate

    def small(x):
        return x

    trace = translate.translate(small.__code__)
    trace.uops[:] = list(uops)
    return trace


def _returning():
    from cpjit.ir import UOp
    return [UOp("_LOAD_FAST", 0, offset=1, exit_to=1), UOp("_RETURN_VALUE", offset=2, exit_to=2)]


@pytest.mark.parametrize("bad,message", [
    (lambda U, Obj: [U("_JUMP", jump_to=999, offset=0, exit_to=0)],
     "needs a target"),  # a jump to an instruction with no label
    (lambda U, Obj: [U("_GUARD_TYPE", 1, Obj(int), offset=0, exit_to=-1)],
     "no resume offset"),  # a uop that can side-exit to nowhere
    (lambda U, Obj: [U("_NO_SUCH_UOP", offset=0, exit_to=0)], "no stencil"),
    # an oparg variant is placed for its oparg only, never by its name
    (lambda U, Obj: [U("_BUILD_TUPLE@2", 5, offset=0, exit_to=0)], "no stencil"),
    (lambda U, Obj: [U("_GUARD_TYPE", 1, Obj(int), offset=0, exit_to=0,
                       exit_steps=(("local", 0, "not a word"),))], "exit step"),
])
def test_emit_refuses_a_malformed_trace_with_a_clear_error(bad, message):
    """What a buggy pass could hand the emitter is refused before any memory
    is mapped (EmitError, which the API turns into a fallback), never patched
    into code."""
    from cpjit.ir import Obj, UOp
    trace = _traced(*bad(UOp, Obj), *_returning())
    with pytest.raises(emit.EmitError, match=message):
        emit.emit(trace)


@pytest.mark.parametrize("bad,message", [
    (lambda U: ("_LOAD_FAST", 0), "UOp"),  # not a UOp at all
    (lambda U: U("_LOAD_FAST", "0", offset=1, exit_to=1), "oparg"),
    (lambda U: U("_LOAD_FAST", 2**64, offset=1, exit_to=1), "oparg"),
    (lambda U: U("_LOAD_FAST", 0, offset=None, exit_to=1), "offset"),
])
def test_emit_reads_uop_fields_defensively(bad, message):
    """The runtime reads the uops' fields itself (csrc/layout.c): anything but
    a UOp with int fields where ints belong is refused, naming the field."""
    from cpjit.ir import UOp
    trace = _traced(bad(UOp), *_returning())
    with pytest.raises(emit.EmitError, match=message):
        emit.emit(trace)


def test_emit_refuses_code_that_runs_off_its_end():
    from cpjit.ir import UOp
    trace = _traced(UOp("_LOAD_FAST", 0, offset=1, exit_to=1))
    with pytest.raises(emit.EmitError, match="falls off the end"):
        emit.emit(trace)


def test_the_well_formed_version_of_those_traces_emits():
    """(So the refusals above are about what they change, not the harness.)"""
    trace = _traced(*_returning())
    assert emit.emit(trace).size > 0


# -- oparg variants (cpjit/_stencils.py VARIANT_OPARGS) --

def _f0(): return 0
def _f1(a): return a
def _f2(a, b): return a - b
def _f3(a, b, c): return a - b - c
def _f4(a, b, c, d): return a - b - c - d
def _f5(a, b, c, d, e): return a - b - c - d - e


def calls_0_to_5(x):
    return _f0(), _f1(x), _f2(x, 1), _f3(x, 1, 2), _f4(x, 1, 2, 3), _f5(x, 1, 2, 3, 4)


def methods_0_to_5(s):
    return (s.upper(), s.find("b"), s.find("b", 1), s.replace("a", "c", 1),
            "-".join([s, s, s, s]), s.count("a", 0, 9))


def builds_0_to_5(x):
    return ((), (x,), (x, 1), (x, 1, 2), (x, 1, 2, 3), (x, 1, 2, 3, 4),
            [], [x], [x, 1], [x, 1, 2], [x, 1, 2, 3], [x, 1, 2, 3, 4])


def unpacks_1_to_5(t1, t2, t3, t4, t5):
    (a,) = t1
    b, c = t2
    d, e, f = t3
    g, h, i, j = t4
    k, m, n, o, p = t5
    return a, b + c, d + e + f, g + h + i + j, k + m + n + o + p


def slices(xs, step):
    return xs[1:3], xs[::step], xs[1:-1:step]


def _placed(func, *args):
    """(stencil name, oparg) of each uop placement of `func` jitted at its first call."""
    wrapper = cpjit.jit(fresh(func), warmup=0)
    for _ in range(3):
        wrapper(*args)
    assert wrapper.compiled, wrapper.fallback_reason
    return [(p.stencil, p.uop.oparg) for p in wrapper._info.emitted.placements
            if p.kind == "uop"], wrapper


def _has_oparg_run(uop: str) -> bool:
    from cpjit import stencil_table
    spec = stencil_table.uops()[uop]
    return any(item.endswith("[oparg]") for item in spec.inputs + spec.outputs)


@pytest.mark.parametrize("func,args", [(calls_0_to_5, (10,)), (builds_0_to_5, (7,)),
                                       (methods_0_to_5, ("abcab",)),
                                       (unpacks_1_to_5, ((1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
                                                         (1, 2, 3, 4, 5))),
                                       (slices, ([1, 2, 3, 4], 2))],
                         ids=lambda c: getattr(c, "__name__", ""))
def test_uops_with_an_oparg_run_use_the_variant_for_opargs_0_to_3(func, args):
    """A uop with a run of `oparg` stack items (args[oparg]) is placed as its
    variant compiled for that oparg when there is one (0..3), else as its
    generic stencil; every other uop as its own stencil.  The patches the
    runtime writes for them are the Python reference's."""
    from cpjit._stencils import VARIANT_OPARGS, split_variant, variant_name
    placed, wrapper = _placed(func, *args)
    variants = 0
    for stencil, oparg in placed:
        uop, fixed = split_variant(stencil)
        if _has_oparg_run(uop) and oparg in VARIANT_OPARGS:
            assert stencil == variant_name(uop, oparg)
            variants += 1
        else:
            assert fixed is None, (stencil, oparg)
    assert variants >= 3
    emitted = wrapper._info.emitted
    reference = b"".join(emit.PATCH.pack(r.offset, emit.KIND[r.reloc], r.base, r.value)
                         for r in emitted.patches)
    assert emitted.patch_bytes == reference


def test_calls_and_builds_of_0_to_5_items_place_the_expected_stencils():
    calls, _ = _placed(calls_0_to_5, 10)
    assert [s for s, _ in calls if s.startswith("_CALL_FUNCTION")] == [
        "_CALL_FUNCTION@0", "_CALL_FUNCTION@1", "_CALL_FUNCTION@2", "_CALL_FUNCTION@3",
        "_CALL_FUNCTION", "_CALL_FUNCTION"]
    builds, _ = _placed(builds_0_to_5, 7)
    assert [s for s, _ in builds if s.startswith("_BUILD_LIST")] == [
        "_BUILD_LIST@0", "_BUILD_LIST@1", "_BUILD_LIST@2", "_BUILD_LIST@3",
        "_BUILD_LIST", "_BUILD_LIST"]


def test_variants_have_no_oparg_hole_and_the_same_exits():
    """A variant's oparg is compiled in (no oparg hole), and it leaves the
    same ways as its uop's generic stencil (analysis._side_exits reads the
    generic one; layout.c the placed one's)."""
    from cpjit import stencil_table
    from cpjit._stencils import VARIANT_OPARGS, split_variant, variant_name
    stencils = stencil_table.stencils()
    uops = [name for name in stencil_table.uops() if _has_oparg_run(name)]
    assert "_CALL_METHOD_DESCRIPTOR_FAST" in uops and "_BUILD_TUPLE" in uops
    exits = {HoleValue.EXIT_TARGET, HoleValue.EXIT_AFTER, HoleValue.ERROR_TARGET,
             HoleValue.JUMP_TARGET}
    for uop in uops:
        generic = stencils[uop]
        for oparg in VARIANT_OPARGS:
            variant = stencils[variant_name(uop, oparg)]
            holes = {h.value for h in variant.holes + variant.cold_holes}
            assert HoleValue.OPARG not in holes, variant.name
            assert holes & exits == {h.value for h in generic.holes + generic.cold_holes} & exits
    assert all(split_variant(name)[0] in stencil_table.uops() for name in stencils
               if split_variant(name)[1] is not None)


def test_the_runtime_refuses_malformed_variants():
    """register_stencils checks each (stencil, oparg, variant) triple; the
    registry is then empty until the next registration."""
    import struct
    from cpjit import _runtime
    emit._register()
    ids = emit._stencil_ids
    shim, load = ids["shim"], ids["_LOAD_FAST"]
    entries = [(name, b"\xc3", 0, b"", b"", 1, b"", b"") for name in emit._stencil_names]
    try:
        for triple, message in [((load, 0, load), "bad oparg variant"),
                                ((load, -1, shim), "bad oparg variant"),
                                ((load, 0, len(entries)), "bad oparg variant"),
                                ((load, 1 << 20, shim), "bad oparg variant")]:
            with pytest.raises(ValueError, match=message):
                _runtime.register_stencils(entries, b"", struct.pack("<3q", *triple), shim,
                                           ids["_EXIT_STUB"], ids["_ERROR_STUB"])
        with pytest.raises(ValueError, match="two variants"):
            _runtime.register_stencils(entries, b"", struct.pack("<6q", load, 0, shim, load, 0,
                                                                 ids["_ERROR_STUB"]),
                                       shim, ids["_EXIT_STUB"], ids["_ERROR_STUB"])
        with pytest.raises(ValueError, match="has variants"):
            _runtime.register_stencils(entries, b"", struct.pack("<6q", load, 0, shim, shim, 0,
                                                                 ids["_ERROR_STUB"]),
                                       shim, ids["_EXIT_STUB"], ids["_ERROR_STUB"])
        with pytest.raises(ValueError, match="bad oparg variants"):
            _runtime.register_stencils(entries, b"", b"\0" * 7, shim, ids["_EXIT_STUB"],
                                       ids["_ERROR_STUB"])
    finally:
        emit._registered_digest = None  # register the real table again
        emit._register()
    trace = _traced(*_returning())
    assert emit.emit(trace).size > 0


def builtins_and_ranges_0_to_5(x):
    return (max(x, 1), max(x, 1, 2), max(x, 1, 2, 3), max(x, 1, 2, 3, 4), min(x, 1, 2, 3, 4, 5),
            list(range(x)), list(range(1, x)), list(range(1, x, 2)), isinstance(x, int))


def strings_sets_and_maps(x):
    return (f"{x}", f"{x}-{x}", f"{x}-{x}-{x}", f"{x}{x}{x}{x}{x}", f"{x:>4}",
            {x}, {x, 1, 2, 3, 4}, {"a": x}, {"a": x, "b": 1, "c": 2, "d": 3, "e": 4})


def wrong_argument_counts(n):
    functions = (_f0, _f1, _f2, _f3, _f4, _f5)
    out = []
    for k, f in enumerate(functions):
        try:
            if n == 0:
                out.append(f())
            elif n == 1:
                out.append(f(k))
            elif n == 2:
                out.append(f(k, 1))
            elif n == 3:
                out.append(f(k, 1, 2))
            elif n == 4:
                out.append(f(k, 1, 2, 3))
            else:
                out.append(f(k, 1, 2, 3, 4))
        except TypeError as error:
            out.append(str(error))
    return out


def raises(kind):
    if kind == 0:
        raise ValueError("zero")
    if kind == 1:
        raise KeyError(kind) from None
    raise


@pytest.mark.parametrize("func,args", [
    (calls_0_to_5, (10,)), (calls_0_to_5, (2.5,)), (calls_0_to_5, ("x",)),
    (methods_0_to_5, ("abcab",)), (methods_0_to_5, ("",)), (builds_0_to_5, (7,)),
    (unpacks_1_to_5, ((1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5))),
    (unpacks_1_to_5, ([1], [1, 2], [1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5])),
    (unpacks_1_to_5, ((1,), (1, 2), (1, 2), (1, 2, 3, 4), (1, 2, 3, 4, 5))),  # too few
    (unpacks_1_to_5, ((1,), (1, 2), (1, 2, 3), (1, 2, 3, 4, 5), (1, 2, 3, 4, 5))),  # too many
    (slices, ([1, 2, 3, 4, 5], 2)), (slices, ((1, 2, 3), -1)), (slices, ("abcdef", 3)),
    (slices, ([1, 2], 0)),  # ValueError: slice step cannot be zero
    (builtins_and_ranges_0_to_5, (6,)), (builtins_and_ranges_0_to_5, (-1,)),
    (strings_sets_and_maps, (3,)), (strings_sets_and_maps, ("s",)),
    *[(wrong_argument_counts, (n,)) for n in range(6)],
    *[(raises, (kind,)) for kind in range(3)],
], ids=lambda c: getattr(c, "__name__", ""))
def test_oparg_variants_match_the_interpreter(func, args):
    """Calls, builds, unpacks, slices, raises of 0..5 items, jitted (variants
    for 0..3, the generic stencil above) and plain, on results, exceptions and
    tracebacks, several calls in a row."""
    check(func, *args, calls=3)
