"""Optimization passes over a trace (uops -> better uops).

Each pass takes the trace and the compilation context, changes the trace in
place and returns one-line descriptions of what it changed (empty: nothing),
which the dump shows under the pass's name.
"""

from __future__ import annotations

import dataclasses

from . import analysis, stencil_table
from .feedback import Feedback
from .ir import LABEL, Obj, Trace, UOp, jumps_into, positions
from .specialize import Specializer, specialize
from .unbox import unbox


@dataclasses.dataclass
class Context:
    """What the passes know besides the trace."""

    feedback: Feedback
    globals: dict | None = None
    profile: bool = False  # record operand types where they are not known

    # The specializer the passes after specialize analyze with and its
    # transfer functions (made once: it binds them), and the trace it was
    # made for.
    _specializer: Specializer | None = dataclasses.field(default=None, repr=False,
                                                         compare=False)
    _transfers: dict | None = dataclasses.field(default=None, repr=False, compare=False)
    _specialized: Trace | None = dataclasses.field(default=None, repr=False, compare=False)

    def analyze(self, trace: Trace) -> tuple[Specializer, list]:
        """The specializer of this compilation and the trace's states under its
        transfer functions (every pass uses the same ones, so analysis.analyze
        can reuse an analysis of unchanged uops).  Raises analysis.AnalysisError."""
        specializer, transfers = self.specializer(trace)
        return specializer, analysis.analyze(trace, transfers)

    def specializer(self, trace: Trace) -> tuple[Specializer, dict]:
        """The specializer of this compilation for `trace` and its transfer
        functions (the specialize pass's, then the later passes')."""
        if self._specializer is None or self._specialized is not trace:
            self._specializer = Specializer(trace, self.feedback, self.globals)
            self._transfers = self._specializer.transfers()
            self._specialized = trace
        return self._specializer, self._transfers


def run_specialize(trace: Trace, context: Context) -> list[str]:
    """Typed uops (with guards) for proven or predicted operand types."""
    return specialize(trace, context.feedback, context.globals, context.profile,
                      context.specializer(trace))


_FUSED_BRANCHES = {"_COMPARE_OP_INT": "_COMPARE_INT_AND_BRANCH",
                   "_COMPARE_OP_FLOAT": "_COMPARE_FLOAT_AND_BRANCH",
                   "_COMPARE_OP_STR": "_COMPARE_STR_AND_BRANCH"}


def fuse_compare_and_branch(trace: Trace, context: Context) -> list[str]:
    """A typed compare followed by a jump on its bool jumps on the comparison
    itself (no bool object).  The analysis is kept (analysis.fuse_pairs): the
    fused uop pops the operands and jumps with what is left, as the pair did."""
    uops = trace.uops
    last = len(uops) - 1
    fused = {}
    changes = []
    for i in positions(uops, _FUSED_BRANCHES):
        if i < last and uops[i + 1].name == "_POP_JUMP_IF_BOOL":
            uop, following = uops[i], uops[i + 1]
            fused[i] = uop.replace(name=_FUSED_BRANCHES[uop.name], operand0=following.operand0,
                                   jump_to=following.jump_to, exit_after=following.exit_after)
            changes.append(f"@{2 * uop.offset} {uop.name} + _POP_JUMP_IF_BOOL -> "
                           f"{fused[i].name}")
    if fused:
        analysis.fuse_pairs(trace, fused)
    return changes


def fuse_range_iteration(trace: Trace, context: Context) -> list[str]:
    """`for ... in range(...)`: _CALL_RANGE followed by _GET_ITER_BUILTIN
    makes the range iterator at once, without the range object.  The analysis
    is kept (analysis.fuse_pairs): _RANGE_ITER pushes what the pair pushed."""
    uops = trace.uops
    fused = {}
    last = len(uops) - 1
    for i in positions(uops, {"_CALL_RANGE"}):
        if i < last and uops[i + 1].name == "_GET_ITER_BUILTIN":
            fused[i] = uops[i].replace(name="_RANGE_ITER")
    if fused:
        analysis.fuse_pairs(trace, fused)
    return [f"@{2 * uop.offset} _CALL_RANGE + _GET_ITER_BUILTIN -> _RANGE_ITER (no range object)"
            for uop in fused.values()]


# A slice's subscript fused with its BUILD_SLICE, by (subscript uop, the
# container's type): the uop that slices without the slice object.
_SLICES = {("_BINARY_SUBSCR", list): "_BINARY_SLICE_LIST",
           ("_BINARY_SUBSCR", tuple): "_BINARY_SLICE_TUPLE",
           ("_BINARY_SUBSCR", str): "_BINARY_SLICE_STR",
           ("_STORE_SUBSCR", list): "_STORE_SLICE_LIST"}


