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
import types
from typing import NamedTuple

from . import _runtime, analysis
from .analysis import ANY, NULL, UNBOUND, Item, Outcome, State, new
from .feedback import Feedback
from .ir import Obj, Trace, UOp, positions

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
# The method descriptor (list.append is list.__dict__["append"]) a method call
# uop does inline, in its operand0.
_INLINE_METHODS = {"_CALL_METHOD_DESCRIPTOR_O": Obj(list.append),
                   "_CALL_METHOD_DESCRIPTOR_FAST": Obj(dict.get)}
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
    "_CALL_LEN": int, "_CALL_ISINSTANCE": bool, "_CALL_RANGE": range,
}
_GET_ITER_SAFE = frozenset({list, tuple, dict, set, frozenset, str, bytes, range})
KEEP = object()

class _Choices:
    """What a generic uop becomes, by its operands' types: {key: choice} in
    order of preference, where a None in a key matches any type."""

    def __init__(self, choices: dict):
        self.pairs = tuple(choices.items())
        # Without Nones in the keys, the key that fits is the one equal to
        # the types: a dict lookup.
        self.by_key = None if any(None in key for key in choices) else dict(choices)

    def match(self, types_: tuple) -> tuple | None:
        """The first (key, choice) whose key fits `types_`, or None."""
        if self.by_key is not None:
            choice = self.by_key.get(types_)
            return None if choice is None else (types_, choice)
        for key, choice in self.pairs:
            if _matches(key, types_):
                return key, choice
        return None


_COMPARE_CHOICES = {  # by whether the comparison is == or != (str: those only)
    equality: _Choices({(t, t): name for t, name in _COMPARE.items() if equality or t is not str})
    for equality in (False, True)}
_UNARY_NEGATIVE_CHOICES = _Choices({(int,): ("_UNARY_NEGATIVE_INT", int),
                                    (float,): ("_UNARY_NEGATIVE_FLOAT", float)})
_BINARY_SUBSCR_CHOICES = _Choices({(list, int): "_BINARY_SUBSCR_LIST_INT",
                                   (tuple, int): "_BINARY_SUBSCR_TUPLE_INT",
                                   (dict, None): "_BINARY_SUBSCR_DICT"})
_STORE_SUBSCR_CHOICES = _Choices({(None, list, int): "_STORE_SUBSCR_LIST_INT",
                                  (None, dict, None): "_STORE_SUBSCR_DICT"})
_BINARY_CHOICES = {name: _Choices(choices) for name, choices in _BINARY.items()}
# The item a typed uop (or a build) pushes: one shared Item per type.
_RESULT_ITEMS = {name: Item(t) for name, t in {**_TYPED_RESULTS, **_BUILDS}.items()}
_TYPE_ITEMS = {t: Item(t) for t in (int, float, str, bool, ANY)}


class Decision(NamedTuple):
    """Replace a uop by `name` (with `oparg`/`operand0` unless KEEP), after
    checking `guards` ((depth, type): the item `depth` deep has that type)."""

    name: str
    outputs: tuple[Item, ...]
    oparg: object = KEEP
    operand0: object = KEEP
    guards: tuple[tuple[int, type], ...] = ()


def _exact(t) -> bool:
    return isinstance(t, type)


def _matches(key: tuple, types_: tuple) -> bool:
    """Whether operand types fit a choice's key (None in a key matches anything)."""
    for k, t in zip(key, types_):
        if k is not None and k is not t:
            return False
    return True


