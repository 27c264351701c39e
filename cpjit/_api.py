"""The public API: @jit, and the compile step the C wrapper calls when a function is warm."""

from __future__ import annotations

import dataclasses
import functools
import os
import types

from . import _runtime, _versions, feedback, pipeline, stencil_table, translate

DEFAULT_WARMUP = 8  # calls in the interpreter before compiling a function without loops
FAILING_EXITS = 8  # exits through one stub that make its instruction compile generically
MAX_GENERATIONS = 6  # compilations of one function (first, profile, exit storms)
PROFILE_CALLS = 4  # calls a profile may take while some of its sites have not run


# The code objects compiled with the function whose code holds them as
# constants: comprehensions, which it calls as functions (their machine code
# is attached to the code object, and calls from machine code run it).
COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>"})


class JitError(Exception):
    """A function cpjit cannot compile, with strict=True (the message says why)."""


def disabled() -> bool:
    return os.environ.get("CPJIT_DISABLE", "") not in ("", "0")


def _has_loop(code: types.CodeType) -> bool:
    """Whether `code` loops: itself, or in a comprehension it runs (compiled with it)."""
    version = _versions.current
    if version is None:
        return False
    return any(name in version.BACKWARD_JUMPS for name in _opnames(code)) \
        or any(isinstance(const, types.CodeType) and const.co_name in COMPREHENSIONS
               and _has_loop(const) for const in code.co_consts)


def _opnames(code: types.CodeType):
    import dis
    for instruction in dis.get_instructions(code):
        yield instruction.opname


