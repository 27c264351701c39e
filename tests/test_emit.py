"""The emitter: the runtime's hole resolver (csrc/resolve.c) writes exactly the
patches the Python reference (emit._patch_all, which the dumps explain) does,
for functions that use every kind of hole."""

import json
import textwrap

import pytest
from differential import fresh

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
