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
from .ir import LABEL, CodeUnit, Instruction, Trace, UOp


class Unsupported(Exception):
    """The function cannot be compiled at all; the message is the fallback reason."""


@functools.lru_cache(maxsize=None)
def _publishing() -> frozenset[str]:
    """The uops that can run arbitrary code and do not publish the
    instruction pointer themselves (one set per stencil table)."""
    names = frozenset(name for name, spec in stencil_table.uops().items()
                      if spec.escapes and "SYNCS_FRAME" not in spec.flags)
    assert "_SIDE_EXIT" not in names  # (what an instruction not compiled becomes)
    return names


def translate(code: types.CodeType) -> Trace:
    version = _versions.current
    if version is None:
        raise Unsupported(_versions.UNSUPPORTED)
    if code.co_flags & version.GENERATOR_FLAGS:
        raise Unsupported("generators and coroutines run in the interpreter "
                          "(cpjit compiles plain functions)")
    instructions, exception_table = version.decode(code)
    trace = Trace(code, instructions, [])
    # Every instruction is lowered, reached or not, in order: inline caches
    # reserve their read-write words in the trace as they go.
    lowered = version.Lowering(code, trace).lower_all(instructions)
    reached, jump_targets = _reached(instructions, lowered, version.NO_FALLTHROUGH)
    check_at = _publish_all(trace, lowered, reached, version.NO_FALLTHROUGH)

    trace_uops = trace.uops
    marked = jump_targets | check_at  # where a label or a tracing check goes first
    compiled = 0
    for ins, uops in zip(instructions, lowered):
        offset = ins.offset
        if offset not in reached:
            continue
        compiled += 1
        if uops is None:
            trace.unsupported.append(ins)
            uops = [_not_compiled(ins)]
        if offset in marked:
            if offset in jump_targets:
                trace_uops.append(UOp(LABEL, oparg=offset, offset=offset, exit_to=ins.start))
            if offset in check_at:
                trace_uops.append(UOp("_CHECK_TRACING", offset=offset, exit_to=ins.start,
                                      comment="after a branch that can run Python"))
        trace_uops += uops
    if exception_table:
        trace.notes.append(f"{len(exception_table)} exception table entries: handlers run in "
                           "the interpreter after an error hand-off")
    unreachable = len(instructions) - compiled
    if unreachable:
        trace.notes.append(f"{unreachable} instructions not reached by normal control flow "
                           "(exception handlers) are not compiled")
    trace.entry_depths = analysis.instruction_depths(trace)
    return trace


def _reached(instructions: list[Instruction], lowered: list, no_fallthrough: frozenset[str]
             ) -> tuple[set[int], set[int]]:
    """The offsets normal control flow reaches from the first instruction (with
    some past the last one), and the targets of the jumps among them.  An
    instruction that is not compiled (lowered to None) side-exits: nothing is
    reached through it.  One scan in code order reaches almost everything
    (loops are entered from above); a backward jump to an instruction the scan
    had passed unreached means another scan."""
    reached = {instructions[0].offset}
    jump_targets: set[int] = set()
    again = True
    while again:
        again = False
        for ins, uops in zip(instructions, lowered):
            if uops is None or ins.offset not in reached:
                continue
            if ins.name not in no_fallthrough:
                reached.add(ins.next)
            target = ins.jump_target
            if target is not None:
                jump_targets.add(target)
                if target not in reached:
                    reached.add(target)
                    again = again or target < ins.offset
    return reached, jump_targets


def _not_compiled(ins: Instruction) -> UOp:
    """What an instruction that is not compiled becomes: a side exit to it."""
    return UOp("_SIDE_EXIT", offset=ins.offset, exit_to=ins.start,
               comment=f"{ins.name} is not compiled", exit_after=ins.after)


def _publish_all(trace: Trace, lowered: list, reached: set[int],
                 no_fallthrough: frozenset[str]) -> set[int]:
    """Publish the instruction pointer around the uops of each reached
    instruction that can run arbitrary code (see _publish).  Returns the targets of
    branches that can run it: a tracing check goes there.  (Few functions
    have such uops: one look at all the names finds there is nothing to do.)"""
    needs_ip = _publishing()
    if needs_ip.isdisjoint([uop.name for uops in lowered if uops is not None for uop in uops]):
        return set()
    check_at: set[int] = set()
    for ins, uops in zip(trace.instructions, lowered):
        if uops is None or ins.offset not in reached:
            continue
        for first, uop in enumerate(uops):
            if uop.name in needs_ip:
                _publish(trace, ins, uops, first, ins.name not in no_fallthrough)
                if ins.jump_target is not None:
                    check_at.add(ins.jump_target)
                break
    return check_at


def _publish(trace: Trace, ins: Instruction, uops: list[UOp], first: int,
             falls_through: bool) -> None:
    """Around the uops of `ins` that can run arbitrary code (the first is
    uops[first]): publish the instruction pointer before them, unless a
    _SET_IP already does, and check for tracing after the instruction."""
    if first == 0 or not any(u.name == "_SET_IP" for u in uops[:first]):
        uops.insert(first, UOp("_SET_IP", operand0=CodeUnit(ins.offset), offset=ins.offset,
                               exit_to=ins.start))
    if falls_through:
        following = trace.instruction_at(ins.next)
        if following is not None:
            uops.append(UOp("_CHECK_TRACING", offset=ins.offset, exit_to=following.start,
                            comment="after code that can run Python"))
