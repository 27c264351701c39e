"""The stack walk (csrc/stackwalk.c, behind analysis.stack_depths, check_stack
and instruction_depths) against simple references written here: a plain
worklist over the uops' control flow with their stack effects from the uop
specs, the side-exit check spelled out uop by uop, and the interpreter's own
depth at each instruction worked out from the bytecode.  Real traces of many
functions (the kernels' and some of the stdlib's, as translated and after
every pass), then each way a trace can be broken, and input that is not a
trace at all."""

import ast
import colorsys
import difflib
import dis
import functools
import gc
import inspect
import json.decoder
import posixpath
import string
import sys
import textwrap
from pathlib import Path

import pytest

from cpjit import _runtime, analysis, pipeline, stencil_table, translate
from cpjit.analysis import AnalysisError
from cpjit.ir import LABEL, ExitStep, Instruction, Trace, UOp

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compile_time  # noqa: E402  (benchmarks/compile_time.py)


# ---- the references ----

def reference_depths(trace: Trace) -> list:
    """The depth before each uop (None: unreachable), from the uop specs:
    every edge followed until each reachable uop has its depth."""
    specs = stencil_table.uops()
    uops = trace.uops
    labels = {uop.oparg: i for i, uop in enumerate(uops) if uop.name == LABEL}
    depths = [None] * len(uops)
    todo = [(0, 0)] if uops else []
    while todo:
        index, depth = todo.pop()
        if index == len(uops):
            continue
        if depths[index] is not None:
            assert depths[index] == depth, f"uop {index}: {depths[index]} or {depth}"
            continue
        depths[index] = depth
        uop = uops[index]
        if uop.name == LABEL:
            todo.append((index + 1, depth))
            continue
        spec = specs[uop.name]
        after = depth - spec.pops(uop.oparg) + spec.pushes(uop.oparg)
        assert 0 <= depth - spec.pops(uop.oparg) and after <= trace.code.co_stacksize
        if spec.jumps:
            branch = after if spec.jump_pops is None else depth - spec.jump_pops
            todo.append((labels[uop.jump_to], branch))
        if "TERMINATES" not in spec.flags:
            todo.append((index + 1, after))
    return depths


def side_exits(name: str) -> tuple[bool, bool]:
    """Whether uop `name`'s stencil side-exits to redo its instruction, and after its effect."""
    stencil = stencil_table.stencils()[name]
    holes = {hole.value.value for hole in stencil.holes + stencil.cold_holes}
    return "exit_target" in holes, "exit_after" in holes


def reference_wrong_exit(trace: Trace, entry_depths: dict):
    """(index, resume, items) of the first side exit by index that hands the
    interpreter a stack it does not expect there, or None."""
    specs = stencil_table.uops()
    for index, (uop, depth) in enumerate(zip(trace.uops, reference_depths(trace))):
        if depth is None or uop.name == LABEL:
            continue
        after = depth - specs[uop.name].pops(uop.oparg) + specs[uop.name].pushes(uop.oparg)
        to_target, to_after = side_exits(uop.name)
        for exits, resume, items, steps in ((to_target, uop.exit_to, depth, uop.exit_steps),
                                            (to_after, uop.exit_after, after,
                                             uop.exit_after_steps)):
            items += sum(step.pushes for step in steps)
            if exits and resume in entry_depths and entry_depths[resume] != items:
                return index, resume, items
    return None


# (What 3.11's dis.stack_effect, made for the compiler's maximum, spreads over
# PRECALL and CALL: the interpreter's PRECALL leaves the stack alone.)
_NO_FALLTHROUGH = {"RETURN_VALUE", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD", "JUMP_BACKWARD",
                   "JUMP_BACKWARD_NO_INTERRUPT"}