def fuse_slices(trace: Trace, context: Context) -> list[str]:
    """`a[i:j]`, `a[i:j:k]` (lists, tuples, strs) and `a[i:j] = v` (lists)
    where the feedback saw that container type: the _BUILD_SLICE and the
    generic subscript after it become one uop that makes no slice object (but
    for a tuple's or str's step).  It is the subscript's instruction (errors
    and tracebacks are its) and side-exits to the BUILD_SLICE (exit_to), where
    the stack is what the fused uop starts from.  Not where such exits kept
    being taken (feedback.no_speculation).  The analysis is kept
    (analysis.fuse_pairs): the pair pushed an item of unknown type, as the
    fused uop does."""
    uops = trace.uops
    feedback = context.feedback
    fused = {}
    changes = []
    last = len(uops) - 1
    for i in positions(uops, {"_BUILD_SLICE"}):
        if i == last:
            continue
        build, subscript = uops[i], uops[i + 1]
        if subscript.name not in ("_BINARY_SUBSCR", "_STORE_SUBSCR") \
                or build.offset in feedback.no_speculation:
            continue
        predicted = feedback.at(subscript.offset)  # (..., container, key)
        name = _SLICES.get((subscript.name, predicted[-2])) \
            if predicted is not None and len(predicted) >= 2 else None
        if name is not None:
            fused[i] = subscript.replace(
                name=name, oparg=build.oparg,
                exit_to=build.offset if build.exit_to < 0 else build.exit_to,
                comment=f"{predicted[-2].__name__} predicted by {feedback.source}")
            changes.append(f"@{2 * subscript.offset} _BUILD_SLICE + {subscript.name} -> "
                           f"{name} (no slice object)")
    if fused:
        analysis.fuse_pairs(trace, fused)
    return changes


def fuse_string_append(trace: Trace, context: Context) -> list[str]:
    """`s += t` / `s = s + t` on strings, stored back into `s`: append in place."""
    uops = trace.uops
    found = positions(uops, {"_BINARY_OP_ADD_STR"})
    if not found:
        return []
    try:
        _, states = context.analyze(trace)
    except analysis.AnalysisError:
        return []
    changes = []
    fused = {}
    for i in found:
        uop = uops[i]
        following = uops[i + 1] if i + 1 < len(uops) else None
        state = states[i]
        if (following is not None and state is not None and following.name == "_STORE_FAST"
                and state.stack[-2].alias == following.oparg):
            fused[i] = uop.replace(name="_BINARY_OP_INPLACE_ADD_STR", oparg=following.oparg)
            changes.append(f"@{2 * uop.offset} str + str stored back: append in place")
    if fused:
        # (A new list: the fused uop's transfer is not the pair's, so the
        # next analysis starts afresh.)
        uops[:] = [fused.get(i, uop) for i, uop in enumerate(uops) if i - 1 not in fused]
    return changes


_LOOP_ENTRY_TYPES = (int, float, list, tuple, dict, str)


def guard_loop_entries(trace: Trace, context: Context) -> list[str]:
    """A local the loop body proves (with its guards) to be an int, a float, a
    list... on every back edge, but of unknown type where the loop is entered,
    gets one guard in front of the loop instead: inside, its type is then
    known (no guards per iteration, and ints and floats can be unboxed).
    Not for loops whose entry guard kept failing (feedback.no_speculation)."""
    uops = trace.uops
    labels = {uops[i].oparg: i for i in positions(uops, {LABEL})}
    back_edges: dict[int, list[int]] = {}
    for i in jumps_into(uops, labels):
        back_edges.setdefault(labels[uops[i].jump_to], []).append(i)
    loops = [(header, sources) for header, sources in back_edges.items()
             if all(source > header for source in sources) and header > 0
             and not analysis.terminates(uops[header - 1].name)
             and uops[header - 1].name != LABEL
             and uops[header].oparg not in context.feedback.no_speculation]
    if not loops:
        return []
    try:
        specializer, states = context.analyze(trace)
    except analysis.AnalysisError:
        return []
    names = trace.code.co_varnames
    inserts: dict[int, list[UOp]] = {}
    changes = []
    for header, sources in loops:
        before = states[header - 1]
        if before is None or any(states[s] is None for s in sources):
            continue
        entry, _ = specializer.transfer(uops[header - 1], before) or \
            analysis.generic_transfer(uops[header - 1], before)
        if entry is None:
            continue
        label = uops[header]
        resume = trace.instruction_at(label.oparg)
        for local, entering in enumerate(entry.locals):
            if entering is not analysis.ANY or local >= len(names):
                continue
            looping = {states[s].locals[local] for s in sources}
            if len(looping) != 1:
                continue
            (kind,) = looping
            if kind not in _LOOP_ENTRY_TYPES:
                continue
            inserts.setdefault(header, []).append(
                UOp("_GUARD_LOCAL_TYPE", local, Obj(kind), offset=label.oparg,
                    exit_to=resume.start if resume else label.exit_to,
                    comment=f"{names[local]}: {kind.__name__} all through the loop"))
            changes.append(f"@{2 * label.oparg} guard {names[local]} ({kind.__name__}) "
                           f"before the loop")
    if inserts:
        out = []
        for i, uop in enumerate(uops):
            out.extend(inserts.get(i, ()))
            out.append(uop)
        uops[:] = out
    return changes


