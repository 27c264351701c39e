/* Unboxed ("raw") ints and floats, kept in the frame-side slots of JitState
 * (see cpjit/unbox.py).  oparg is the destination slot, operand0 and
 * operand1 the source slots (or a local's index, or an immediate, as each uop
 * says).  Writing a slot marks it dirty: a local living in a slot is boxed
 * back into the frame only when it changed.  Overflow, division by zero and
 * ints that do not fit in 64 bits side-exit: the interpreter redoes the
 * instruction on the boxed values. */

// slot[oparg] = slot[operand0] + slot[operand1] (int64).
UOP(_ADD_I64, ( -- ), 0) {
    int64_t r;
    DEOPT_IF(__builtin_add_overflow(SLOT_I64(OPERAND0), SLOT_I64(OPERAND1), &r));
    SET_SLOT_I64(OPARG, r);
}

// int64 subtraction.
UOP(_SUB_I64, ( -- ), 0) {
    int64_t r;
    DEOPT_IF(__builtin_sub_overflow(SLOT_I64(OPERAND0), SLOT_I64(OPERAND1), &r));
    SET_SLOT_I64(OPARG, r);
}

// int64 multiplication.
UOP(_MUL_I64, ( -- ), 0) {
    int64_t r;
    DEOPT_IF(__builtin_mul_overflow(SLOT_I64(OPERAND0), SLOT_I64(OPERAND1), &r));
    SET_SLOT_I64(OPARG, r);
}

// int64 floor division (by zero, or INT64_MIN // -1: side exit).
UOP(_FLOORDIV_I64, ( -- ), 0) {
    int64_t a = SLOT_I64(OPERAND0), b = SLOT_I64(OPERAND1);
    DEOPT_IF(b == 0 || (a == INT64_MIN && b == -1));
    SET_SLOT_I64(OPARG, cpjit_floordiv(a, b));
}

// int64 modulo, with the sign of the divisor.
UOP(_MOD_I64, ( -- ), 0) {
    int64_t a = SLOT_I64(OPERAND0), b = SLOT_I64(OPERAND1);
    DEOPT_IF(b == 0 || (a == INT64_MIN && b == -1));
    SET_SLOT_I64(OPARG, cpjit_mod(a, b));
}

// int64 &.
UOP(_AND_I64, ( -- ), 0) {
    SET_SLOT_I64(OPARG, SLOT_I64(OPERAND0) & SLOT_I64(OPERAND1));
}

// int64 |.
UOP(_OR_I64, ( -- ), 0) {
    SET_SLOT_I64(OPARG, SLOT_I64(OPERAND0) | SLOT_I64(OPERAND1));
}

// int64 ^.
UOP(_XOR_I64, ( -- ), 0) {
    SET_SLOT_I64(OPARG, SLOT_I64(OPERAND0) ^ SLOT_I64(OPERAND1));
}

// int64 negation.
UOP(_NEG_I64, ( -- ), 0) {
    int64_t a = SLOT_I64(OPERAND0);
    DEOPT_IF(a == INT64_MIN);
    SET_SLOT_I64(OPARG, -a);
}

// double addition.
UOP(_ADD_F64, ( -- ), 0) {
    SET_SLOT_F64(OPARG, SLOT_F64(OPERAND0) + SLOT_F64(OPERAND1));
}

// double subtraction.
UOP(_SUB_F64, ( -- ), 0) {
    SET_SLOT_F64(OPARG, SLOT_F64(OPERAND0) - SLOT_F64(OPERAND1));
}

// double multiplication.
UOP(_MUL_F64, ( -- ), 0) {
    SET_SLOT_F64(OPARG, SLOT_F64(OPERAND0) * SLOT_F64(OPERAND1));
}

// double division (by zero: side exit, the interpreter raises).
UOP(_DIV_F64, ( -- ), 0) {
    double b = SLOT_F64(OPERAND1);
    DEOPT_IF(b == 0.0);
    SET_SLOT_F64(OPARG, SLOT_F64(OPERAND0) / b);
}

// double ** double, for a positive finite base and a finite exponent (then
// Python's float ** is C's pow); anything else, or an overflow (the
// interpreter raises OverflowError), side-exits.
UOP(_POW_F64, ( -- ), 0) {
    double base = SLOT_F64(OPERAND0), exponent = SLOT_F64(OPERAND1);
    DEOPT_IF(!(base > 0.0 && base <= DBL_MAX && exponent >= -DBL_MAX && exponent <= DBL_MAX));
    double result = pow(base, exponent);
    DEOPT_IF(!(result <= DBL_MAX));
    SET_SLOT_F64(OPARG, result);
}

