"""CPython 3.11: decoding its bytecode and lowering each instruction to uops."""

from __future__ import annotations

import opcode
import operator
import types
import weakref
from typing import Callable

from bytecode import ConcreteBytecode
from bytecode.instr import UNSET

from ..ir import CACHE_ENTRIES, CACHE_WORDS, CodeUnit, Instruction, Obj, Sym, UOp

VERSION = (3, 11)

_CACHES = {name: opcode._inline_cache_entries[number] for name, number in opcode.opmap.items()}

FORWARD_JUMPS = frozenset({
    "JUMP_FORWARD", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
    "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE", "JUMP_IF_FALSE_OR_POP",
    "JUMP_IF_TRUE_OR_POP", "FOR_ITER", "SEND",
})
BACKWARD_JUMPS = frozenset({
    "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "POP_JUMP_BACKWARD_IF_FALSE",
    "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE",
})
# Instructions after which control never falls through to the next one.
NO_FALLTHROUGH = frozenset({
    "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE",
    "RAISE_VARARGS", "RERAISE",
})
GENERATOR_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


# Tier 1's specialized instructions and the operand types they prove it saw
# (deepest first; None: any).
_RANGE_ITER = type(iter(range(0)))
TIER1_OPERAND_TYPES = {
    "BINARY_OP_ADD_INT": (int, int),
    "BINARY_OP_SUBTRACT_INT": (int, int),
    "BINARY_OP_MULTIPLY_INT": (int, int),
    "BINARY_OP_ADD_FLOAT": (float, float),
    "BINARY_OP_SUBTRACT_FLOAT": (float, float),
    "BINARY_OP_MULTIPLY_FLOAT": (float, float),
    "BINARY_OP_ADD_UNICODE": (str, str),
    "BINARY_OP_INPLACE_ADD_UNICODE": (str, str),
    "COMPARE_OP_INT_JUMP": (int, int),
    "COMPARE_OP_FLOAT_JUMP": (float, float),
    "COMPARE_OP_STR_JUMP": (str, str),
    "BINARY_SUBSCR_LIST_INT": (list, int),
    "BINARY_SUBSCR_TUPLE_INT": (tuple, int),
    "BINARY_SUBSCR_DICT": (dict, None),
    "STORE_SUBSCR_LIST_INT": (None, list, int),
    "STORE_SUBSCR_DICT": (None, dict, None),
    "UNPACK_SEQUENCE_TWO_TUPLE": (tuple,),
    "UNPACK_SEQUENCE_TUPLE": (tuple,),
    "UNPACK_SEQUENCE_LIST": (list,),
}

# Tier 1's specialized PRECALLs: the kind of call (cpjit/feedback.py CALL_KINDS).
TIER1_CALL_KINDS = {
    "PRECALL_NO_KW_BUILTIN_O": "builtin_o",
    "PRECALL_NO_KW_LEN": "builtin_o",
    "PRECALL_NO_KW_BUILTIN_FAST": "builtin_fast",
    "PRECALL_NO_KW_ISINSTANCE": "builtin_fast",
    "PRECALL_NO_KW_METHOD_DESCRIPTOR_NOARGS": "method_noargs",
    "PRECALL_NO_KW_METHOD_DESCRIPTOR_O": "method_o",
    "PRECALL_NO_KW_LIST_APPEND": "method_o",
    "PRECALL_NO_KW_METHOD_DESCRIPTOR_FAST": "method_fast",
}

try:
    from dis import _all_opname as _ADAPTIVE_NAMES  # 3.11: specialized names too
except ImportError:  # pragma: no cover
    _ADAPTIVE_NAMES = opcode.opname


# By opcode: the name of a specialized instruction, None for an adaptive one
# (waiting to specialize: it says nothing yet).
_SPECIALIZED_NAMES = tuple(None if name.endswith("_ADAPTIVE") else name
                           for name in _ADAPTIVE_NAMES)


def specialized(code: types.CodeType, instructions: list[Instruction]) -> list[tuple[int, str]]:
    """(index, name) of each of `instructions` that tier 1 specialized, in
    order: its opcode in the code object's adaptive bytecode is another one
    than its own, and not an adaptive one."""
    opcodes = code._co_code_adaptive[::2]  # one per code unit
    count = len(opcodes)
    names = _SPECIALIZED_NAMES
    found = []
    for index, ins in enumerate(instructions):
        offset = ins.offset
        if offset < count:
            name = names[opcodes[offset]]
            if name is not None and name != ins.name:
                found.append((index, name))
    return found


