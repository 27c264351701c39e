/* Specialized uops: the types of their operands are known (proven by the
 * optimizer, or checked by a _GUARD_TYPE in front).  None of them can run
 * Python code, so none needs the instruction published or a tracing check.
 * Where the interpreter would raise (division by zero, an index out of
 * range), they side-exit and let the interpreter raise with its own message. */

// Side exit unless the item `oparg` deep (1 = top) has exactly type operand0.
UOP(_GUARD_TYPE, ( -- ), 0) {
    DEOPT_IF(Py_TYPE(PEEK(oparg)) != (PyTypeObject *)operand0);
}

// Local oparg holds an object of exact type operand0, else side exit.  Put in
// front of a loop, it lets the loop count on that type (cpjit/optimize.py).
UOP(_GUARD_LOCAL_TYPE, ( -- ), 0) {
    PyObject *value = GETLOCAL(oparg);
    DEOPT_IF(value == NULL || Py_TYPE(value) != (PyTypeObject *)operand0);
}

// int + int.
UOP(_BINARY_OP_ADD_INT, (lhs, rhs -- res), 0) {
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        res = cpjit_box_i64(CPJIT_LONG_COMPACT_VALUE(lhs) + CPJIT_LONG_COMPACT_VALUE(rhs));
    }
    else {
        res = PyNumber_Add(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// int - int.
UOP(_BINARY_OP_SUBTRACT_INT, (lhs, rhs -- res), 0) {
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        res = cpjit_box_i64(CPJIT_LONG_COMPACT_VALUE(lhs) - CPJIT_LONG_COMPACT_VALUE(rhs));
    }
    else {
        res = PyNumber_Subtract(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// int * int.
UOP(_BINARY_OP_MULTIPLY_INT, (lhs, rhs -- res), 0) {
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        res = cpjit_box_i64(CPJIT_LONG_COMPACT_VALUE(lhs) * CPJIT_LONG_COMPACT_VALUE(rhs));
    }
    else {
        res = PyNumber_Multiply(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// int // int (dividing by zero side-exits).
UOP(_BINARY_OP_FLOOR_DIVIDE_INT, (lhs, rhs -- res), 0) {
    DEOPT_IF(Py_SIZE(rhs) == 0);
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        res = cpjit_box_i64(cpjit_floordiv(CPJIT_LONG_COMPACT_VALUE(lhs),
                                           CPJIT_LONG_COMPACT_VALUE(rhs)));
    }
    else {
        res = PyNumber_FloorDivide(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// int % int (modulo zero side-exits).
UOP(_BINARY_OP_REMAINDER_INT, (lhs, rhs -- res), 0) {
    DEOPT_IF(Py_SIZE(rhs) == 0);
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        res = cpjit_box_i64(cpjit_mod(CPJIT_LONG_COMPACT_VALUE(lhs),
                                      CPJIT_LONG_COMPACT_VALUE(rhs)));
    }
    else {
        res = PyNumber_Remainder(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// int & int, int | int, int ^ int: oparg 0, 1, 2.
UOP(_BINARY_OP_BITWISE_INT, (lhs, rhs -- res), 0) {
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        int64_t a = CPJIT_LONG_COMPACT_VALUE(lhs), b = CPJIT_LONG_COMPACT_VALUE(rhs);
        res = cpjit_box_i64(oparg == 0 ? (a & b) : oparg == 1 ? (a | b) : (a ^ b));
    }
    else {
        res = oparg == 0 ? PyNumber_And(lhs, rhs)
              : oparg == 1 ? PyNumber_Or(lhs, rhs) : PyNumber_Xor(lhs, rhs);
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// float + float, - , *, / (oparg: 0 add, 1 subtract, 2 multiply, 3 divide;
// dividing by zero side-exits).
UOP(_BINARY_OP_FLOAT, (lhs, rhs -- res), 0) {
    double x = PyFloat_AS_DOUBLE(lhs), y = PyFloat_AS_DOUBLE(rhs);
    DEOPT_IF(oparg == 3 && y == 0.0);
    double r = oparg == 0 ? x + y : oparg == 1 ? x - y : oparg == 2 ? x * y : x / y;
    res = PyFloat_FromDouble(r);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// str + str.
UOP(_BINARY_OP_ADD_STR, (lhs, rhs -- res), 0) {
    res = PyUnicode_Concat(lhs, rhs);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
}

// `s += t` (or `s = s + t`) on str followed by the store into local `oparg`
// holding `lhs`: append in place when nothing else refers to the string (the
// STORE_FAST is part of this uop).
UOP(_BINARY_OP_INPLACE_ADD_STR, (lhs, rhs -- ), 0) {
    PyObject **target = &GETLOCAL(oparg);
    DEOPT_IF(*target != lhs);
    Py_DECREF(lhs);   /* the local still holds it */
    PyUnicode_Append(target, rhs);
    Py_DECREF(rhs);
    ERROR_IF(*target == NULL);
}

// int or float compare `oparg` (Py_LT..Py_GE), giving a bool.
UOP(_COMPARE_OP_INT, (lhs, rhs -- res), 0) {
    int truth;
    if (LIKELY(CPJIT_LONG_IS_COMPACT(lhs) && CPJIT_LONG_IS_COMPACT(rhs))) {
        truth = cpjit_compare_i64(CPJIT_LONG_COMPACT_VALUE(lhs), CPJIT_LONG_COMPACT_VALUE(rhs),
                                  oparg);
    }
    else {
        res = PyObject_RichCompare(lhs, rhs, oparg);
        Py_DECREF(lhs);
        Py_DECREF(rhs);
        ERROR_IF(res == NULL);
        goto done;
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    res = cpjit_bool(truth);
done:
    ;
}

// float compare `oparg`, giving a bool.
UOP(_COMPARE_OP_FLOAT, (lhs, rhs -- res), 0) {
    int truth = cpjit_compare_f64(PyFloat_AS_DOUBLE(lhs), PyFloat_AS_DOUBLE(rhs), oparg);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    res = cpjit_bool(truth);
}

// str == str, str != str.
UOP(_COMPARE_OP_STR, (lhs, rhs -- res), 0) {
    int equal = _PyUnicode_Equal(lhs, rhs);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    res = cpjit_bool(equal == (oparg == Py_EQ));
}

// Compare two ints and jump (operand0: 1 when the jump is taken on true, 0
// on false): COMPARE_OP + POP_JUMP_IF_* without the bool.
UOP(_COMPARE_INT_AND_BRANCH, (lhs, rhs -- ), 0) {
    DEOPT_IF(!CPJIT_LONG_IS_COMPACT(lhs) || !CPJIT_LONG_IS_COMPACT(rhs));
    int truth = cpjit_compare_i64(CPJIT_LONG_COMPACT_VALUE(lhs), CPJIT_LONG_COMPACT_VALUE(rhs),
                                  oparg);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    JUMP_IF(truth == (int)operand0);
}

// Compare two floats and jump (operand0 as above).
UOP(_COMPARE_FLOAT_AND_BRANCH, (lhs, rhs -- ), 0) {
    int truth = cpjit_compare_f64(PyFloat_AS_DOUBLE(lhs), PyFloat_AS_DOUBLE(rhs), oparg);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    JUMP_IF(truth == (int)operand0);
}

// Compare two strs for (in)equality and jump (operand0 as above).
UOP(_COMPARE_STR_AND_BRANCH, (lhs, rhs -- ), 0) {
    int truth = _PyUnicode_Equal(lhs, rhs) == (oparg == Py_EQ);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    JUMP_IF(truth == (int)operand0);
}

// POP_JUMP_IF_FALSE / _TRUE (operand0 1: jump on true) on a bool.
UOP(_POP_JUMP_IF_BOOL, (cond -- ), 0) {
    int truth = cond == Py_True;
    Py_DECREF(cond);
    JUMP_IF(truth == (int)operand0);
}

// -int.
UOP(_UNARY_NEGATIVE_INT, (value -- res), 0) {
    if (LIKELY(CPJIT_LONG_IS_COMPACT(value))) {
        res = cpjit_box_i64(-(int64_t)CPJIT_LONG_COMPACT_VALUE(value));
    }
    else {
        res = PyNumber_Negative(value);
    }
    Py_DECREF(value);
    ERROR_IF(res == NULL);
}

// -float.
UOP(_UNARY_NEGATIVE_FLOAT, (value -- res), 0) {
    res = PyFloat_FromDouble(-PyFloat_AS_DOUBLE(value));
    Py_DECREF(value);
    ERROR_IF(res == NULL);
}

// not bool.
UOP(_UNARY_NOT_BOOL, (value -- res), 0) {
    res = value == Py_True ? Py_False : Py_True;
    Py_INCREF(res);
    Py_DECREF(value);
}

// list[int]: in range (negative indexes count from the end), else side exit.
UOP(_BINARY_SUBSCR_LIST_INT, (container, sub -- res), 0) {
    DEOPT_IF(!CPJIT_LONG_IS_COMPACT(sub));
    Py_ssize_t index = CPJIT_LONG_COMPACT_VALUE(sub);
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    res = PyList_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
    Py_DECREF(sub);
}

// tuple[int].
UOP(_BINARY_SUBSCR_TUPLE_INT, (container, sub -- res), 0) {
    DEOPT_IF(!CPJIT_LONG_IS_COMPACT(sub));
    Py_ssize_t index = CPJIT_LONG_COMPACT_VALUE(sub);
    DEOPT_IF(!cpjit_item_index(&index, PyTuple_GET_SIZE(container)));
    res = PyTuple_GET_ITEM(container, index);
    Py_INCREF(res);
    Py_DECREF(container);
    Py_DECREF(sub);
}

// list[int] = value, in range.
UOP(_STORE_SUBSCR_LIST_INT, (value, container, sub -- ), 0) {
    DEOPT_IF(!CPJIT_LONG_IS_COMPACT(sub));
    Py_ssize_t index = CPJIT_LONG_COMPACT_VALUE(sub);
    DEOPT_IF(!cpjit_item_index(&index, PyList_GET_SIZE(container)));
    PyObject *old = PyList_GET_ITEM(container, index);
    PyList_SET_ITEM(container, index, value);
    Py_DECREF(old);
    Py_DECREF(container);
    Py_DECREF(sub);
}

// FOR_ITER over a range iterator (each FOR_ITER_* checks the iterator's type).
UOP(_FOR_ITER_RANGE, (iter -- iter, next), 0) {
    DEOPT_IF(Py_TYPE(iter) != &PyRangeIter_Type);
    cpjit_rangeiterobject *r = (cpjit_rangeiterobject *)iter;
    if (r->index >= r->len) {
        Py_DECREF(iter);
        JUMP_POPPING(1);
    }
    next = PyLong_FromLong((long)(r->start + (unsigned long)(r->index++) * r->step));
    ERROR_KEEP_IF(next == NULL);
}

// FOR_ITER over a list iterator.
UOP(_FOR_ITER_LIST, (iter -- iter, next), 0) {
    DEOPT_IF(Py_TYPE(iter) != &PyListIter_Type);
    cpjit_listiterobject *it = (cpjit_listiterobject *)iter;
    PyListObject *seq = it->it_seq;
    if (seq == NULL || it->it_index >= PyList_GET_SIZE(seq)) {
        if (seq != NULL) {
            it->it_seq = NULL;
            Py_DECREF(seq);
        }
        Py_DECREF(iter);
        JUMP_POPPING(1);
    }
    next = PyList_GET_ITEM(seq, it->it_index++);
    Py_INCREF(next);
}

// FOR_ITER over a tuple iterator.
UOP(_FOR_ITER_TUPLE, (iter -- iter, next), 0) {
    DEOPT_IF(Py_TYPE(iter) != &PyTupleIter_Type);
    cpjit_tupleiterobject *it = (cpjit_tupleiterobject *)iter;
    PyTupleObject *seq = it->it_seq;
    if (seq == NULL || it->it_index >= PyTuple_GET_SIZE(seq)) {
        if (seq != NULL) {
            it->it_seq = NULL;
            Py_DECREF(seq);
        }
        Py_DECREF(iter);
        JUMP_POPPING(1);
    }
    next = PyTuple_GET_ITEM(seq, it->it_index++);
    Py_INCREF(next);
}

// UNPACK_SEQUENCE of an exact tuple or list of the right length (else exit).
UOP(_UNPACK_SEQUENCE_EXACT, (seq -- values[oparg]), 0) {
    PyObject **items;
    if (PyTuple_CheckExact(seq) && PyTuple_GET_SIZE(seq) == oparg) {
        items = _PyTuple_ITEMS(seq);
    }
    else {
        DEOPT_IF(!PyList_CheckExact(seq) || PyList_GET_SIZE(seq) != oparg);
        items = ((PyListObject *)seq)->ob_item;
    }
    for (int i = 0; i < oparg; i++) {
        Py_INCREF(items[i]);
        values[oparg - 1 - i] = items[i];
    }
    Py_DECREF(seq);
}

// range(args) with exact int arguments, the builtin being operand0 (else
// side exit): it cannot run Python code.  Out of memory, it side-exits too
// (the interpreter redoes the call and raises the error itself).
UOP(_CALL_RANGE, (null, callable, args[oparg] -- res), 0) {
    DEOPT_IF(null != NULL || callable != (PyObject *)operand0);
    for (int i = 0; i < oparg; i++) {
        DEOPT_IF(!PyLong_CheckExact(args[i]));
    }
    res = PyObject_Vectorcall(callable, args, oparg, NULL);
    if (res == NULL) {
        PyErr_Clear();
    }
    DEOPT_IF(res == NULL);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(args[i]);
    }
    Py_DECREF(callable);
}

// iter(range(args)) (CALL and GET_ITER fused), one or two compact int
// arguments (else side exit): the iterator without the range object.
UOP(_RANGE_ITER, (null, callable, args[oparg] -- iter), 0) {
    DEOPT_IF(null != NULL || callable != (PyObject *)operand0);
    PyObject *first = args[0], *last = args[oparg - 1];
    DEOPT_IF(!cpjit_both_compact_ints(first, last));
    iter = cpjit_new_range_iter(oparg == 2 ? CPJIT_LONG_COMPACT_VALUE(first) : 0,
                                CPJIT_LONG_COMPACT_VALUE(last));
    DEOPT_IF(iter == NULL);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(args[i]);
    }
    Py_DECREF(callable);
}

// GET_ITER of a list, tuple, range, dict, set or str (cannot run Python).
UOP(_GET_ITER_BUILTIN, (iterable -- iter), 0) {
    iter = PyObject_GetIter(iterable);
    Py_DECREF(iterable);
    ERROR_IF(iter == NULL);
}