// double negation.
UOP(_NEG_F64, ( -- ), 0) {
    SET_SLOT_F64(OPARG, -SLOT_F64(OPERAND0));
}

// slot[oparg] = (double)slot[operand0], exact (|v| <= 2**53) or side exit.
UOP(_I64_TO_F64, ( -- ), 0) {
    int64_t a = SLOT_I64(OPERAND0);
    DEOPT_IF(a > (INT64_C(1) << 53) || a < -(INT64_C(1) << 53));
    SET_SLOT_F64(OPARG, (double)a);
}

// slot[oparg] = the int64 immediate operand0.
UOP(_SET_I64, ( -- ), 0) {
    SET_SLOT_I64(OPARG, (int64_t)operand0);
}

// slot[oparg] = the double whose bits are operand0.
UOP(_SET_F64, ( -- ), 0) {
    uint64_t bits = operand0;
    double value;
    memcpy(&value, &bits, sizeof(value));
    SET_SLOT_F64(OPARG, value);
}

// slot[oparg] = slot[operand0].
UOP(_COPY_SLOT_I64, ( -- ), 0) {
    SET_SLOT_I64(OPARG, SLOT_I64(OPERAND0));
}

// As _COPY_SLOT_I64 for a double.
UOP(_COPY_SLOT_F64, ( -- ), 0) {
    SET_SLOT_F64(OPARG, SLOT_F64(OPERAND0));
}

// slot[oparg] = local operand0 unboxed: an exact int fitting 64 bits, else side exit.
UOP(_UNBOX_LOCAL_I64, ( -- ), 0) {
    PyObject *o = GETLOCAL(operand0);
    int64_t value;
    DEOPT_IF(o == NULL || !cpjit_unbox_int(o, &value));
    SET_SLOT_I64(OPARG, value);
}

// slot[oparg] = local operand0 unboxed: an exact float, else side exit.
UOP(_UNBOX_LOCAL_F64, ( -- ), 0) {
    PyObject *o = GETLOCAL(operand0);
    DEOPT_IF(o == NULL || !PyFloat_CheckExact(o));
    SET_SLOT_F64(OPARG, PyFloat_AS_DOUBLE(o));
}

// Pop an exact int fitting 64 bits into slot[oparg] (else side exit).
UOP(_POP_UNBOX_I64, (value -- ), 0) {
    int64_t raw;
    DEOPT_IF(!cpjit_unbox_int(value, &raw));
    SET_SLOT_I64(OPARG, raw);
    Py_DECREF(value);
}

// Pop an exact float into slot[oparg] (else side exit).
UOP(_POP_UNBOX_F64, (value -- ), 0) {
    DEOPT_IF(!PyFloat_CheckExact(value));
    SET_SLOT_F64(OPARG, PyFloat_AS_DOUBLE(value));
    Py_DECREF(value);
}

// Box slot[operand0] (an int64) into the stack under its top oparg items
// (no memory: side exit with the error set).
UOP(_BOX_INSERT_I64, ( -- top), 0) {
    PyObject *value = cpjit_box_i64(SLOT_I64(OPERAND0));
    DEOPT_IF(value == NULL);
    top = cpjit_insert(stack_pointer, oparg, value);
}

// Box slot[operand0] (a double) into the stack under its top oparg items.
UOP(_BOX_INSERT_F64, ( -- top), 0) {
    PyObject *value = PyFloat_FromDouble(SLOT_F64(OPERAND0));
    DEOPT_IF(value == NULL);
    top = cpjit_insert(stack_pointer, oparg, value);
}

// Put local operand0 (known to be bound) into the stack under its top oparg items.
UOP(_LOCAL_INSERT, ( -- top), 0) {
    PyObject *value = GETLOCAL(operand0);
    Py_INCREF(value);
    top = cpjit_insert(stack_pointer, oparg, value);
}

// Put the constant operand0 into the stack under its top oparg items.
UOP(_CONST_INSERT, ( -- top), 0) {
    PyObject *value = (PyObject *)operand0;
    Py_INCREF(value);
    top = cpjit_insert(stack_pointer, oparg, value);
}

// Local oparg = slot[operand0] as an int object.
UOP(_STORE_FAST_BOX_I64, ( -- ), 0) {
    PyObject *value = cpjit_box_i64(SLOT_I64(OPERAND0));
    DEOPT_IF(value == NULL);
    PyObject *old = GETLOCAL(oparg);
    GETLOCAL(oparg) = value;
    Py_XDECREF(old);
}

// Local oparg = slot[operand0] as a float object.
UOP(_STORE_FAST_BOX_F64, ( -- ), 0) {
    DEOPT_IF(cpjit_store_double(frame, state, &GETLOCAL(oparg), SLOT_F64(OPERAND0)) < 0);
}