_decoded: "weakref.WeakKeyDictionary[types.CodeType, tuple]" = weakref.WeakKeyDictionary()


def decode(code: types.CodeType) -> tuple[list[Instruction], list]:
    """The instructions of `code` (EXTENDED_ARG folded in, caches skipped) and its
    exception table, read with the `bytecode` package.  A code object is read
    once (a function is usually compiled twice: with a profile, then from it);
    the instructions are immutable, each call gets its own lists."""
    known = _decoded.get(code)
    if known is None:
        known = _decoded[code] = _decode(code)
    instructions, table = known
    return list(instructions), list(table)


def forget_decoded() -> None:
    """Forget every code object read (so that the next compilation of each
    reads its bytecode again, as a first one does: for compile-time benchmarks)."""
    _decoded.clear()


def _decode(code: types.CodeType) -> tuple[list[Instruction], list]:
    # With extended_arg=True the package keeps each EXTENDED_ARG prefix and
    # each inline CACHE entry an instruction of its own: one per code unit,
    # so an instruction's index is its offset.  The walk steps over each
    # instruction's cache entries (their number is fixed by its opcode).
    concrete = ConcreteBytecode.from_code(code, extended_arg=True)
    units = list(concrete)  # (its own __getitem__ is a Python method)
    caches, forward, backward = _CACHES, FORWARD_JUMPS, BACKWARD_JUMPS
    read = _READ
    new = tuple.__new__
    instructions = []
    prefixed = False  # whether some instruction has EXTENDED_ARG prefixes
    start = None
    extended = offset = 0
    count = len(units)
    while offset < count:
        name, arg, location = read(units[offset])
        if name == "EXTENDED_ARG" or name == "CACHE":  # (a CACHE here: not from the compiler)
            if name == "EXTENDED_ARG":
                if start is None:
                    start = offset
                extended = (extended << 8) | arg
            offset += 1
            continue
        if arg is UNSET:
            arg = None
        elif start is not None:
            arg |= extended << 8
        jump = None
        if name in forward:
            jump = offset + 1 + arg
        elif name in backward:
            jump = offset + 1 - arg
        following = offset + 1 + caches.get(name, 0)
        if start is None:
            start = offset
        else:
            prefixed = True
        instructions.append(new(Instruction, (
            offset, start, name, arg, following,
            location.lineno if location is not None else None, jump, following)))
        start, extended, offset = None, 0, following
    if prefixed:
        # Jumps and fall-through go to an instruction's first prefix: name
        # the instruction itself (side exits still resume at its `start`,
        # and the interpreter after one at `after`).
        at_start = {ins.start: ins.offset for ins in instructions if ins.start != ins.offset}
        for index, ins in enumerate(instructions):
            offset, start, name, arg, following, line, jump, after = ins
            if following in at_start or jump in at_start:
                instructions[index] = new(Instruction, (
                    offset, start, name, arg, at_start.get(following, following), line,
                    at_start.get(jump, jump), after))
    return instructions, list(concrete.exception_table)


# What _decode reads of each of the package's instructions (properties).
_READ = operator.attrgetter("name", "arg", "location")


def nlocalsplus(code: types.CodeType) -> int:
    cells_not_args = set(code.co_cellvars) - set(code.co_varnames)
    return len(code.co_varnames) + len(cells_not_args) + len(code.co_freevars)


# BINARY_OP oparg -> (uop, generic C-API function).  Operators without an
# inline fast path use the generic _BINARY_OP.
_BINARY_OPS = {}
for _index, (_name, _symbol) in enumerate(opcode._nb_ops):
    _base = _name.replace("NB_INPLACE_", "").replace("NB_", "")
    _inplace = "INPLACE" in _name
    _function = {
        "ADD": "Add", "AND": "And", "FLOOR_DIVIDE": "FloorDivide", "LSHIFT": "Lshift",
        "MATRIX_MULTIPLY": "MatrixMultiply", "MULTIPLY": "Multiply", "REMAINDER": "Remainder",
        "OR": "Or", "POWER": "Power", "RSHIFT": "Rshift", "SUBTRACT": "Subtract",
        "TRUE_DIVIDE": "TrueDivide", "XOR": "Xor",
    }[_base]
    _c_function = f"PyNumber_{'InPlace' if _inplace else ''}{_function}"
    if _base == "POWER":  # PyNumber_Power takes a modulus: the runtime's two-argument forms
        _c_function = "cpjit_inplace_power" if _inplace else "cpjit_power"
    _uop = f"_BINARY_OP_{_base}" if _base in {
        "ADD", "SUBTRACT", "MULTIPLY", "TRUE_DIVIDE", "FLOOR_DIVIDE", "REMAINDER", "AND", "OR",
        "XOR"} else "_BINARY_OP"
    _BINARY_OPS[_index] = (_uop, _c_function, _symbol)