class Specializer:
    """Decisions for generic uops, and the analysis' transfer function that
    agrees with them.  Both dispatch on the uop's name through the tables
    after the class (_DECIDERS, _TRANSFERS): most uops have no entry, and
    the analysis asks for every uop it visits."""

    def __init__(self, trace: Trace, feedback: Feedback, globals_: dict | None):
        self.trace = trace
        self.feedback = feedback
        self.globals = globals_ if isinstance(globals_, dict) else {}
        b = self.globals.get("__builtins__", builtins.__dict__)
        self.builtins = b.__dict__ if isinstance(b, types.ModuleType) else b
        # While specialize analyzes: the decision of each uop's latest visit
        # (by id), and whether some uop was decided differently on two visits.
        self.decisions: dict[int, Decision | None] | None = None
        self.unstable = False
        # The last visit's decision of each uop by id: (uop, stack, decision).
        self._last_decision: dict[int, tuple] = {}

    def _decision(self, uop: UOp, state: State, decider) -> "Decision | None":
        """`decider`'s decision for `uop` at this visit of the analysis, noted
        (while specialize records them, in self.decisions: a uop decided
        differently on two visits makes them unstable).  A decider reads the
        uop's inputs on the stack, never the locals, so a revisit with the
        stack of the last visit (the usual one: the loop header's locals
        changed) has the last visit's decision, which is taken as it is (it
        was noted then)."""
        key = id(uop)
        last = self._last_decision.get(key)
        if last is not None and last[0] is uop and last[1] == state.stack:
            return last[2]
        decision = decider(self, uop, state)
        decisions = self.decisions
        if decisions is not None:
            if key in decisions and decisions[key] != decision:
                self.unstable = True
            decisions[key] = decision
        self._last_decision[key] = (uop, state.stack, decision)
        return decision

    # -- decisions for generic uops --

    def _predicted(self, uop: UOp, n: int) -> tuple:
        """Feedback for the top `n` operands (None where there is none)."""
        predicted = self.feedback.at(uop.offset)
        if predicted is None or len(predicted) < n:
            return (None,) * n
        return tuple(predicted[len(predicted) - n:])

    def _typed(self, choices: _Choices, uop: UOp, state: State, n: int):
        """The choice whose key matches the top `n` operands' types: proven
        types first, then proven types completed by feedback, with guards
        for the predicted ones."""
        stack = state.stack
        if len(stack) < n:
            return None, ()  # (generic_transfer reports the underflow)
        # (Loops, not comprehensions: this runs at most analysis visits, for
        # n <= 3 items, and a comprehension is a call of its own.)
        facts = ()
        for item in stack[len(stack) - n:]:
            fact = item.type
            facts += (fact if isinstance(fact, type) else None,)
        found = choices.match(facts)
        if found is not None:
            return found[1], ()  # all proven: nothing to guard
        if None not in facts:
            return None, ()  # (the feedback adds nothing)
        predicted = self._predicted(uop, n)
        completed = ()
        for fact, guess in zip(facts, predicted):
            completed += (guess if fact is None else fact,)
        found = choices.match(completed)
        if found is None:
            return None, ()
        key, choice = found
        guards = ()
        for i, k in enumerate(key):
            if k is not None and facts[i] is not k:
                guards += ((n - i, k),)
        return choice, guards

    def _call(self, uop: UOp, state: State) -> Decision | None:
        """A call of the kind the feedback saw, without keywords: a typed call
        uop; range() of one or two ints (or items of unknown type) without
        feedback: the uop checks that the callable is range."""
        if uop.operand0 != 0:
            return None
        stack = state.stack
        nargs = uop.oparg
        below, callee = stack[-(nargs + 2)], stack[-(nargs + 1)]
        if callee.hint is builtins.range and below.type is NULL and 1 <= nargs <= 2 \
                and uop.offset not in self.feedback.no_speculation \
                and all(item.type is int or item.type is ANY for item in stack[-nargs:]):
            return Decision("_CALL_RANGE", (_RANGE_ITEM,), operand0=Obj(builtins.range))
        kind = self.feedback.call_kind(uop.offset)
        if kind is None:
            return None
        if kind in _METHOD_CALLS:
            typed, wanted = _METHOD_CALLS[kind]
            if below.type is NULL or wanted not in (None, nargs):
                return None
            # (list.append and dict.get are done inline: see their stencils)
            return Decision(typed, (UNKNOWN_ITEM,), operand0=_INLINE_METHODS.get(typed, 0))
        if kind not in ("builtin_o", "builtin_fast") or below.type is not NULL:
            return None
        if callee.hint is builtins.len and nargs == 1:
            return Decision("_CALL_LEN", (Item(int),), operand0=Obj(builtins.len))
        if callee.hint is builtins.isinstance and nargs == 2:
            return Decision("_CALL_ISINSTANCE", (Item(bool),), operand0=Obj(builtins.isinstance))
        result = new(Item, (ANY, -1, _CALL_RESULTS.get(callee.hint)))
        if kind == "builtin_o" and nargs == 1:
            return Decision("_CALL_BUILTIN_O", (result,))
        if kind == "builtin_fast":
            return Decision("_CALL_BUILTIN_FAST", (result,))
        return None

    def decide(self, uop: UOp, state: State) -> Decision | None:
        """The typed uop (and guards) for a generic uop, or None."""
        decider = _DECIDERS.get(uop.name)
        return None if decider is None else decider(self, uop, state)

    def _decide_binary(self, uop: UOp, state: State) -> Decision | None:
        choice, guards = self._typed(_BINARY_CHOICES[uop.name], uop, state, 2)
        if choice is None:
            return None
        typed, oparg, result = choice
        return Decision(typed, (_TYPE_ITEMS[result],), KEEP if oparg is None else oparg,
                        guards=guards)

    def _decide_compare(self, uop: UOp, state: State) -> Decision | None:
        choice, guards = self._typed(_COMPARE_CHOICES[uop.oparg in (2, 3)], uop, state, 2)
        if choice is None:
            return None
        return Decision(choice, (_TYPE_ITEMS[bool],), guards=guards)

    def _decide_pop_jump(self, uop: UOp, state: State) -> Decision | None:
        if state.stack[-1].type is not bool:
            return None
        return Decision("_POP_JUMP_IF_BOOL", (), operand0=int(uop.name.endswith("TRUE")))

    def _decide_unary_negative(self, uop: UOp, state: State) -> Decision | None:
        choice, guards = self._typed(_UNARY_NEGATIVE_CHOICES, uop, state, 1)
        if choice is None:
            return None
        return Decision(choice[0], (_TYPE_ITEMS[choice[1]],), guards=guards)

    def _decide_unary_not(self, uop: UOp, state: State) -> Decision | None:
        if state.stack[-1].type is not bool:
            return None
        return Decision("_UNARY_NOT_BOOL", (_TYPE_ITEMS[bool],))

    def _decide_binary_subscr(self, uop: UOp, state: State) -> Decision | None:
        choice, guards = self._typed(_BINARY_SUBSCR_CHOICES, uop, state, 2)
        if choice is None:
            return None
        return Decision(choice, (UNKNOWN_ITEM,), guards=guards)

    def _decide_store_subscr(self, uop: UOp, state: State) -> Decision | None:
        choice, guards = self._typed(_STORE_SUBSCR_CHOICES, uop, state, 3)
        if choice is None:
            return None
        return Decision(choice, (), guards=guards)

    def _decide_for_iter(self, uop: UOp, state: State) -> Decision | None:
        item = state.stack[-1]
        kind = item.type if _exact(item.type) else item.hint or self._predicted(uop, 1)[0]
        if kind not in _FOR_ITER:
            return None
        typed, element = _FOR_ITER[kind]
        return Decision(typed, (item, _TYPE_ITEMS[element]))

    def _decide_get_iter(self, uop: UOp, state: State) -> Decision | None:
        item = state.stack[-1]
        kind = item.type if _exact(item.type) else self._predicted(uop, 1)[0]
        if kind not in _GET_ITER_SAFE:
            return None
        fact = _GET_ITER_FACTS.get(kind, ANY)
        hint = RANGE_ITER if kind is range else None
        guards = () if item.type is kind else ((1, kind),)
        return Decision("_GET_ITER_BUILTIN", (Item(fact, hint=hint),), guards=guards)

    def _decide_unpack_sequence(self, uop: UOp, state: State) -> Decision | None:
        item = state.stack[-1]
        if not {item.type, item.hint, self._predicted(uop, 1)[0]} & {tuple, list}:
            return None
        return Decision("_UNPACK_SEQUENCE_EXACT", (UNKNOWN_ITEM,) * uop.oparg)

    # -- the analysis' transfer function --

    def transfer(self, uop: UOp, state: State) -> Outcome | None:
        """What `uop` does to `state` (None: only its generic stack effect,
        analysis.generic_transfer)."""
        handler = _TRANSFERS.get(uop.name)
        if handler is not None:
            return handler(uop, state)
        method = _METHOD_TRANSFERS.get(uop.name)
        return None if method is None else method(self, uop, state)

    def transfers(self) -> dict:
        """The analysis' transfer functions by uop name (analysis.Transfers):
        the static ones as they are, the others bound to this specializer.
        (The analysis calls them directly: a call through `transfer` for
        every visit would cost a tenth of the analysis.)  Not kept on the
        specializer: its bound methods would make a reference cycle, and
        the trace it holds would wait for the garbage collector."""
        table = dict(_TRANSFERS)
        for method, names in _SPECIALIZER_TRANSFERS:
            table.update(dict.fromkeys(names, method.__get__(self)))
        return table

    # (The transfer functions that need nothing of the specializer are static
    # methods; those of the most common uops make their Item with analysis.new,
    # the fast way.)

    @staticmethod
    def _delete_fast(uop: UOp, state: State) -> Outcome:
        return (state.store(uop.oparg, UNBOUND), None)

    @staticmethod
    def _load_const(uop: UOp, state: State) -> Outcome:
        kind = type(uop.operand0.value)
        item = _CONST_ITEMS.get(kind)
        if item is None:
            item = _CONST_ITEMS[kind] = new(Item, (kind, -1, None))
        return (new(State, (state.stack + (item,), state.locals)), None)

    @staticmethod
    def _push_null(uop: UOp, state: State) -> Outcome:
        return (state.push(_NULL_ITEM), None)

    @staticmethod
    def _copy(uop: UOp, state: State) -> Outcome:
        stack = state.stack
        return (new(State, (stack + (stack[-uop.oparg],), state.locals)), None)

    @staticmethod
    def _swap(uop: UOp, state: State) -> Outcome:
        items = list(state.stack)
        items[-1], items[-uop.oparg] = items[-uop.oparg], items[-1]
        return (new(State, (tuple(items), state.locals)), None)

    def _load_global_cached(self, uop: UOp, state: State) -> Outcome:
        hint = self._global_hint(uop.operand0.value)
        return (state.push(new(Item, (ANY, -1, hint))), None)

    @staticmethod
    def _push_null_under(uop: UOp, state: State) -> Outcome:
        return (state.pop_push(1, (_NULL_ITEM, state.stack[-1])), None)

    def _transfer_call(self, uop: UOp, state: State) -> Outcome:
        decision = self._decision(uop, state, Specializer._call)
        if decision is not None:
            return self._decided(uop, state, decision)
        stack = state.stack
        callee = stack[-(uop.oparg + 1)]
        below = stack[-(uop.oparg + 2)]
        result = _CALL_RESULTS.get(callee.hint) if below.type is NULL else None
        return (state.pop_push(uop.oparg + 2, (new(Item, (ANY, -1, result)),)), None)

    @staticmethod
    def _typed_result(uop: UOp, state: State) -> Outcome:
        pops = analysis.EFFECTS[uop.name, uop.oparg].pops
        return (state.pop_push(pops, (_RESULT_ITEMS[uop.name],)), None)

    def _transfer_get_iter(self, uop: UOp, state: State) -> Outcome | None:
        decision = self._decision(uop, state, Specializer._decide_get_iter)
        if decision is None:
            if state.stack[-1].hint is range:
                return (state.pop_push(1, (_RANGE_ITER_ITEM,)), None)
            return None
        return self._decided(uop, state, decision)

    @staticmethod
    def _builtin_call(uop: UOp, state: State) -> Outcome:
        """A typed builtin call pushes what its decision (_call) said: the
        callee's probable result as a hint (and so does _CALL_FUNCTION: a
        _CALL decided nothing for, under a NULL)."""
        callee = state.stack[-(uop.oparg + 1)]
        result = new(Item, (ANY, -1, _CALL_RESULTS.get(callee.hint)))
        return (state.pop_push(uop.oparg + 2, (result,)), None)

    @staticmethod
    def _get_iter_builtin(uop: UOp, state: State) -> Outcome:
        iterable = state.stack[-1].type
        fact = _GET_ITER_FACTS.get(iterable, ANY)
        hint = RANGE_ITER if iterable is range else None
        return (state.pop_push(1, (new(Item, (fact, -1, hint)),)), None)

    @staticmethod
    def _range_iter(uop: UOp, state: State) -> Outcome:
        """_CALL_RANGE and _GET_ITER_BUILTIN fused: what the pair pushes."""
        return (state.pop_push(uop.oparg + 2, (_RANGE_ITER_ITEM,)), None)

    @staticmethod
    def _build(uop: UOp, state: State) -> Outcome:
        return (analysis.generic_transfer(uop, state)[0].pop_push(1, (_RESULT_ITEMS[uop.name],)),
                None)

    def _transfer_for_iter(self, uop: UOp, state: State) -> Outcome:
        decision = self._decision(uop, state, Specializer._decide_for_iter)
        element = decision.outputs[1] if decision else _TYPE_ITEMS[ANY]
        return (state.push(element), state.pop(1))

    @staticmethod
    def _typed_for_iter(uop: UOp, state: State) -> Outcome:
        element = _TYPE_ITEMS[int if uop.name == "_FOR_ITER_RANGE" else ANY]
        return (state.push(element), state.pop(1))

    def _transfer_decided(self, uop: UOp, state: State) -> Outcome | None:
        decision = self._decision(uop, state, _DECIDERS[uop.name])
        return None if decision is None else self._decided(uop, state, decision)

    @staticmethod
    def _decided(uop: UOp, state: State, decision: Decision) -> Outcome:
        """What the typed uop of `decision` does, after its guards: each
        proves the type of the local its item was loaded from."""
        for depth, guarded in decision.guards:
            alias = state.stack[-depth].alias
            if alias >= 0 and state.locals[alias] is not UNBOUND:
                state = state.refine(alias, guarded)
        effect = analysis.EFFECTS[uop.name, uop.oparg]
        stack = state.stack
        after = new(State, (stack[:len(stack) - effect.pops] + decision.outputs, state.locals))
        return (after, after if effect.jumps else None)

    def _global_hint(self, name: str):
        value = self.globals.get(name, self.builtins.get(name) if isinstance(self.builtins, dict)
                                 else None)
        # By identity: a global may be anything, unhashable included.
        return next((known for known in _CALL_RESULTS if known is value), None)


