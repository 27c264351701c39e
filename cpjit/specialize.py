"""Specialization: typed uops for the operand types that are proven or predicted (uops -> typed uops + guards).

For each generic uop, `Specializer.decide` picks a typed uop from the types
the analysis proved and, failing that, from feedback (tier 1's adaptive
instructions, or cpjit's own profile), in which case `_GUARD_TYPE` uops
check the predicted types first and side-exit when they are wrong.  The
analysis uses the same decisions for the types a uop produces, so a loop
whose accumulator starts as an int is proven to keep it an int.
"""

from __future__ import annotations

import builtins
import dataclasses
import types

from . import analysis, stencil_table
from .analysis import ANY, NULL, UNBOUND, Item, Outcome, State
from .feedback import Feedback
from .ir import LABEL, Obj, Trace, UOp

RANGE_ITER = type(iter(range(0)))
LIST_ITER = type(iter([]))
TUPLE_ITER = type(iter(()))
_BUILTIN_TYPES = frozenset({int, float, bool, str, bytes, list, tuple, dict, set, frozenset,
                            type(None), complex, slice, range, RANGE_ITER, LIST_ITER, TUPLE_ITER})

# Generic binary operator -> {(lhs type, rhs type): (typed uop, oparg or None, result type)}.
_BINARY = {
    "_BINARY_OP_ADD": {(int, int): ("_BINARY_OP_ADD_INT", None, int),
                       (float, float): ("_BINARY_OP_FLOAT", 0, float),
                       (str, str): ("_BINARY_OP_ADD_STR", None, str)},
    "_BINARY_OP_SUBTRACT": {(int, int): ("_BINARY_OP_SUBTRACT_INT", None, int),
                            (float, float): ("_BINARY_OP_FLOAT", 1, float)},
    "_BINARY_OP_MULTIPLY": {(int, int): ("_BINARY_OP_MULTIPLY_INT", None, int),
                            (float, float): ("_BINARY_OP_FLOAT", 2, float)},
    "_BINARY_OP_TRUE_DIVIDE": {(float, float): ("_BINARY_OP_FLOAT", 3, float)},
    "_BINARY_OP_FLOOR_DIVIDE": {(int, int): ("_BINARY_OP_FLOOR_DIVIDE_INT", None, int)},
    "_BINARY_OP_REMAINDER": {(int, int): ("_BINARY_OP_REMAINDER_INT", None, int)},
    "_BINARY_OP_AND": {(int, int): ("_BINARY_OP_BITWISE_INT", 0, int)},
    "_BINARY_OP_OR": {(int, int): ("_BINARY_OP_BITWISE_INT", 1, int)},
    "_BINARY_OP_XOR": {(int, int): ("_BINARY_OP_BITWISE_INT", 2, int)},
}
_COMPARE = {int: "_COMPARE_OP_INT", float: "_COMPARE_OP_FLOAT", str: "_COMPARE_OP_STR"}
_FOR_ITER = {RANGE_ITER: ("_FOR_ITER_RANGE", int), LIST_ITER: ("_FOR_ITER_LIST", ANY),
             TUPLE_ITER: ("_FOR_ITER_TUPLE", ANY)}
# Generic uops whose specialization depends on operand types: how many of
# their stack inputs a profile records.
PROFILED = {**{name: 2 for name in _BINARY}, "_COMPARE_OP": 2, "_BINARY_SUBSCR": 2,
            "_STORE_SUBSCR": 3, "_UNPACK_SEQUENCE": 1, "_FOR_ITER": 1, "_GET_ITER": 1,
            "_UNARY_NEGATIVE": 1}
# Builtins whose call result type is (probably: the name may be rebound) known.
_CALL_RESULTS = {builtins.range: range, builtins.len: int, builtins.list: list,
                 builtins.tuple: tuple, builtins.sorted: list, builtins.dict: dict,
                 builtins.set: set, builtins.str: str, builtins.abs: None,
                 builtins.isinstance: bool}
# Call kinds (feedback.CALL_KINDS) of a method found by LOAD_METHOD: the uop
# and the number of arguments it takes (None: any).
_METHOD_CALLS = {"method_noargs": ("_CALL_METHOD_DESCRIPTOR_NOARGS", 0),
                 "method_o": ("_CALL_METHOD_DESCRIPTOR_O", 1),
                 "method_fast": ("_CALL_METHOD_DESCRIPTOR_FAST", None)}
_BUILDS = {"_BUILD_LIST": list, "_BUILD_TUPLE": tuple, "_BUILD_MAP": dict,
           "_BUILD_CONST_KEY_MAP": dict, "_BUILD_SET": set, "_BUILD_STRING": str,
           "_BUILD_SLICE": slice, "_LIST_TO_TUPLE": tuple, "_FORMAT_VALUE": str,
           "_IS_OP": bool, "_CONTAINS_OP": bool, "_UNARY_NOT": bool}