_CONVERSIONS = {0: 0, 1: Sym("PyObject_Str"), 2: Sym("PyObject_Repr"), 3: Sym("PyObject_ASCII")}


class Lowering:
    """Lowers the instructions of one code object, in order, to uops."""

    def __init__(self, code: types.CodeType, trace):
        self.code = code
        self.trace = trace  # inline caches reserve their words in it
        self.kwnames = None
        self.call_start = None  # start of the KW_NAMES/PRECALL/CALL group
        # Local names by index, as the frame lays them out (for uop comments).
        self.local_names = (code.co_varnames
                            + tuple(n for n in code.co_cellvars if n not in code.co_varnames)
                            + code.co_freevars)

    def lower(self, ins: Instruction) -> list[UOp] | None:
        """The uops of `ins`, or None when it is not compiled (the code side-exits)."""
        return self.lower_all([ins])[0]

    def lower_all(self, instructions: list[Instruction]) -> list[list[UOp] | None]:
        """lower() of each instruction, in order.  Most instructions are one
        uop made from a table (_ONE_UOP) right here; the others call their
        method (the loop of a translation: a UOp costs less than the calls
        that would make it)."""
        one_uop, methods = _ONE_UOP, _LOWERINGS
        local = self._local
        lowered = []
        for ins in instructions:
            simple = one_uop.get(ins.name)
            if simple is None:
                method = methods.get(ins.name)
                lowered.append(None if method is None else method(self, ins))
                continue
            name, takes_arg, names_local, jumps = simple
            arg = ins.arg
            lowered.append([UOp(name, arg if takes_arg else 0, 0, 0, ins.offset, ins.start,
                                ins.jump_target if jumps else -1,
                                local(arg) if names_local else "", ins.after)])
        return lowered

    # -- helpers --

    def _u(self, name: str, ins: Instruction, oparg: int = 0, operand0=0, operand1=0,
           jump: bool = False, comment: str = "") -> UOp:
        return UOp(name, oparg, operand0, operand1, ins.offset, ins.start,
                   ins.jump_target if jump else -1, comment, ins.after)

    def _name(self, index: int) -> str:
        return self.code.co_names[index]

    # -- frame, locals, constants (LOAD_FAST and the like: _ONE_UOP) --

    def NOP(self, ins):
        return []

    def RESUME(self, ins):
        uops = [self._u("_SET_IP", ins, operand0=CodeUnit(ins.offset))]
        if ins.arg < 2:
            uops.append(self._u("_CHECK_EVAL_BREAKER", ins))
        return uops

    def COPY_FREE_VARS(self, ins):
        first = nlocalsplus(self.code) - len(self.code.co_freevars)
        return [self._u("_COPY_FREE_VARS", ins, ins.arg, first)]

    def _local(self, index: int) -> str:
        names = self.local_names
        return names[index] if index < len(names) else f"local{index}"

    def LOAD_CONST(self, ins):
        return [self._u("_LOAD_CONST", ins, operand0=Obj(self.code.co_consts[ins.arg]))]

    def LOAD_ASSERTION_ERROR(self, ins):
        return [self._u("_LOAD_CONST", ins, operand0=Obj(AssertionError))]

    # -- globals and attributes --

    def LOAD_GLOBAL(self, ins):
        name = self._name(ins.arg >> 1)
        load = self._u("_LOAD_GLOBAL_CACHED", ins, 0, Obj(name), self.trace.new_cache(),
                       comment=name)
        return [load, self._u("_PUSH_NULL_UNDER", ins)] if ins.arg & 1 else [load]

    def STORE_GLOBAL(self, ins):
        name = self._name(ins.arg)
        return [self._u("_STORE_GLOBAL", ins, operand0=Obj(name), comment=name)]

    def LOAD_ATTR(self, ins):
        name = self._name(ins.arg)
        return [self._u("_LOAD_ATTR_CACHED", ins, operand0=Obj(name),
                        operand1=self.trace.new_cache(CACHE_WORDS * CACHE_ENTRIES), comment=name)]

    def LOAD_METHOD(self, ins):
        name = self._name(ins.arg)
        return [self._u("_LOAD_METHOD_CACHED", ins, operand0=Obj(name),
                        operand1=self.trace.new_cache(CACHE_WORDS * CACHE_ENTRIES), comment=name)]

    def STORE_ATTR(self, ins):
        name = self._name(ins.arg)
        return [self._u("_STORE_ATTR_CACHED", ins, operand0=Obj(name),
                        operand1=self.trace.new_cache(CACHE_WORDS * CACHE_ENTRIES), comment=name)]

    def DELETE_ATTR(self, ins):
        name = self._name(ins.arg)
        return [self._u("_DELETE_ATTR", ins, operand0=Obj(name), comment=name)]

    # -- calls: KW_NAMES and PRECALL only prepare CALL --

    def KW_NAMES(self, ins):
        self.kwnames = self.code.co_consts[ins.arg]
        self.call_start = ins.start
        return []

    def PRECALL(self, ins):
        if self.call_start is None:
            self.call_start = ins.start
        return []

    def CALL(self, ins):
        kwnames, start = self.kwnames, self.call_start
        self.kwnames = self.call_start = None
        uop = self._u("_CALL", ins, ins.arg, Obj(kwnames) if kwnames else 0,
                      comment=f"kw={kwnames}" if kwnames else "")
        # A side exit must redo the whole call sequence: KW_NAMES sets state
        # the interpreter keeps in a C variable.
        uop.exit_to = start if start is not None else ins.start
        return [uop]

    # -- operators --

    def BINARY_OP(self, ins):
        uop, function, symbol = _BINARY_OPS[ins.arg]
        return [self._u(uop, ins, operand0=Sym(function), comment=symbol)]

    def UNARY_POSITIVE(self, ins):
        return [self._u("_UNARY_OP", ins, operand0=Sym("PyNumber_Positive"))]

    def UNARY_INVERT(self, ins):
        return [self._u("_UNARY_OP", ins, operand0=Sym("PyNumber_Invert"))]

    def COMPARE_OP(self, ins):
        return [self._u("_COMPARE_OP", ins, ins.arg, comment=opcode.cmp_op[ins.arg])]

    # -- jumps (forward ones: _ONE_UOP) --

    def JUMP_BACKWARD(self, ins):
        return [self._u("_CHECK_EVAL_BREAKER", ins),
                self._u("_JUMP", ins, jump=True)]

    def _backward(uop: str):
        """The lowering of a POP_JUMP_BACKWARD_IF_*: `uop`, after an
        eval-breaker check."""
        def lower(self, ins):
            return [self._u("_CHECK_EVAL_BREAKER", ins), self._u(uop, ins, jump=True)]
        return lower

    POP_JUMP_BACKWARD_IF_FALSE = _backward("_POP_JUMP_IF_FALSE")
    POP_JUMP_BACKWARD_IF_TRUE = _backward("_POP_JUMP_IF_TRUE")
    POP_JUMP_BACKWARD_IF_NONE = _backward("_POP_JUMP_IF_NONE")
    POP_JUMP_BACKWARD_IF_NOT_NONE = _backward("_POP_JUMP_IF_NOT_NONE")
    del _backward

    # -- containers and the rest --

    def RAISE_VARARGS(self, ins):
        if ins.arg not in (1, 2):
            return None  # a bare `raise` re-raises: the interpreter's own path
        return [self._u("_RAISE_VARARGS", ins, ins.arg)]

    def BUILD_SLICE(self, ins):
        return [self._u("_BUILD_SLICE", ins, 1 if ins.arg == 3 else 0)]

    def BUILD_STRING(self, ins):
        return [self._u("_BUILD_STRING", ins, ins.arg, Obj(""))]

    def FORMAT_VALUE(self, ins):
        have_spec = 1 if ins.arg & 0x4 else 0
        return [self._u("_FORMAT_VALUE", ins, have_spec, _CONVERSIONS[ins.arg & 0x3])]