UNKNOWN_ITEM = Item()
# The item a _LOAD_FAST pushes, by (the local's type or ANY, the local), and
# the item a _LOAD_CONST pushes, by the constant's type: made once (an Item
# takes longer to make than to look up).
_LOADED_ITEMS: dict[tuple, Item] = {}
_CONST_ITEMS: dict[type, Item] = {}
_RANGE_ITEM = Item(range)
_RANGE_ITER_ITEM = Item(ANY, hint=RANGE_ITER)  # (a long range's iterator is another type)
_NULL_ITEM = Item(NULL)

# The transfer function of _LOAD_FAST, the commonest uop: it pushes the
# local's item from _LOADED_ITEMS (made there on first use).  In C
# (csrc/transfer.c): as a Python function it took a fiftieth of a compilation.
_LOAD_FAST = _runtime.LoadFastTransfer(State, Item, _LOADED_ITEMS, ANY)
# Those of _STORE_FAST (State.store of the top item's type, popped), _GUARD_TYPE
# (the guarded item proven: State.refine of the local it was loaded from, or
# the item replaced) and _GUARD_LOCAL_TYPE (State.refine), in C too: after a
# pass inserts uops the analysis runs again on typed uops, and as Python they
# were some 40 % of it.
_STORE_FAST, _GUARD_TYPE, _GUARD_LOCAL_TYPE = (
    _runtime.StateTransfer(name, State, Item, UNBOUND, analysis.AnalysisError)
    for name in ("_STORE_FAST", "_GUARD_TYPE", "_GUARD_LOCAL_TYPE"))