_GET_ITER_FACTS = {list: LIST_ITER, tuple: TUPLE_ITER}
# What the typed uops produce (for the analysis after specialization).
_TYPED_RESULTS = {
    "_BINARY_OP_ADD_INT": int, "_BINARY_OP_SUBTRACT_INT": int, "_BINARY_OP_MULTIPLY_INT": int,
    "_BINARY_OP_FLOOR_DIVIDE_INT": int, "_BINARY_OP_REMAINDER_INT": int,
    "_BINARY_OP_BITWISE_INT": int, "_BINARY_OP_FLOAT": float, "_BINARY_OP_ADD_STR": str,
    "_COMPARE_OP_INT": bool, "_COMPARE_OP_FLOAT": bool, "_COMPARE_OP_STR": bool,
    "_UNARY_NEGATIVE_INT": int, "_UNARY_NEGATIVE_FLOAT": float, "_UNARY_NOT_BOOL": bool,
    "_CALL_LEN": int, "_CALL_ISINSTANCE": bool,
}
_GET_ITER_SAFE = frozenset({list, tuple, dict, set, frozenset, str, bytes, range})
KEEP = object()


@dataclasses.dataclass
class Decision:
    """Replace a uop by `name` (with `oparg`/`operand0` unless KEEP), after
    checking `guards` ((depth, type): the item `depth` deep has that type)."""

    name: str
    outputs: tuple[Item, ...]
    oparg: object = KEEP
    operand0: object = KEEP
    guards: tuple[tuple[int, type], ...] = ()


def _exact(t) -> bool:
    return isinstance(t, type)