# Instructions lowered to one uop that takes nothing from the instruction but
# its arg: (uop, its oparg is the arg, its comment names the local `arg`, it
# jumps to the instruction's jump target).  (Else its oparg is 0.)
_ONE_UOP: dict[str, tuple[str, bool, bool, bool]] = {
    # frame, locals, stack
    "LOAD_FAST": ("_LOAD_FAST", True, True, False),
    "LOAD_CLOSURE": ("_LOAD_FAST", True, True, False),
    "STORE_FAST": ("_STORE_FAST", True, True, False),
    "DELETE_FAST": ("_DELETE_FAST", True, True, False),
    "LOAD_DEREF": ("_LOAD_DEREF", True, True, False),
    "STORE_DEREF": ("_STORE_DEREF", True, True, False),
    "MAKE_CELL": ("_MAKE_CELL", True, False, False),
    "POP_TOP": ("_POP_TOP", False, False, False),
    "PUSH_NULL": ("_PUSH_NULL", False, False, False),
    "COPY": ("_COPY", True, False, False),
    "SWAP": ("_SWAP", True, False, False),
    "RETURN_VALUE": ("_RETURN_VALUE", False, False, False),
    # operators
    "UNARY_NEGATIVE": ("_UNARY_NEGATIVE", False, False, False),
    "UNARY_NOT": ("_UNARY_NOT", False, False, False),
    "IS_OP": ("_IS_OP", True, False, False),
    "CONTAINS_OP": ("_CONTAINS_OP", True, False, False),
    # jumps
    "JUMP_FORWARD": ("_JUMP", False, False, True),
    "JUMP_BACKWARD_NO_INTERRUPT": ("_JUMP", False, False, True),
    "POP_JUMP_FORWARD_IF_FALSE": ("_POP_JUMP_IF_FALSE", False, False, True),
    "POP_JUMP_FORWARD_IF_TRUE": ("_POP_JUMP_IF_TRUE", False, False, True),
    "POP_JUMP_FORWARD_IF_NONE": ("_POP_JUMP_IF_NONE", False, False, True),
    "POP_JUMP_FORWARD_IF_NOT_NONE": ("_POP_JUMP_IF_NOT_NONE", False, False, True),
    "JUMP_IF_FALSE_OR_POP": ("_JUMP_IF_FALSE_OR_POP", False, False, True),
    "JUMP_IF_TRUE_OR_POP": ("_JUMP_IF_TRUE_OR_POP", False, False, True),
    # iteration
    "GET_ITER": ("_GET_ITER", False, False, False),
    "FOR_ITER": ("_FOR_ITER", False, False, True),
    # containers and the rest
    "BINARY_SUBSCR": ("_BINARY_SUBSCR", False, False, False),
    "STORE_SUBSCR": ("_STORE_SUBSCR", False, False, False),
    "DELETE_SUBSCR": ("_DELETE_SUBSCR", False, False, False),
    "BUILD_LIST": ("_BUILD_LIST", True, False, False),
    "BUILD_TUPLE": ("_BUILD_TUPLE", True, False, False),
    "BUILD_SET": ("_BUILD_SET", True, False, False),
    "BUILD_MAP": ("_BUILD_MAP", True, False, False),
    "BUILD_CONST_KEY_MAP": ("_BUILD_CONST_KEY_MAP", True, False, False),
    "LIST_TO_TUPLE": ("_LIST_TO_TUPLE", False, False, False),
    "LIST_APPEND": ("_LIST_APPEND", True, False, False),
    "SET_ADD": ("_SET_ADD", True, False, False),
    "MAP_ADD": ("_MAP_ADD", True, False, False),
    "LIST_EXTEND": ("_LIST_EXTEND", True, False, False),
    "DICT_UPDATE": ("_DICT_UPDATE", True, False, False),
    "DICT_MERGE": ("_DICT_MERGE", True, False, False),
    "UNPACK_SEQUENCE": ("_UNPACK_SEQUENCE", True, False, False),
    "MAKE_FUNCTION": ("_MAKE_FUNCTION", True, False, False),
    "CALL_FUNCTION_EX": ("_CALL_FUNCTION_EX", True, False, False),
}

# Each instruction's lowering by its name: every Lowering method named like
# an instruction (a dict lookup per instruction instead of getattr).
_LOWERINGS: dict[str, Callable[[Lowering, Instruction], list[UOp] | None]] = {
    name: method for name, method in vars(Lowering).items() if name in opcode.opmap}
assert _LOWERINGS.keys().isdisjoint(_ONE_UOP) and set(_ONE_UOP) <= opcode.opmap.keys()