// Local oparg, living in its slot, boxed back into the frame if it changed.
UOP(_SYNC_LOCAL_I64, ( -- ), 0) {
    if (SLOT_DIRTY(OPARG)) {
        PyObject *value = cpjit_box_i64(SLOT_I64(OPARG));
        DEOPT_IF(value == NULL);
        PyObject *old = GETLOCAL(oparg);
        GETLOCAL(oparg) = value;
        Py_XDECREF(old);
        SLOT_DIRTY(OPARG) = 0;
    }
}

// As _SYNC_LOCAL_I64 for a float local.
UOP(_SYNC_LOCAL_F64, ( -- ), 0) {
    if (SLOT_DIRTY(OPARG)) {
        DEOPT_IF(cpjit_store_double(frame, state, &GETLOCAL(oparg), SLOT_F64(OPARG)) < 0);
        SLOT_DIRTY(OPARG) = 0;
    }
}

// Entering a loop where int local oparg lives in its slot: unbox it.  The
// loop reads it only once it holds an int, so an unbound local (or one
// holding something else, overwritten before it is read) stays in the frame
// until the loop stores it; an int too big for 64 bits side-exits.
UOP(_ENTER_LOCAL_I64, ( -- ), 0) {
    PyObject *o = GETLOCAL(oparg);
    int64_t value = 0;
    if (o != NULL && PyLong_CheckExact(o)) {
        DEOPT_IF(!cpjit_unbox_int(o, &value));
    }
    SLOT_I64(OPARG) = value;
    SLOT_DIRTY(OPARG) = 0;
}

// Entering a loop where float local oparg lives in its slot (as above).
UOP(_ENTER_LOCAL_F64, ( -- ), 0) {
    PyObject *o = GETLOCAL(oparg);
    SLOT_F64(OPARG) = o != NULL && PyFloat_CheckExact(o) ? PyFloat_AS_DOUBLE(o) : 0.0;
    SLOT_DIRTY(OPARG) = 0;
}

// Jump when slot[operand0] < slot[operand1] (int64).  One uop per operator:
// a compare and a branch (an operator chosen at run time costs a dozen
// instructions more); jumping when a compare is false is jumping on its
// opposite.
UOP(_CMP_I64_JUMP_LT, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) < SLOT_I64(OPERAND1));
}

// Jump when slot[operand0] <= slot[operand1] (int64).
UOP(_CMP_I64_JUMP_LE, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) <= SLOT_I64(OPERAND1));
}

// Jump when slot[operand0] == slot[operand1] (int64).
UOP(_CMP_I64_JUMP_EQ, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) == SLOT_I64(OPERAND1));
}

// Jump when slot[operand0] != slot[operand1] (int64).
UOP(_CMP_I64_JUMP_NE, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) != SLOT_I64(OPERAND1));
}

// Jump when slot[operand0] > slot[operand1] (int64).
UOP(_CMP_I64_JUMP_GT, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) > SLOT_I64(OPERAND1));
}

// Jump when slot[operand0] >= slot[operand1] (int64).
UOP(_CMP_I64_JUMP_GE, ( -- ), 0) {
    JUMP_IF(SLOT_I64(OPERAND0) >= SLOT_I64(OPERAND1));
}

// Compare slot[operand0] with slot[operand1] (doubles) with Py_LT..Py_GE =
// oparg & 7, and jump when the result equals oparg >> 3 (not on the
// opposite operator: a comparison with a NaN is false both ways).
UOP(_CMP_F64_JUMP, ( -- ), 0) {
    int truth = cpjit_compare_f64(SLOT_F64(OPERAND0), SLOT_F64(OPERAND1), oparg & 7);
    JUMP_IF(truth == (oparg >> 3));
}

// Push the bool of comparing slot[operand0] with slot[operand1] (int64, op oparg).
UOP(_CMP_I64_BOOL, ( -- res), 0) {
    res = cpjit_bool(cpjit_compare_i64(SLOT_I64(OPERAND0), SLOT_I64(OPERAND1), oparg));
}

// As _CMP_I64_BOOL for doubles.
UOP(_CMP_F64_BOOL, ( -- res), 0) {
    res = cpjit_bool(cpjit_compare_f64(SLOT_F64(OPERAND0), SLOT_F64(OPERAND1), oparg));
}