# Generic uop name -> the Specializer method that decides it.
_DECIDERS = {
    **{name: Specializer._decide_binary for name in _BINARY},
    "_COMPARE_OP": Specializer._decide_compare,
    "_CALL": Specializer._call,
    "_POP_JUMP_IF_FALSE": Specializer._decide_pop_jump,
    "_POP_JUMP_IF_TRUE": Specializer._decide_pop_jump,
    "_UNARY_NEGATIVE": Specializer._decide_unary_negative,
    "_UNARY_NOT": Specializer._decide_unary_not,
    "_BINARY_SUBSCR": Specializer._decide_binary_subscr,
    "_STORE_SUBSCR": Specializer._decide_store_subscr,
    "_FOR_ITER": Specializer._decide_for_iter,
    "_GET_ITER": Specializer._decide_get_iter,
    "_UNPACK_SEQUENCE": Specializer._decide_unpack_sequence,
}
# Uop name -> its transfer function, for those that need nothing of the
# specializer (static methods: (uop, state) -> Outcome | None); uops without
# an entry here or in _SPECIALIZER_TRANSFERS have only their generic stack
# effect.  (_UNARY_NOT pushes a bool either way.)
_TRANSFERS = {
    **{name: Specializer._typed_result for name in _TYPED_RESULTS},
    **{name: Specializer._build for name in _BUILDS},
    "_LOAD_FAST": _LOAD_FAST,
    "_STORE_FAST": _STORE_FAST,
    "_DELETE_FAST": Specializer._delete_fast,
    "_LOAD_CONST": Specializer._load_const,
    "_PUSH_NULL": Specializer._push_null,
    "_PUSH_NULL_UNDER": Specializer._push_null_under,
    "_COPY": Specializer._copy,
    "_SWAP": Specializer._swap,
    "_GUARD_TYPE": _GUARD_TYPE,
    "_GUARD_LOCAL_TYPE": _GUARD_LOCAL_TYPE,
    "_CALL_BUILTIN_O": Specializer._builtin_call,
    "_CALL_BUILTIN_FAST": Specializer._builtin_call,
    "_CALL_FUNCTION": Specializer._builtin_call,  # (what an undecided _CALL pushes)
    "_GET_ITER_BUILTIN": Specializer._get_iter_builtin,
    "_RANGE_ITER": Specializer._range_iter,
    **{name: Specializer._typed_for_iter
       for name in ("_FOR_ITER_RANGE", "_FOR_ITER_LIST", "_FOR_ITER_TUPLE")},
}
# (Specializer method, the uop names it is the transfer function of) for
# those that need the specializer (its feedback, globals, the decisions it
# records): uops that decide transfer as their typed uop would (but
# _UNARY_NOT, a build in _TRANSFERS).
_SPECIALIZER_TRANSFERS = (
    (Specializer._transfer_decided,
     tuple(name for name in _DECIDERS
           if name not in _TRANSFERS and name not in ("_CALL", "_GET_ITER", "_FOR_ITER"))),
    (Specializer._transfer_call, ("_CALL",)),
    (Specializer._transfer_get_iter, ("_GET_ITER",)),
    (Specializer._transfer_for_iter, ("_FOR_ITER",)),
    (Specializer._load_global_cached, ("_LOAD_GLOBAL_CACHED",)),
)
_METHOD_TRANSFERS = {name: method for method, names in _SPECIALIZER_TRANSFERS for name in names}
assert not _METHOD_TRANSFERS.keys() & _TRANSFERS.keys()