class Specializer:
    def __init__(self, trace: Trace, feedback: Feedback, globals_: dict | None):
        self.trace = trace
        self.feedback = feedback
        self.globals = globals_ if isinstance(globals_, dict) else {}
        b = self.globals.get("__builtins__", builtins.__dict__)
        self.builtins = b.__dict__ if isinstance(b, types.ModuleType) else b

    # -- decisions for generic uops --

    def _predicted(self, uop: UOp, n: int) -> tuple:
        """Feedback for the top `n` operands (None where there is none)."""
        predicted = self.feedback.at(uop.offset)
        if predicted is None or len(predicted) < n:
            return (None,) * n
        return tuple(predicted[len(predicted) - n:])

    def _typed(self, choices: dict, uop: UOp, state: State, n: int):
        """The choice whose key matches the top `n` operands' types (None in a
        key matches anything): proven types first, then proven types
        completed by feedback, with guards for the predicted ones."""
        items = state.stack[len(state.stack) - n:]
        facts = tuple(item.type if _exact(item.type) else None for item in items)
        predicted = self._predicted(uop, n)
        completed = tuple(f if f is not None else p for f, p in zip(facts, predicted))
        for candidate in (facts, completed):
            for key, choice in choices.items():
                if all(k is None or k is c for k, c in zip(key, candidate)):
                    guards = tuple((n - i, k) for i, k in enumerate(key)
                                   if k is not None and facts[i] is not k)
                    return choice, guards
        return None, ()

    def _call(self, uop: UOp, stack) -> Decision | None:
        """A call of the kind the feedback saw, without keywords: a typed call uop."""
        kind = self.feedback.call_kind(uop.offset)
        if kind is None or uop.operand0 != 0:
            return None
        nargs = uop.oparg
        below, callee = stack[-(nargs + 2)], stack[-(nargs + 1)]
        if kind in _METHOD_CALLS:
            typed, wanted = _METHOD_CALLS[kind]
            if below.type is NULL or wanted not in (None, nargs):
                return None
            return Decision(typed, (UNKNOWN_ITEM,))
        if kind not in ("builtin_o", "builtin_fast") or below.type is not NULL:
            return None
        if callee.hint is builtins.len and nargs == 1:
            return Decision("_CALL_LEN", (Item(int),), operand0=Obj(builtins.len))
        if callee.hint is builtins.isinstance and nargs == 2:
            return Decision("_CALL_ISINSTANCE", (Item(bool),), operand0=Obj(builtins.isinstance))
        result = Item(ANY, hint=_CALL_RESULTS.get(callee.hint))
        if kind == "builtin_o" and nargs == 1:
            return Decision("_CALL_BUILTIN_O", (result,))
        if kind == "builtin_fast":
            return Decision("_CALL_BUILTIN_FAST", (result,))
        return None

    def decide(self, uop: UOp, state: State) -> Decision | None:
        name = uop.name
        stack = state.stack
        if name in _BINARY:
            choice, guards = self._typed(_BINARY[name], uop, state, 2)
            if choice is not None:
                typed, oparg, result = choice
                return Decision(typed, (Item(result),), KEEP if oparg is None else oparg,
                                guards=guards)
        elif name == "_COMPARE_OP":
            choices = {(t, t): n for t, n in _COMPARE.items()
                       if t is not str or uop.oparg in (2, 3)}  # str: == and != only
            choice, guards = self._typed(choices, uop, state, 2)
            if choice is not None:
                return Decision(choice, (Item(bool),), guards=guards)
        elif name == "_CALL":
            return self._call(uop, stack)
        elif name in ("_POP_JUMP_IF_FALSE", "_POP_JUMP_IF_TRUE"):
            if stack[-1].type is bool:
                return Decision("_POP_JUMP_IF_BOOL", (), operand0=int(name.endswith("TRUE")))
        elif name == "_UNARY_NEGATIVE":
            choice, guards = self._typed({(int,): ("_UNARY_NEGATIVE_INT", int),
                                          (float,): ("_UNARY_NEGATIVE_FLOAT", float)},
                                         uop, state, 1)
            if choice is not None:
                return Decision(choice[0], (Item(choice[1]),), guards=guards)
        elif name == "_UNARY_NOT":
            if stack[-1].type is bool:
                return Decision("_UNARY_NOT_BOOL", (Item(bool),))
        elif name == "_BINARY_SUBSCR":
            choices = {(list, int): "_BINARY_SUBSCR_LIST_INT",
                       (tuple, int): "_BINARY_SUBSCR_TUPLE_INT",
                       (dict, None): "_BINARY_SUBSCR_DICT"}
            choice, guards = self._typed(choices, uop, state, 2)
            if choice is not None:
                return Decision(choice, (UNKNOWN_ITEM,), guards=guards)
        elif name == "_STORE_SUBSCR":
            choice, guards = self._typed({(None, list, int): "_STORE_SUBSCR_LIST_INT",
                                          (None, dict, None): "_STORE_SUBSCR_DICT"}, uop,
                                         state, 3)
            if choice is not None:
                return Decision(choice, (), guards=guards)
        elif name == "_FOR_ITER":
            item = stack[-1]
            kind = item.type if _exact(item.type) else item.hint or self._predicted(uop, 1)[0]
            if kind in _FOR_ITER:
                typed, element = _FOR_ITER[kind]
                return Decision(typed, (item, Item(element)))
        elif name == "_GET_ITER":
            item = stack[-1]
            kind = item.type if _exact(item.type) else self._predicted(uop, 1)[0]
            if kind in _GET_ITER_SAFE:
                fact = _GET_ITER_FACTS.get(kind, ANY)
                hint = RANGE_ITER if kind is range else None
                guards = () if item.type is kind else ((1, kind),)
                return Decision("_GET_ITER_BUILTIN", (Item(fact, hint=hint),), guards=guards)
        elif name == "_UNPACK_SEQUENCE":
            item = stack[-1]
            if {item.type, item.hint, self._predicted(uop, 1)[0]} & {tuple, list}:
                return Decision("_UNPACK_SEQUENCE_EXACT", (UNKNOWN_ITEM,) * uop.oparg)
        return None

    # -- the analysis' transfer function --

    def transfer(self, uop: UOp, state: State) -> Outcome | None:
        name = uop.name
        stack = state.stack
        if name == "_LOAD_FAST":
            local = state.locals[uop.oparg]
            t = local if _exact(local) else ANY
            return Outcome(state.push(Item(t, alias=uop.oparg)))
        if name == "_STORE_FAST":
            return Outcome(state.pop(1).store(uop.oparg, stack[-1].type))
        if name == "_DELETE_FAST":
            return Outcome(state.store(uop.oparg, UNBOUND))
        if name == "_LOAD_CONST":
            value = uop.operand0.value
            return Outcome(state.push(Item(type(value))))
        if name == "_PUSH_NULL":
            return Outcome(state.push(Item(NULL)))
        if name == "_COPY":
            return Outcome(state.push(stack[-uop.oparg]))
        if name == "_SWAP":
            items = list(stack)
            items[-1], items[-uop.oparg] = items[-uop.oparg], items[-1]
            return Outcome(analysis.State(tuple(items), state.locals))
        if name == "_GUARD_TYPE":
            index = len(stack) - uop.oparg
            guarded = uop.operand0.value
            item = stack[index]
            if item.alias >= 0 and state.locals[item.alias] is not UNBOUND:
                return Outcome(state.refine(item.alias, guarded))
            return Outcome(analysis.State(stack[:index] + (dataclasses.replace(item, type=guarded),)
                                          + stack[index + 1:], state.locals))
        if name == "_GUARD_LOCAL_TYPE":
            return Outcome(state.refine(uop.oparg, uop.operand0.value))
        if name == "_LOAD_GLOBAL_CACHED":
            hint = self._global_hint(uop.operand0.value)
            items = (Item(NULL),) if uop.oparg else ()
            return Outcome(state.push(*items, Item(ANY, hint=hint)))
        if name == "_CALL" and self.decide(uop, state) is None:
            callee = stack[-(uop.oparg + 1)]
            below = stack[-(uop.oparg + 2)]
            result = _CALL_RESULTS.get(callee.hint) if below.type is NULL else None
            after = state.pop(uop.oparg + 2).push(Item(ANY, hint=result))
            return Outcome(after)
        if name in _TYPED_RESULTS:
            spec = stencil_table.uops()[name]
            return Outcome(state.pop(spec.pops(uop.oparg)).push(Item(_TYPED_RESULTS[name])))
        if name == "_GET_ITER" and stack[-1].hint is range and self.decide(uop, state) is None:
            return Outcome(state.pop(1).push(Item(ANY, hint=RANGE_ITER)))
        if name == "_GET_ITER_BUILTIN":
            fact = _GET_ITER_FACTS.get(stack[-1].type, ANY)
            hint = RANGE_ITER if stack[-1].type is range else None
            return Outcome(state.pop(1).push(Item(fact, hint=hint)))
        if name in _BUILDS:
            return Outcome(analysis.generic_transfer(uop, state).fallthrough.pop(1)
                           .push(Item(_BUILDS[name])))
        if name in ("_FOR_ITER", "_FOR_ITER_RANGE", "_FOR_ITER_LIST", "_FOR_ITER_TUPLE"):
            decision = self.decide(uop, state) if name == "_FOR_ITER" else None
            element = (decision.outputs[1] if decision else
                       Item(int if name == "_FOR_ITER_RANGE" else ANY))
            return Outcome(state.push(element), state.pop(1))
        decision = self.decide(uop, state)
        if decision is None:
            return None
        for depth, guarded in decision.guards:
            # The guard proves the type of the local the item was loaded from.
            alias = stack[-depth].alias
            if alias >= 0 and state.locals[alias] is not UNBOUND:
                state = state.refine(alias, guarded)
                stack = state.stack
        spec = stencil_table.uops()[uop.name]
        after = state.pop(spec.pops(uop.oparg)).push(*decision.outputs)
        return Outcome(after, after if spec.jumps else None)

    def _global_hint(self, name: str):
        value = self.globals.get(name, self.builtins.get(name) if isinstance(self.builtins, dict)
                                 else None)
        # By identity: a global may be anything, unhashable included.
        return next((known for known in _CALL_RESULTS if known is value), None)