// FOR_ITER over a range iterator, the next value into slot[oparg] (no int
// object); exhausted: pop the iterator and jump.
UOP(_FOR_ITER_RANGE_I64, (iter -- iter), 0) {
    DEOPT_IF(Py_TYPE(iter) != &PyRangeIter_Type);
    cpjit_rangeiterobject *r = (cpjit_rangeiterobject *)iter;
    if (r->index >= r->len) {
        Py_DECREF(iter);
        JUMP_POPPING(1);
    }
    SET_SLOT_I64(OPARG, (int64_t)(r->start + (unsigned long)(r->index++) * r->step));
}

// iter(range(...)) of oparg raw ints: range(slot[operand1]) or
// range(slot[operand0], slot[operand1]), the callable being the range type
// (else side exit, as when the length does not fit in a C long or memory
// runs out): no range object is made.
UOP(_RANGE_ITER_I64, (null, callable -- iter), 0) {
    DEOPT_IF(null != NULL || callable != (PyObject *)&PyRange_Type);
    iter = cpjit_new_range_iter(oparg == 2 ? SLOT_I64(OPERAND0) : 0, SLOT_I64(OPERAND1));
    DEOPT_IF(iter == NULL);
    Py_DECREF(callable);
}

// list[slot[operand0]] (an in-range index, negative from the end; else side exit).
UOP(_BINARY_SUBSCR_LIST_I64, (container -- res), 0) {
    Py_ssize_t index = SLOT_I64(OPERAND0);
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    res = PyList_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
}

// tuple[slot[operand0]].
UOP(_BINARY_SUBSCR_TUPLE_I64, (container -- res), 0) {
    Py_ssize_t index = SLOT_I64(OPERAND0);
    DEOPT_IF(!cpjit_item_index(&index, PyTuple_GET_SIZE(container)));
    res = PyTuple_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
}

// list[slot[operand0]] = value.
UOP(_STORE_SUBSCR_LIST_I64, (value, container -- ), 0) {
    Py_ssize_t index = SLOT_I64(OPERAND0);
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    PyObject *old = PyList_GET_ITEM(container, index);
    PyList_SET_ITEM(container, index, value);
    Py_DECREF(old);
    Py_DECREF(container);
}

// list[operand0], a constant index (negative from the end; out of range: side exit).
UOP(_BINARY_SUBSCR_LIST_CONST, (container -- res), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    res = PyList_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
}

// tuple[operand0], a constant index.
UOP(_BINARY_SUBSCR_TUPLE_CONST, (container -- res), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyTuple_GET_SIZE(container)));
    res = PyTuple_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
}

// list[operand0] = value, a constant index.
UOP(_STORE_SUBSCR_LIST_CONST, (value, container -- ), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    PyObject *old = PyList_GET_ITEM(container, index);
    PyList_SET_ITEM(container, index, value);
    Py_DECREF(old);
    Py_DECREF(container);
}

/* ---- list items straight to and from slots (cpjit/unbox.py fuses
 * _BINARY_SUBSCR_LIST_CONST + _POP_UNBOX_* and _BOX_INSERT_* +
 * _STORE_SUBSCR_LIST_CONST into these); each side-exits before any effect ---- */

// Pop a list; its item operand0 (a constant index), an exact float, into slot[oparg].
UOP(_POP_LIST_ITEM_F64, (container -- ), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    PyObject *item = PyList_GET_ITEM(container, index);
    DEOPT_IF(!PyFloat_CheckExact(item));
    SET_SLOT_F64(OPARG, PyFloat_AS_DOUBLE(item));
    Py_DECREF(container);
}

// Pop a list; its item operand0, an exact int fitting 64 bits, into slot[oparg].
UOP(_POP_LIST_ITEM_I64, (container -- ), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    int64_t raw;
    DEOPT_IF(!cpjit_unbox_int(PyList_GET_ITEM(container, index), &raw));
    SET_SLOT_I64(OPARG, raw);
    Py_DECREF(container);
}

// Pop a list; store slot[oparg] (a double, boxed) as its item operand0.
UOP(_STORE_LIST_ITEM_F64, (container -- ), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    DEOPT_IF(cpjit_store_double(frame, state, &((PyListObject *)container)->ob_item[index],
                                SLOT_F64(OPARG)) < 0);
    Py_DECREF(container);
}

// Pop a list; store slot[oparg] (an int64, boxed) as its item operand0.
UOP(_STORE_LIST_ITEM_I64, (container -- ), 0) {
    Py_ssize_t index = (Py_ssize_t)operand0;
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    PyObject *value = cpjit_box_i64(SLOT_I64(OPARG));
    DEOPT_IF(value == NULL);
    PyObject *old = PyList_GET_ITEM(container, index);
    PyList_SET_ITEM(container, index, value);
    Py_DECREF(old);
    Py_DECREF(container);
}