def specialize(trace: Trace, feedback: Feedback, globals_: dict | None,
               profile: bool = False,
               made: tuple[Specializer, dict] | None = None) -> list[str]:
    """Rewrite the trace's generic uops into typed ones; return what changed.
    With `profile`, generic uops left whose operand types are not proven get a
    _PROFILE uop in front (trace.profile_sites), for a later compilation.

    The analysis of the typed trace is handed on (see _Rewrite) when every
    visit of every uop was decided alike: each typed uop's transfer, after
    its guards', is then what the generic uop's did at each visit.
    `made`: a Specializer for this trace and its transfers() (else made
    here), which the passes after this one go on analyzing with."""
    specializer, transfers = made or (None, None)
    if specializer is None:
        specializer = Specializer(trace, feedback, globals_)
        transfers = specializer.transfers()
    specializer.decisions = {}
    try:
        analyzed = analysis.analysis_of(trace, transfers)
    except analysis.AnalysisError as error:
        return [f"skipped: {error}"]
    # (An analysis made before was not recorded: decide again.)
    decisions = specializer.decisions if specializer.decisions and not specializer.unstable \
        else None
    specializer.decisions = None
    rewrite = _Rewrite(trace, specializer, profile, analyzed, keep_states=decisions is not None)
    uops = trace.uops
    copied = 0  # (the uops before index `copied` are in the rewrite)
    # (Every uop PROFILED, and _CALL, has a decider; the others, and
    # unreachable uops, are copied as they are, a run at a time.)
    for index in positions(uops, _DECIDERS):
        state = analyzed.states[index]
        if state is None:
            continue
        rewrite.copy(copied, index)
        uop = uops[index]
        # (_UNARY_NOT transfers as _build, deciding nothing: it pushes
        # a bool either way.)
        decision = decisions.get(id(uop), KEEP) if decisions is not None else KEEP
        if decision is KEEP:
            decision = _DECIDERS[uop.name](specializer, uop, state)
        rewrite.decided(index, uop, decision)
        copied = index + 1
    rewrite.copy(copied, len(uops))
    trace.uops[:] = rewrite.uops
    if rewrite.states is not None:
        analysis.keep(trace, rewrite.states, rewrite.altered)
    return rewrite.changes