UNKNOWN_ITEM = Item()


def specialize(trace: Trace, feedback: Feedback, globals_: dict | None,
               profile: bool = False) -> list[str]:
    """Rewrite the trace's generic uops into typed ones; return what changed.
    With `profile`, generic uops left whose operand types are not proven get a
    _PROFILE uop in front (trace.profile_sites), for a later compilation."""
    specializer = Specializer(trace, feedback, globals_)
    try:
        states = analysis.analyze(trace, specializer.transfer)
    except analysis.AnalysisError as error:
        return [f"skipped: {error}"]
    changes = []
    new: list[UOp] = []
    for uop, state in zip(trace.uops, states):
        decision = None if state is None or uop.name == LABEL else specializer.decide(uop, state)
        if decision is None:
            count = PROFILED.get(uop.name, 0)
            if profile and count and state is not None:
                word = trace.new_cache(words=1)
                trace.profile_sites.append((uop.offset, count, word))
                new.append(UOp("_PROFILE", count, word, offset=uop.offset, exit_to=uop.exit_to,
                               exit_after=uop.exit_after, comment="types for the next compile"))
            elif profile and uop.name == "_CALL" and uop.operand0 == 0 and state is not None:
                word = trace.new_cache(words=1)
                trace.profile_sites.append((uop.offset, 0, word))
                new.append(UOp("_PROFILE_CALL", uop.oparg, word, offset=uop.offset,
                               exit_to=uop.exit_to, exit_after=uop.exit_after,
                               comment="what it calls, for the next compile"))
            new.append(uop)
            continue
        for depth, guarded in decision.guards:
            new.append(UOp("_GUARD_TYPE", depth, Obj(guarded), offset=uop.offset,
                           exit_to=uop.exit_to, exit_after=uop.exit_after,
                           comment=f"{guarded.__name__} predicted by {feedback.source}"))
        typed = uop.replace(name=decision.name)
        if decision.oparg is not KEEP:
            typed.oparg = decision.oparg
        if decision.operand0 is not KEEP:
            typed.operand0 = decision.operand0
        new.append(typed)
        guards = f" after guarding {', '.join(t.__name__ for _, t in decision.guards)}" \
            if decision.guards else ""
        changes.append(f"@{2 * uop.offset} {uop.name} -> {decision.name}{guards}")
    trace.uops[:] = new
    return changes