def interpreter_depths(code) -> dict:
    """The interpreter's stack depth at the start of each instruction normal
    control flow reaches, by its offset in code units (an EXTENDED_ARG is
    an instruction of its own to dis: the start of the one it extends)."""
    instructions = list(dis.get_instructions(code))
    at = {ins.offset: i for i, ins in enumerate(instructions)}
    depths = {}
    todo = [(0, 0)]
    while todo:
        i, depth = todo.pop()
        ins = instructions[i]
        if ins.offset in depths:
            assert depths[ins.offset] == depth
            continue
        depths[ins.offset] = depth
        if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
            todo.append((at[ins.argval], depth + dis.stack_effect(ins.opcode, ins.arg, jump=True)))
        if ins.opname not in _NO_FALLTHROUGH:
            effect = dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT
                                      else None, jump=False)
            if ins.opname == "PRECALL":
                effect = 0
            elif ins.opname == "CALL":
                effect = -ins.arg - 1
            todo.append((i + 1, depth + effect))
    return {offset // 2: depth for offset, depth in depths.items()}


# ---- real traces ----

@functools.lru_cache(maxsize=None)
def compiled() -> tuple:
    """(label, function, record kept with every pass's trace) for the kernels'
    functions (warmed by a run) and some stdlib functions."""
    functions = list(compile_time.kernel_functions())
    for function, exercise in compile_time.stdlib_functions():
        for _ in range(20):
            exercise()
        functions.append((function.__qualname__, function))
    for module in (textwrap, difflib, string, json.decoder, ast, colorsys, posixpath):
        functions += [(f"{module.__name__}.{name}", value) for name, value in vars(module).items()
                      if inspect.isfunction(value) and value.__module__ == module.__name__]
    records = []
    for label, function in functions:
        try:
            records.append((label, function, pipeline.compile_code(
                function.__code__, label, globals_=function.__globals__, keep=True)))
        except translate.Unsupported:
            pass
    return tuple(records)


def test_depths_of_real_traces_after_every_pass():
    checked = 0
    for label, _, record in compiled():
        traces = [report.trace for report in record.reports if report.trace is not None]
        for trace in traces + [record.trace]:
            assert analysis.stack_depths(trace) == reference_depths(trace), label
            checked += 1
    assert len(compiled()) > 100 and checked > 300


def test_instruction_depths_are_the_interpreters():
    for label, function, record in compiled():
        translated = record.reports[0].trace
        depths = analysis.instruction_depths(translated)
        assert depths == record.trace.entry_depths and depths, label
        interpreter = interpreter_depths(function.__code__)
        assert depths == {start: interpreter[start] for start in depths}, label


def test_real_traces_side_exit_with_the_stack_the_interpreter_expects():
    exits = 0
    for label, _, record in compiled():
        trace = record.trace
        analysis.check_stack(trace, trace.entry_depths)
        assert reference_wrong_exit(trace, trace.entry_depths) is None, label
        exits += sum(any(side_exits(uop.name)) for uop in trace.uops if uop.name != LABEL)
    assert exits > 1000


def _expect_wrong_exit(trace: Trace, entry_depths: dict) -> None:
    index, resume, items = reference_wrong_exit(trace, entry_depths)
    message = (f"uop {index} {trace.uops[index].describe()} side-exits to @{2 * resume} with "
               f"{items} stack items; the interpreter expects {entry_depths[resume]}")
    with pytest.raises(AnalysisError) as raised:
        analysis.check_stack(trace, entry_depths)
    assert str(raised.value) == message


def test_a_wrong_interpreter_depth_is_found_at_the_first_exit_by_index():
    cases = 0
    for _, _, record in compiled():
        trace = record.trace
        resumes = sorted({resume for uop in trace.uops if uop.name != LABEL
                          for exits, resume in zip(side_exits(uop.name),
                                                   (uop.exit_to, uop.exit_after))
                          if exits and resume in trace.entry_depths})
        for resume in resumes[::5]:
            wrong = dict(trace.entry_depths)
            wrong[resume] += 1
            _expect_wrong_exit(trace, wrong)
            cases += 1
    assert cases > 100


def test_exit_steps_that_box_an_item_count_and_syncs_do_not():
    cases = 0
    for _, _, record in compiled():
        trace = record.trace.snapshot()
        for index, uop in enumerate(trace.uops):
            if uop.name != LABEL and side_exits(uop.name)[0] \
                    and uop.exit_to in trace.entry_depths:
                break
        else:
            continue
        for action in ("sync_i64", "sync_f64"):
            trace.uops[index] = uop.replace(exit_steps=uop.exit_steps + (ExitStep(action, 0),))
            analysis.check_stack(trace, trace.entry_depths)
        for action in ("box_i64", "box_f64", "local", "const"):
            trace.uops[index] = uop.replace(exit_steps=uop.exit_steps + (ExitStep(action, 0),))
            assert reference_wrong_exit(trace, trace.entry_depths)[0] == index
            _expect_wrong_exit(trace, trace.entry_depths)
        cases += 1
    assert cases > 30


# ---- broken traces ----

def make_trace(*uops: UOp, stacksize: int = 4, instructions=()) -> Trace:
    def function():
        pass
    return Trace(function.__code__.replace(co_stacksize=stacksize), list(instructions), list(uops))


def walk_error(trace: Trace, entry_depths=None) -> str:
    with pytest.raises(AnalysisError) as raised:
        analysis.check_stack(trace, entry_depths)
    return str(raised.value)


def load(local: int = 0, **fields) -> UOp:
    return UOp("_LOAD_FAST", oparg=local, **fields)


def test_a_branch_with_its_own_stack_effect_and_unreachable_uops():
    trace = make_trace(
        load(),                                     # 0
        UOp(LABEL, oparg=1),                        # 1  loop head
        UOp("_FOR_ITER", jump_to=9),                # 2  exhausted: pops the iterator
        UOp("_POP_TOP"),                            # 3
        UOp("_JUMP", jump_to=1),                    # 4
        UOp("_POP_TOP"),                            # 5  unreachable
        UOp(LABEL, oparg=9),                        # 6
        UOp("_LOAD_CONST"),                         # 7
        UOp("_RETURN_VALUE"),                       # 8
        UOp("_LOAD_CONST"))                         # 9  unreachable
    assert analysis.stack_depths(trace) == [0, 1, 1, 2, 1, None, 0, 0, 1, None]
    assert reference_depths(trace) == analysis.stack_depths(trace)


def test_an_empty_trace():
    trace = make_trace()
    assert analysis.stack_depths(trace) == []
    assert analysis.instruction_depths(trace) == {}
    analysis.check_stack(trace, {})


def test_a_uop_that_pops_more_than_there_is():
    trace = make_trace(load(), UOp("_POP_TOP"), UOp("_POP_TOP", comment="one too many"))
    assert walk_error(trace) == "uop 2 _POP_TOP # one too many pops 1 of 0 items"


def test_a_stack_that_outgrows_the_frame():
    trace = make_trace(load(), load(1), stacksize=1)
    assert walk_error(trace) == "uop 1 _LOAD_FAST oparg=1 leaves 2 items (the frame has room for 1)"


def test_depths_that_disagree_at_a_label_by_falling_through():
    trace = make_trace(load(), UOp("_POP_JUMP_IF_FALSE", jump_to=10), load(),
                       UOp(LABEL, oparg=10), UOp("_RETURN_VALUE"))
    assert walk_error(trace) == "stack depth 1 or 0 at uop 3"


def test_depths_that_disagree_at_a_label_by_a_jump():
    trace = make_trace(load(), UOp(LABEL, oparg=5), load(), UOp("_JUMP", jump_to=5))
    assert walk_error(trace) == "stack depth 2 or 1 at uop 1"


def test_a_jump_to_a_missing_label():
    trace = make_trace(load(), UOp(LABEL, oparg=5), UOp("_JUMP", jump_to=6))
    assert walk_error(trace) == "uop 2 _JUMP -> @12: no label"


def test_the_last_label_of_an_offset_is_the_one_jumped_to():
    trace = make_trace(UOp("_JUMP", jump_to=3), UOp(LABEL, oparg=3), load(), UOp(LABEL, oparg=3),
                       UOp("_LOAD_CONST"), UOp("_RETURN_VALUE"))
    assert analysis.stack_depths(trace) == [0, None, None, 0, 0, 1]


def test_a_side_exit_with_the_wrong_stack():
    # _LOAD_FAST exits before its effect, _BINARY_OP after it (with its result).
    assert side_exits("_LOAD_FAST") == (True, False) and side_exits("_BINARY_OP") == (False, True)
    trace = make_trace(load(exit_to=0), load(exit_to=1), UOp("_BINARY_OP", exit_after=2),
                       UOp("_RETURN_VALUE"))
    analysis.check_stack(trace, {0: 0, 1: 1, 2: 1})
    analysis.check_stack(trace, {})  # (resume offsets it does not know are not checked)
    assert walk_error(trace, {0: 0, 1: 1, 2: 2}) == (
        "uop 2 _BINARY_OP side-exits to @4 with 1 stack items; the interpreter expects 2")
    trace.uops[1] = load(exit_to=1, exit_steps=(ExitStep("box_f64", 0, 3),))
    assert walk_error(trace, {0: 0, 1: 1, 2: 1}) == (
        "uop 1 _LOAD_FAST side-exits to @2 with 2 stack items; the interpreter expects 1")
    assert analysis.stack_depths(trace) == [0, 1, 2, 1]  # (stack_depths checks no exits)


def test_the_first_wrong_side_exit_by_index_is_reported_after_the_walk():
    trace = make_trace(
        UOp("_JUMP", jump_to=7),                    # 0
        UOp(LABEL, oparg=5),                        # 1  walked last
        load(exit_to=5),                            # 2  wrong
        UOp("_POP_TOP"),                            # 3
        UOp(LABEL, oparg=7),                        # 4  walked second
        load(exit_to=7),                            # 5  wrong too
        UOp("_POP_TOP"),                            # 6
        UOp("_JUMP", jump_to=5))                    # 7
    assert walk_error(trace, {5: 1, 7: 1}) == (
        "uop 2 _LOAD_FAST side-exits to @10 with 0 stack items; the interpreter expects 1")
    trace.uops.insert(4, UOp("_POP_TOP"))  # the walk's own error comes first
    assert walk_error(trace, {5: 1, 7: 1}) == "uop 4 _POP_TOP pops 1 of 0 items"


def test_instruction_depths_take_each_instructions_first_reachable_uop():
    instructions = [Instruction(offset, offset - 1, "NOP", None, offset + 1, None)
                    for offset in (4, 1, 2, 3)]
    trace = make_trace(load(offset=1), load(offset=2), UOp("_POP_TOP", offset=3),
                       UOp("_POP_TOP", offset=2), load(offset=7), UOp("_LOAD_CONST", offset=1),
                       UOp("_RETURN_VALUE", offset=3), load(offset=4), instructions=instructions)
    assert analysis.stack_depths(trace) == [0, 1, 2, 1, 0, 1, 2, None]
    assert list(analysis.instruction_depths(trace).items()) == [(0, 0), (1, 1), (2, 2)]
    trace.instructions.append(Instruction(1, 5, "NOP", None, 2, None))  # (the last one counts)
    assert list(analysis.instruction_depths(trace).items()) == [(5, 0), (1, 1), (2, 2)]


# ---- what is not a trace ----

class OtherUOp(UOp):
    __slots__ = ()


@pytest.mark.parametrize("uop, message", [
    (object(), "uop 1 is a object, not a UOp"),
    (OtherUOp("_POP_TOP"), "uop 1 is a OtherUOp, not a UOp"),
    (UOp(5), "uop 1: its name must be a str, not int"),
    (UOp(LABEL, oparg="3"), "uop 1: oparg must be an int, not str"),
    (UOp("_JUMP", jump_to=None), "uop 1: jump_to must be an int, not NoneType"),
])
def test_a_uop_that_is_not_one(uop, message):
    trace = make_trace(load(), uop)
    with pytest.raises(TypeError, match=message):
        analysis.stack_depths(trace)


def test_an_unset_field():
    label = UOp(LABEL)
    del label.oparg
    with pytest.raises(TypeError, match="uop 0 has no oparg"):
        analysis.stack_depths(make_trace(label))


def test_exit_steps_that_are_not_exit_steps():
    with pytest.raises(TypeError, match="uop 0: exit_steps must be a tuple, not list"):
        analysis.check_stack(make_trace(load(exit_steps=[])), {})
    with pytest.raises(TypeError, match="uop 0: exit step 1 is not an exit step"):
        analysis.check_stack(make_trace(load(exit_steps=(ExitStep("local", 0), "box_i64"))), {})
    with pytest.raises(TypeError, match="the entry depth at 0 must be an int, not str"):
        analysis.check_stack(make_trace(load(exit_to=0)), {0: "0"})


def test_a_uop_the_stencil_table_does_not_have():
    with pytest.raises(KeyError, match="_NO_SUCH_UOP"):
        analysis.stack_depths(make_trace(UOp("_NO_SUCH_UOP")))


def walk(uops=(), oparg_free=None, steps=None, stacksize=4, entry_depths=None,
         pushing=frozenset(), error=AnalysisError, instructions=None):
    """_runtime.stack_walk itself (analysis's steps unless given)."""
    return _runtime.stack_walk(
        tuple(uops) if isinstance(uops, list) else uops, UOp, LABEL,
        analysis._OPARG_FREE_STEPS if oparg_free is None else oparg_free,
        analysis._STEPS if steps is None else steps, stacksize, entry_depths, pushing, error,
        instructions)


@pytest.mark.parametrize("arguments, error, message", [
    ({"uops": [load()]}, None, None),
    ({"uops": [load()], "entry_depths": {}, "instructions": []}, None, None),
    ({"uops": "not a tuple"}, TypeError, "must be tuple"),
    ({"steps": []}, TypeError, "must be dict"),
    ({"entry_depths": []}, TypeError, "entry_depths must be a dict or None"),
    ({"pushing": ["box_i64"]}, TypeError, "pushing_actions must be a set"),
    ({"error": "AnalysisError"}, TypeError, "error must be an exception class"),
    ({"stacksize": -1}, ValueError, "bad stacksize"),
    ({"instructions": ()}, TypeError, "instructions must be a list or None"),
    ({"uops": [load()], "instructions": [(1,)]}, TypeError, "instruction 0 is not an Instruction"),
    ({"oparg_free": {"_POP_TOP": (1, 0)}}, TypeError, "must be a tuple of 4 ints, not tuple"),
    ({"oparg_free": {"_POP_TOP": [1, 0, 1, 0]}}, TypeError, "must be a tuple of 4 ints, not list"),
    ({"oparg_free": {"_POP_TOP": (1, 0, 1, "0")}}, TypeError, "must be ints, not str"),
    ({"oparg_free": {"_POP_TOP": (-1, 0, 1, 0)}}, ValueError, "step 0 of uop _POP_TOP out of range"),
    ({"oparg_free": {"_POP_TOP": (1, 2**70, 1, 0)}}, ValueError, "step 1 of uop _POP_TOP out"),
    ({"oparg_free": {"_POP_TOP": (1, 0, 32, 0)}}, ValueError, "step 2 of uop _POP_TOP out"),
    ({"oparg_free": {"_POP_TOP": None}, "steps": {}}, KeyError, "_POP_TOP"),
])
def test_arguments_that_are_not_what_the_walk_takes(arguments, error, message):
    arguments.setdefault("uops", [UOp("_POP_TOP")])
    if error is None:
        assert walk(**arguments) == ({} if "instructions" in arguments else [0])
        return
    with pytest.raises(error, match=message):
        walk(**arguments)


def test_a_uop_type_whose_fields_are_not_slots():
    with pytest.raises(TypeError, match="Instruction.name is not an object slot of its own"):
        _runtime.stack_walk((load(),), Instruction, LABEL, {}, {}, 4, None, frozenset(),
                            AnalysisError)


def test_steps_are_asked_through_the_mapping_protocol_once_a_walk():
    asked = []

    class Asking(dict):
        def __missing__(self, key):
            asked.append(key)
            known = self[key] = analysis._OPARG_FREE_STEPS[key] if isinstance(key, str) \
                else analysis._STEPS[key]
            return known

    pair = UOp("_BUILD_TUPLE", oparg=2)
    uops = [load(), load(1), pair, load(), pair, load(1), pair, load(),
            UOp("_BUILD_LIST", oparg=2), UOp("_POP_TOP")]
    oparg_free, steps = Asking(), Asking()
    assert walk(uops, oparg_free, steps) == [0, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert asked == ["_LOAD_FAST", "_BUILD_TUPLE", ("_BUILD_TUPLE", 2), "_BUILD_LIST",
                     ("_BUILD_LIST", 2), "_POP_TOP"]
    assert oparg_free["_BUILD_TUPLE"] is None
    del asked[:]
    walk(uops, oparg_free, steps)
    assert asked == []


def test_no_references_are_lost_or_kept():
    trace = max((record.trace for _, _, record in compiled()),
                key=lambda trace: sum(len(uop.exit_steps) for uop in trace.uops))
    held = [trace.uops[0].name, UOp, LABEL, AnalysisError, analysis._STEPS,
            *{uop.exit_steps for uop in trace.uops if uop.exit_steps},
            *{step.action for uop in trace.uops for step in uop.exit_steps},
            *(steps for steps in analysis._OPARG_FREE_STEPS.values() if steps is not None),
            *analysis._STEPS.values()]
    assert len(held) > 20
    resume = next(uop.exit_to for uop in trace.uops if uop.exit_steps)
    wrong = {**trace.entry_depths, resume: trace.entry_depths[resume] + 1}
    broken = make_trace(load(), UOp("_POP_TOP"), UOp("_POP_TOP"))

    def walks():
        analysis.stack_depths(trace)
        analysis.instruction_depths(trace)
        analysis.check_stack(trace, trace.entry_depths)
        for args in ((trace, wrong), (broken,)):
            with pytest.raises(AnalysisError):
                analysis.check_stack(*args)
        with pytest.raises(TypeError):
            analysis.check_stack(make_trace(load(exit_steps=(ExitStep("local", 0), 1))), {})

    walks()
    gc.collect()
    before = [sys.getrefcount(value) for value in held]
    for _ in range(100):
        walks()
    gc.collect()
    assert [sys.getrefcount(value) for value in held] == before