class _Rewrite:
    """The typed trace specialize makes, with its analysis (`states` and
    `altered` as in analysis._Analysis) when that is handed on: a copied uop
    keeps its state, a _PROFILE before it has the same (it changes nothing),
    and a guard's state and the typed uop's follow from the generic uop's by
    the guards' transfers."""

    def __init__(self, trace: Trace, specializer: Specializer, profile: bool,
                 analyzed, keep_states: bool):
        self.trace = trace
        self.specializer = specializer
        self.profile = profile
        self.old_states = analyzed.states
        self.old_altered = analyzed.altered
        self.uops: list[UOp] = []
        self.changes: list[str] = []
        self.states: list[State | None] | None = [] if keep_states else None
        self.altered = bytearray()

    def copy(self, start: int, stop: int) -> None:
        """Copy the uops `start` to `stop` (excluded) as they are."""
        self.uops.extend(self.trace.uops[start:stop])
        if self.states is not None:
            self.states.extend(self.old_states[start:stop])
            self.altered.extend(self.old_altered[start:stop])

    def added(self, uop: UOp, state: State, altered: bool) -> None:
        self.uops.append(uop)
        if self.states is not None:
            self.states.append(state)
            self.altered.append(altered)

    def decided(self, index: int, uop: UOp, decision: Decision | None) -> None:
        trace = self.trace
        state = self.old_states[index]
        if decision is None:
            count = PROFILED.get(uop.name, 0)
            if self.profile and count:
                word = trace.new_cache(words=1)
                trace.profile_sites.append((uop.offset, count, word))
                self.added(UOp("_PROFILE", count, word, offset=uop.offset, exit_to=uop.exit_to,
                               exit_after=uop.exit_after, comment="types for the next compile"),
                           state, False)
            elif self.profile and uop.name == "_CALL" and uop.operand0 == 0:
                word = trace.new_cache(words=1)
                trace.profile_sites.append((uop.offset, 0, word))
                self.added(UOp("_PROFILE_CALL", uop.oparg, word, offset=uop.offset,
                               exit_to=uop.exit_to, exit_after=uop.exit_after,
                               comment="what it calls, for the next compile"), state, False)
            if uop.name == "_CALL" and uop.operand0 == 0 \
                    and state.stack[-(uop.oparg + 2)].type is NULL:
                # A plain call (no method, no keywords): the uop without their cases.
                self.added(uop.replace(name="_CALL_FUNCTION"), state, self.old_altered[index])
                self.changes.append(f"@{2 * uop.offset} _CALL -> _CALL_FUNCTION")
                return
            self.copy(index, index + 1)
            return
        source = self.specializer.feedback.source
        for depth, guarded in decision.guards:
            guard = UOp("_GUARD_TYPE", depth, Obj(guarded), offset=uop.offset,
                        exit_to=uop.exit_to, exit_after=uop.exit_after,
                        comment=f"{guarded.__name__} predicted by {source}")
            after = state
            if self.states is not None:
                after = _GUARD_TYPE(guard, state)[0]
            self.added(guard, state, after is not state)
            state = after
        typed = uop.replace(name=decision.name)
        if decision.oparg is not KEEP:
            typed.oparg = decision.oparg
        if decision.operand0 is not KEEP:
            typed.operand0 = decision.operand0
        self.added(typed, state, self.old_altered[index])
        guards = f" after guarding {', '.join(t.__name__ for _, t in decision.guards)}" \
            if decision.guards else ""
        self.changes.append(f"@{2 * uop.offset} {uop.name} -> {decision.name}{guards}")
