"""The compiler as a named list of passes: translate, optimize..., emit.

Each pass is timed and reports what it changed; with `keep=True` the trace
after every pass is kept for the dump.  An error names the pass it failed in.
"""

from __future__ import annotations

import dataclasses
import time
import types
from typing import Callable

from . import emit as _emit
from . import feedback as _feedback
from . import optimize, translate
from .ir import Trace


class PassError(Exception):
    """An unexpected error inside a pass (a cpjit bug): says which pass."""


@dataclasses.dataclass
class PassReport:
    name: str
    seconds: float
    changes: list[str]
    trace: Trace | None  # the trace after the pass (when kept)


@dataclasses.dataclass
class CompileRecord:
    """What compiling one function did: per-pass reports, the layout, the timings."""

    qualname: str
    code: types.CodeType
    reports: list[PassReport] = dataclasses.field(default_factory=list)
    trace: Trace | None = None
    emitted: _emit.Emitted | None = None
    fallback_reason: str | None = None
    feedback: _feedback.Feedback | None = None
    globals: dict | None = None  # the function's globals, as compiled
    profile: bool = False  # the code records a type profile
    profiled_calls: int = 0  # calls of the profiling code waited for so far
    generation: int = 1  # how many times the function was compiled
    # Its comprehensions, compiled with it and attached to their code objects
    # (cpjit/_api.py NestedCode).
    nested: list = dataclasses.field(default_factory=list)

    def options(self) -> dict:
        """compile_code() keyword arguments that compile the same code the same way."""
        return {"globals_": self.globals, "feedback": self.feedback, "profile": self.profile}

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.reports)

    @property
    def uop_count(self) -> int:
        from .ir import LABEL
        return 0 if self.trace is None else sum(u.name != LABEL for u in self.trace.uops)

    def stats(self, code) -> dict:
        exits = {}
        if self.emitted is not None and code is not None and code is self.emitted.code:
            exits = {2 * resume: n for resume, n in self.emitted.exit_counts(code).items()}
        return {
            "uops": self.uop_count,
            "code_bytes": self.emitted.size if self.emitted else 0,
            "compile_time": self.seconds,
            "pass_times": {r.name: r.seconds for r in self.reports},
            "side_exits": exits,
            "unsupported": [] if self.trace is None else
                           [(2 * i.offset, i.name, i.line) for i in self.trace.unsupported],
        }


Pass = Callable[[Trace], list[str]]


def compile_code(code: types.CodeType, qualname: str, *, keep: bool = False,
                 globals_: dict | None = None, feedback: _feedback.Feedback | None = None,
                 profile: bool | None = None) -> CompileRecord:
    """Run every pass on `code` (with the function's globals, for what
    builtins calls return).  Feedback defaults to what tier 1 recorded; with
    `profile` (the default) the code records a type profile where the feedback
    says nothing, for the next compilation.  Raises translate.Unsupported (a fallback
    reason) or PassError (a bug, naming the pass)."""
    record = CompileRecord(qualname, code, globals=globals_)

    def run(name: str, function, *args):
        started = time.perf_counter()
        try:
            result = function(*args)
        except translate.Unsupported:
            raise
        except Exception as error:
            raise PassError(f"pass {name} failed on {qualname}: "
                            f"{type(error).__name__}: {error}") from error
        return result, time.perf_counter() - started

    trace, seconds = run("translate", translate.translate, code)
    record.trace = trace
    record.reports.append(PassReport("translate", seconds, [],
                                     trace.snapshot() if keep else None))
    if feedback is None:
        feedback, seconds = run("feedback", _feedback.from_tier1, code, trace.instructions)
        record.reports.append(PassReport("feedback", seconds, [], None))
    record.feedback = feedback
    if profile is None:
        profile = True  # where the feedback says nothing, record what the code meets
    context = optimize.Context(feedback, globals_, profile)
    for name, optimization in optimize.PASSES:
        changes, seconds = run(name, optimization, trace, context)
        record.reports.append(PassReport(name, seconds, changes,
                                         trace.snapshot() if keep and changes else None))
    # Compiled again once the profile is in, if there is one to wait for.
    record.profile = bool(trace.profile_sites)
    emitted, seconds = run("emit", _emit.emit, trace)
    record.emitted = emitted
    record.reports.append(PassReport("emit", seconds, [], None))
    return record