def remove_redundant_guards(trace: Trace, context: Context) -> list[str]:
    """Drop type guards on items whose type is already proven."""
    guards = positions(trace.uops, {"_GUARD_TYPE"})
    if not guards:
        return []
    try:
        _, states = context.analyze(trace)
    except analysis.AnalysisError:
        return []
    changes = []
    redundant = set()
    for index in guards:
        uop, state = trace.uops[index], states[index]
        if state is not None and state.stack[-uop.oparg].type is uop.operand0.value:
            changes.append(f"@{2 * uop.offset} removed _GUARD_TYPE "
                           f"{uop.operand0.value.__name__} (proven)")
            redundant.add(index)
    analysis.remove_uops(trace, redundant)  # (usually keeping the analysis for unbox)
    return changes


def prune_tracing_checks(trace: Trace, context: Context) -> list[str]:
    """Drop _CHECK_TRACING where no path into it comes from code that can run
    Python (specialization made those uops non-escaping)."""
    uops = trace.uops
    checks = positions(uops, {"_CHECK_TRACING"})
    if not checks:
        return []
    specs = stencil_table.uops()
    jumps_to: dict[int, list] | None = None  # label offset -> the uops jumping there
    changes = []
    removed = set()
    for i in checks:
        uop = uops[i]
        needed = False
        j = i - 1
        while j >= 0 and uops[j].name == LABEL:
            if jumps_to is None:
                jumps_to = {}
                for source in uops:
                    if source.name != LABEL and source.jump_to >= 0:
                        jumps_to.setdefault(source.jump_to, []).append(source)
            for source in jumps_to.get(uops[j].oparg, ()):
                needed |= specs[source.name].escapes
            j -= 1
        if j >= 0 and uops[j].name != LABEL and not specs[uops[j].name].flags & {"TERMINATES"}:
            spec = specs[uops[j].name]
            needed |= spec.escapes and "SYNCS_FRAME" not in spec.flags
        if not needed:
            removed.add(i)
            changes.append(f"@{2 * uop.offset} removed _CHECK_TRACING (nothing before it "
                           "can run Python)")
    if removed:
        uops[:] = [uop for i, uop in enumerate(uops) if i not in removed]
    return changes


def merge_tracing_checks(trace: Trace, context: Context) -> list[str]:
    """Drop a _CHECK_TRACING that directly follows another one (no code in
    between can turn tracing on)."""
    uops = trace.uops
    checks = positions(uops, {"_CHECK_TRACING"})
    duplicates = set(checks).intersection([i + 1 for i in checks])
    if not duplicates:
        return []
    changes = [f"removed duplicate _CHECK_TRACING @{2 * uops[i].offset}" for i in sorted(duplicates)]
    uops[:] = [uop for i, uop in enumerate(uops) if i not in duplicates]
    return changes


def verify(trace: Trace, context: Context) -> list[str]:
    """Not an optimization: check the finished trace's stack depths (see
    analysis.check_stack), so a rewrite bug fails the compilation instead of
    corrupting the frame."""
    analysis.check_stack(trace, trace.entry_depths)
    return []


PASSES = [
    ("specialize", run_specialize),
    ("fuse_compare_and_branch", fuse_compare_and_branch),
    ("fuse_range_iteration", fuse_range_iteration),
    ("fuse_slices", fuse_slices),
    ("fuse_string_append", fuse_string_append),
    ("guard_loop_entries", guard_loop_entries),
    ("remove_redundant_guards", remove_redundant_guards),
    ("unbox", unbox),
    ("prune_tracing_checks", prune_tracing_checks),
    ("merge_tracing_checks", merge_tracing_checks),
    ("verify", verify),
]
