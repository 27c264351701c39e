"""Type feedback: what the operands of each instruction were, as tier 1 (or a profile) saw them."""

from __future__ import annotations

import dataclasses
import types

from . import _versions


@dataclasses.dataclass
class Feedback:
    """Observed operand types per instruction offset (code units).

    `operands[offset]` gives one type (or None: unknown, mixed) per stack
    input of the instruction, deepest first.  `notes[offset]` says where it
    came from, for the dump (tier 1's specialized instruction name, or the
    profile's counts).
    """

    operands: dict[int, tuple] = dataclasses.field(default_factory=dict)
    notes: dict[int, str] = dataclasses.field(default_factory=dict)
    source: str = "none"
    # Instructions where speculation failed too often: compile them generically.
    no_speculation: frozenset[int] = frozenset()
    # What CALL instructions called: one of CALL_KINDS, by the CALL's offset.
    calls: dict[int, str] = dataclasses.field(default_factory=dict)

    def at(self, offset: int) -> tuple | None:
        if offset in self.no_speculation:
            return None
        return self.operands.get(offset)

    def call_kind(self, offset: int) -> str | None:
        if offset in self.no_speculation:
            return None
        return self.calls.get(offset)

    def describe(self, offset: int) -> str | None:
        return self.notes.get(offset)

    def get(self, offset: int, default=None):
        """What is known at `offset`, as text (the dump reads feedback like a mapping)."""
        note = self.notes.get(offset)
        if note is None:
            return default
        types_ = self.operands.get(offset)
        if types_:
            names = ", ".join(t.__name__ if t is not None else "?" for t in types_)
            note = f"{note} ({names})"
        return note


def from_tier1(code: types.CodeType, instructions) -> Feedback:
    """Read tier 1's specialized (adaptive) instructions of `code`."""
    version = _versions.current
    feedback = Feedback(source="tier 1")
    if version is None:
        return feedback
    notes, operands, calls = feedback.notes, feedback.operands, feedback.calls
    operand_types, call_kinds = version.TIER1_OPERAND_TYPES, version.TIER1_CALL_KINDS
    for index, name in version.specialized(code, instructions):
        offset = instructions[index].offset
        notes[offset] = name
        observed = operand_types.get(name)
        if observed is not None:
            operands[offset] = observed
        kind = call_kinds.get(name)
        if kind is not None:  # on PRECALL: it is about the CALL that follows
            call = _next_call(instructions, index + 1)
            if call is not None:
                calls[call.offset] = kind
    return feedback


def _next_call(instructions, start: int):
    """The first CALL among instructions[start:], or None."""
    for k in range(start, len(instructions)):
        if instructions[k].name == "CALL":
            return instructions[k]
    return None


# The type of each bit the _PROFILE uop records (cpjit_type_bit in stencils/inline.h).
PROFILE_TYPES = (int, float, str, list, tuple, dict, bool, type(iter(range(0))), type(iter([])),
                 type(iter(())), range)


# What a call's callable was (the bits of cpjit_call_kind_bit in
# stencils/inline.h, in order): a builtin function of one argument (METH_O) or
# of a vector of them (METH_FASTCALL); a method descriptor found by
# LOAD_METHOD taking no argument, one, or a vector; anything else.
CALL_KINDS = ("builtin_o", "builtin_fast", "method_noargs", "method_o", "method_fast", "other")


def _profiled_type(bits: int):
    """The one type seen (None: several, or other types, or never run)."""
    if bits == 0 or bits & (bits - 1):
        return None
    index = bits.bit_length() - 1
    return PROFILE_TYPES[index] if index < len(PROFILE_TYPES) else None


def from_profile(trace, words) -> Feedback:
    """What the _PROFILE uops of a profiling compilation recorded (`words`: the
    code's cache words, see emit.Emitted.cache_words)."""
    feedback = Feedback(source="profile")
    for offset, count, word in trace.profile_sites:
        value = words[word.index] if word.index < len(words) else 0
        if count == 0:  # a call site: the kinds of callable seen
            kinds = [kind for k, kind in enumerate(CALL_KINDS) if value >> k & 1]
            if len(kinds) == 1 and kinds[0] != "other":
                feedback.calls[offset] = kinds[0]
            feedback.notes[offset] = f"profile: {' or '.join(kinds) or 'not run'}"
            continue
        seen = tuple(_profiled_type((value >> (16 * k)) & 0xFFFF) for k in range(count))
        if any(t is not None for t in seen):
            feedback.operands[offset] = seen
        names = ", ".join(t.__name__ if t else "?" for t in seen)
        feedback.notes[offset] = f"profile: {names}" if value else "profile: not run"
    return feedback


def merged(first: Feedback, second: Feedback) -> Feedback:
    """`first` completed by `second` where it knows nothing."""
    sources = first.source.split(" + ")
    if second.operands or second.calls:
        sources += [part for part in second.source.split(" + ") if part not in sources]
    result = Feedback(dict(second.operands), dict(second.notes), " + ".join(sources),
                      first.no_speculation | second.no_speculation, dict(second.calls))
    result.operands.update(first.operands)
    result.notes.update(first.notes)
    result.calls.update(first.calls)
    return result
