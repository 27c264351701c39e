"""Translate a code object into a trace of uops (bytecode -> uops).

The version layer (cpjit/_versions) decodes the bytecode with the `bytecode`
package and lowers each instruction; this module keeps what holds for every
version: which instructions normal control flow reaches (exception handlers
are left to the interpreter, which runs them after an error hand-off), and the
bookkeeping around uops that can run arbitrary code: the instruction pointer
is published before them and tracing is checked after them.
"""

from __future__ import annotations

import functools
import types

from . import _versions, analysis, stencil_table
from .ir import LABEL, CodeUnit, Trace, UOp


class Unsupported(Exception):
    """The function cannot be compiled at all; the message is the fallback reason."""


@functools.lru_cache(maxsize=None)
def _publishing() -> frozenset[str]:
    """The uops that can run arbitrary code and do not publish the
    instruction pointer themselves (one set per stencil table)."""
    return frozenset(name for name, spec in stencil_table.uops().items()
                     if spec.escapes and "SYNCS_FRAME" not in spec.flags)


def translate(code: types.CodeType) -> Trace:
    version = _versions.current
    if version is None:
        raise Unsupported(_versions.UNSUPPORTED)
    if code.co_flags & version.GENERATOR_FLAGS:
        raise Unsupported("generators and coroutines run in the interpreter "
                          "(cpjit compiles plain functions)")
    instructions, exception_table = version.decode(code)
    needs_ip = _publishing()
    trace = Trace(code, instructions, [])
    lowering = version.Lowering(code, trace)
    lowered = {ins.offset: lowering.lower(ins) for ins in instructions}
    by_offset = {ins.offset: ins for ins in instructions}

    reachable: set[int] = set()
    work = [instructions[0].offset]
    while work:
        offset = work.pop()
        if offset in reachable or offset not in by_offset:
            continue
        reachable.add(offset)
        if lowered[offset] is not None:
            work.extend(version.successors(by_offset[offset]))

    jump_targets = {by_offset[o].jump_target for o in reachable
                    if lowered[o] is not None and by_offset[o].jump_target is not None}
    check_at: set[int] = set()  # targets of branches that can run arbitrary code
    per_instruction: dict[int, list[UOp]] = {}
    for ins in instructions:
        if ins.offset not in reachable:
            continue
        uops = lowered[ins.offset]
        if uops is None:
            trace.unsupported.append(ins)
            uops = [UOp("_SIDE_EXIT", offset=ins.offset, exit_to=ins.start,
                        comment=f"{ins.name} is not compiled", exit_after=ins.after)]
        escapes = [k for k, u in enumerate(uops) if u.name in needs_ip]
        if escapes:
            first = escapes[0]
            if not any(u.name == "_SET_IP" for u in uops[:first]):
                uops.insert(first, UOp("_SET_IP", operand0=CodeUnit(ins.offset),
                                       offset=ins.offset, exit_to=ins.start))
            following = by_offset.get(ins.next)
            if ins.name not in version.NO_FALLTHROUGH and following is not None:
                uops.append(UOp("_CHECK_TRACING", offset=ins.offset, exit_to=following.start,
                                comment="after code that can run Python"))
            if ins.jump_target is not None:
                check_at.add(ins.jump_target)
        per_instruction[ins.offset] = uops

    for ins in instructions:
        if ins.offset not in reachable:
            continue
        if ins.offset in jump_targets:
            trace.uops.append(UOp(LABEL, oparg=ins.offset, offset=ins.offset, exit_to=ins.start))
        if ins.offset in check_at:
            trace.uops.append(UOp("_CHECK_TRACING", offset=ins.offset, exit_to=ins.start,
                                  comment="after a branch that can run Python"))
        trace.uops.extend(per_instruction[ins.offset])
    if exception_table:
        trace.notes.append(f"{len(exception_table)} exception table entries: handlers run in "
                           "the interpreter after an error hand-off")
    unreachable = len(instructions) - len(reachable)
    if unreachable:
        trace.notes.append(f"{unreachable} instructions not reached by normal control flow "
                           "(exception handlers) are not compiled")
    trace.entry_depths = analysis.instruction_depths(trace)
    return trace