def _describe(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _check_function(func) -> None:
    if isinstance(func, types.FunctionType):
        return
    if isinstance(func, type):
        raise TypeError(f"cpjit.jit() expects a Python function, got the class {func.__name__} "
                        "(decorate its methods instead)")
    if isinstance(func, (types.BuiltinFunctionType, types.BuiltinMethodType,
                         types.MethodDescriptorType, types.WrapperDescriptorType,
                         types.MethodWrapperType)):
        raise TypeError(f"cpjit.jit() expects a Python function, got the built-in "
                        f"{_describe(func)} (it has no bytecode to compile)")
    if isinstance(func, types.MethodType):
        raise TypeError(f"cpjit.jit() expects a Python function, got the bound method "
                        f"{_describe(func)} (decorate the function in the class body)")
    if callable(func):
        raise TypeError(f"cpjit.jit() expects a Python function, got a callable "
                        f"{type(func).__name__} object (it has no bytecode of its own)")
    raise TypeError(f"cpjit.jit() expects a Python function, got {type(func).__name__}")


def jit(func=None, /, *, strict: bool = False, warmup: int | None = None, dump: bool = False):
    """Compile `func` to machine code after a short warm-up in the interpreter.

    Use as @jit or @jit(strict=..., warmup=..., dump=...).  A function with a
    loop is compiled at its first call (one call can run long); others after
    `warmup` calls in the interpreter (default 8).  With strict=True, a function
    that would run (partly) in the interpreter raises JitError instead.
    dump=True prints the compilation (see cpjit.dump).
    """
    if func is None:
        return functools.partial(jit, strict=strict, warmup=warmup, dump=dump)
    if isinstance(func, _runtime.JitFunction):
        return func
    if isinstance(func, (staticmethod, classmethod)):
        return type(func)(jit(func.__func__, strict=strict, warmup=warmup, dump=dump))
    _check_function(func)
    if warmup is not None and (not isinstance(warmup, int) or isinstance(warmup, bool)
                               or warmup < 0):
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    compile_at = (warmup if warmup is not None else 0 if _has_loop(func.__code__)
                  else DEFAULT_WARMUP) + 1
    compiler = functools.partial(_compile, strict=strict, dump=dump)
    wrapper = _runtime.JitFunction(func, compiler, compile_at, strict)
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(wrapper, name, getattr(func, name))
    wrapper.__dict__.update(func.__dict__)
    if disabled():
        wrapper._fallback("disabled by CPJIT_DISABLE=1")
    elif _versions.UNSUPPORTED and not strict:
        wrapper._fallback(_versions.UNSUPPORTED)
    elif strict:
        _check_strict(func)
    return wrapper


def _check_strict(func) -> None:
    """strict=True: refuse at decoration what could only run in the interpreter."""
    if _versions.UNSUPPORTED:
        raise JitError(f"{_describe(func)}: {_versions.UNSUPPORTED}")
    try:
        trace = translate.translate(func.__code__)
    except translate.Unsupported as error:
        raise JitError(f"{_describe(func)}: {error}") from None
    except stencil_table.StencilTableMissing as error:
        raise JitError(f"{_describe(func)}: {error}") from None
    if trace.unsupported:
        raise JitError(_unsupported_message(func, trace))


def _unsupported_message(func, trace) -> str:
    listed = ", ".join(f"{i.name} (line {i.line}, offset {2 * i.offset})"
                       for i in trace.unsupported)
    return f"{_describe(func)}: instructions cpjit does not compile: {listed}"


def _compile(wrapper, *, strict: bool, dump: bool) -> None:
    """Called by the wrapper when it is time to compile: installs machine code,
    or a fallback (raising JitError instead when strict).  Called again when
    the code's profile is ready or its side exits pile up."""
    func = wrapper.__wrapped__
    previous = wrapper._info if wrapper.compiled else None
    options = {}
    if isinstance(previous, pipeline.CompileRecord) and previous.emitted is not None:
        options = _recompilation(wrapper, previous)
        if options is None:
            return
    keep = dump or bool(os.environ.get("CPJIT_DUMP"))
    try:
        record = pipeline.compile_code(func.__code__, _describe(func), keep=keep,
                                       globals_=func.__globals__, **options)
    except translate.Unsupported as error:
        return _fail(wrapper, strict, str(error), None)
    except stencil_table.StencilTableMissing as error:
        return _fail(wrapper, strict, str(error), None)
    except pipeline.PassError as error:
        return _fail(wrapper, strict, f"internal error: {error}", None)
    if strict and record.trace.unsupported:
        return _fail(wrapper, strict, _unsupported_message(func, record.trace), record)
    if previous is not None and options:
        record.generation = previous.generation + 1
    record.nested = _compile_nested(func.__code__, _describe(func), func.__globals__,
                                    previous.nested if previous is not None else [],
                                    options.get("profile", True), keep)
    if any(n.record.profile for n in record.nested if n.record is not None):
        record.profile = True  # (the comprehensions' profiles are read at the recompile)
    # A profiling compilation is compiled again at the next call, with the profile.
    wrapper._install(record.emitted.code, record, 1 if record.profile else 0)
    if os.environ.get("CPJIT_PERF_MAP", "") not in ("", "0"):
        from . import dump as _dump_module
        _dump_module.write_perf_map(wrapper, record)
    if keep:
        from . import dump as _dump
        _dump.emit_dump(wrapper, record, force=dump)


def _recompilation(wrapper, previous: pipeline.CompileRecord) -> dict | None:
    """Options for compiling a running function again, or None to keep its code:
    the profile it recorded becomes feedback, and instructions whose side
    exits keep being taken are compiled without speculation."""
    code = wrapper._code
    if previous.profile and previous.profiled_calls + 1 < PROFILE_CALLS \
            and _unrun_profile_sites(previous, code):
        # Code that has not run yet (a loop the first call skipped) would be
        # compiled without feedback: profile one more call.
        previous.profiled_calls += 1
        wrapper._install(code, previous, 1)
        return None
    failing = _failing(previous, code)
    known = previous.feedback.no_speculation if previous.feedback else frozenset()
    if (not previous.profile and not failing - known and not _nested_failing(previous)) \
            or previous.generation >= MAX_GENERATIONS:
        code.quiet_exits()  # nothing a new compilation would do better
        return None
    return {"feedback": _learned(previous, code, failing), "profile": False}


def _nested_failing(previous: pipeline.CompileRecord) -> bool:
    """Whether the side exits of some comprehension compiled with `previous`
    kept being taken at an instruction it still speculates on (its storm
    makes the code calling it ask for the recompilation: csrc/entry.c)."""
    for nested in previous.nested:
        record = nested.record
        if record is not None:
            known = record.feedback.no_speculation if record.feedback else frozenset()
            if _failing(record, record.emitted.code) - known:
                return True
    return False


def _failing(previous: pipeline.CompileRecord, code) -> set[int]:
    """The instructions whose side exits in `code` (the machine code of
    `previous`) kept being taken."""
    starts = {ins.start: ins.offset for ins in previous.trace.instructions}
    return {starts.get(resume, resume) for resume, taken in
            previous.emitted.exit_counts(code).items() if taken >= FAILING_EXITS}


def _learned(previous: pipeline.CompileRecord, code, failing: set[int]) -> feedback.Feedback:
    """The feedback of a new compilation of `previous`'s code: tier 1's, the
    profile `code` recorded (if it did), what `previous` knew, and `failing`
    (_failing), the instructions not to speculate on any more."""
    trace = previous.trace
    learned = feedback.from_tier1(trace.code, trace.instructions)
    if previous.profile:
        learned = feedback.merged(learned, feedback.from_profile(trace,
                                                                 previous.emitted.cache_words(code)))
    if previous.feedback is not None:
        learned = feedback.merged(learned, previous.feedback)
    known = previous.feedback.no_speculation if previous.feedback else frozenset()
    learned.no_speculation = known | failing
    return learned


@dataclasses.dataclass
class NestedCode:
    """A comprehension compiled with its function: its compilation, or why it
    runs in the interpreter."""

    code: types.CodeType
    qualname: str
    record: pipeline.CompileRecord | None
    reason: str | None = None


def _compile_nested(code: types.CodeType, qualname: str, globals_: dict,
                    previous: list[NestedCode], profile: bool, keep: bool) -> list[NestedCode]:
    """Compile the comprehensions among `code`'s constants (and theirs) and
    attach their machine code to their code objects: a call from machine
    code runs it (the comprehension a jitted function makes and calls at
    once; from the interpreter it runs there, as before).  `previous`, the
    last compilation's, gives each its feedback, as a recompilation of a
    function has.  One that cannot be compiled runs in the interpreter; the
    dump says why."""
    last = {id(n.code): n for n in previous}  # (by identity: equal code objects compare equal)
    nested = []
    for const in code.co_consts:
        if not isinstance(const, types.CodeType) or const.co_name not in COMPREHENSIONS:
            continue
        name = f"{qualname}.{const.co_name}"
        options = {"profile": profile}
        before = last.get(id(const))
        if before is not None and before.record is not None:
            last_code = before.record.emitted.code
            options["feedback"] = _learned(before.record, last_code,
                                           _failing(before.record, last_code))
        try:
            record = pipeline.compile_code(const, name, keep=keep, globals_=globals_, **options)
            _runtime.attach_code(record.emitted.code)
        except (translate.Unsupported, pipeline.PassError, MemoryError) as error:
            nested.append(NestedCode(const, name, None, str(error) or type(error).__name__))
            continue
        nested.append(NestedCode(const, name, record))
        nested += _compile_nested(const, name, globals_, previous, profile, keep)
    return nested


def _unrun_profile_sites(record: pipeline.CompileRecord, code) -> bool:
    """Whether some _PROFILE uop of a profiling compilation has recorded nothing."""
    words = record.emitted.cache_words(code)
    return any(word.index < len(words) and words[word.index] == 0
               for _, _, word in record.trace.profile_sites)


def _fail(wrapper, strict: bool, reason: str, record) -> None:
    wrapper._fallback(reason, record)
    if strict:
        raise JitError(f"{_describe(wrapper.__wrapped__)}: {reason}")


def _stats(wrapper) -> dict:
    stats = {
        "compiled": wrapper.compiled,
        "calls": wrapper._calls,
        "fallback_reason": wrapper.fallback_reason,
        "uops": 0, "code_bytes": 0, "compile_time": 0.0, "pass_times": {},
        "side_exits": {}, "unsupported": [],
    }
    record = wrapper._info
    if isinstance(record, pipeline.CompileRecord):
        stats.update(record.stats(wrapper._code))
    from .dump import perf_regions
    stats["regions"] = perf_regions(wrapper)
    return stats


def _dump(wrapper, **options) -> str:
    from . import dump as _dump_module
    return _dump_module.dump_text(wrapper, **options)


_runtime.set_python_hooks(_stats, _dump)
