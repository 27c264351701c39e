/* Operators: BINARY_OP, unary operators, comparisons, `is`, `in`.
 *
 * The generic C-API function of an operator (PyNumber_Add,
 * PyNumber_InPlaceAdd, ...) is operand0; uops with fast paths fall back to
 * it for anything but exact ints and floats. */

// BINARY_OP without a fast path: res = operand0(lhs, rhs).
UOP(_BINARY_OP, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    res = ((binaryfunc)operand0)(lhs, rhs);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// `+`, `+=`: exact ints and floats inline, else operand0.
UOP(_BINARY_OP_ADD, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a + b), 1, x + y);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `-`, `-=`.
UOP(_BINARY_OP_SUBTRACT, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a - b), 1, x - y);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `*`, `*=` (two compact ints cannot overflow 64 bits).
UOP(_BINARY_OP_MULTIPLY, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a * b), 1, x * y);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `/`, `/=`: ints and floats inline unless dividing by zero (the generic path
// raises ZeroDivisionError).  Two compact ints divide exactly as doubles.
UOP(_BINARY_OP_TRUE_DIVIDE, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(b != 0, PyFloat_FromDouble((double)a / (double)b), y != 0.0, x / y);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `//`, `//=`: compact ints inline (rounding towards minus infinity).
UOP(_BINARY_OP_FLOOR_DIVIDE, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(b != 0, cpjit_box_i64(cpjit_floordiv(a, b)), 0, 0.0);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `%`, `%=`: compact ints inline (the result has the sign of the divisor);
// anything else, str formatting included, goes to operand0.
UOP(_BINARY_OP_REMAINDER, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(b != 0, cpjit_box_i64(cpjit_mod(a, b)), 0, 0.0);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `&`, `&=`.
UOP(_BINARY_OP_AND, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a & b), 0, 0.0);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `|`, `|=`.
UOP(_BINARY_OP_OR, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a | b), 0, 0.0);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// `^`, `^=`.
UOP(_BINARY_OP_XOR, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    CPJIT_BINARY_ARITH(1, cpjit_box_i64(a ^ b), 0, 0.0);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// UNARY_POSITIVE / UNARY_INVERT: res = operand0(value).
UOP(_UNARY_OP, (value -- res), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    res = ((unaryfunc)operand0)(value);
    Py_DECREF(value);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// UNARY_NEGATIVE: compact ints and floats inline.
UOP(_UNARY_NEGATIVE, (value -- res), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    if (PyLong_CheckExact(value) && CPJIT_LONG_IS_COMPACT(value)) {
        res = cpjit_box_i64(-(int64_t)CPJIT_LONG_COMPACT_VALUE(value));
    }
    else if (PyFloat_CheckExact(value)) {
        res = PyFloat_FromDouble(-PyFloat_AS_DOUBLE(value));
    }
    else {
        SET_IP();
        res = PyNumber_Negative(value);
        escaped = 1;
    }
    Py_DECREF(value);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// UNARY_NOT.
UOP(_UNARY_NOT, (value -- res), ESCAPES | SYNCS_FRAME) {
    int truth, escaped = 0;
    if (PyBool_Check(value)) {
        truth = value == Py_True;
    }
    else {
        SET_IP();
        truth = PyObject_IsTrue(value);
        escaped = 1;
    }
    Py_DECREF(value);
    ERROR_IF(truth < 0);
    res = cpjit_bool(!truth);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// COMPARE_OP `oparg` (Py_LT .. Py_GE): ints, floats and str equality inline.
UOP(_COMPARE_OP, (lhs, rhs -- res), ESCAPES | SYNCS_FRAME) {
    double x, y;
    int escaped = 0;
    if (cpjit_both_compact_ints(lhs, rhs)) {
        res = cpjit_bool(cpjit_compare_i64(CPJIT_LONG_COMPACT_VALUE(lhs),
                                           CPJIT_LONG_COMPACT_VALUE(rhs), oparg));
    }
    else if ((PyFloat_CheckExact(lhs) || PyFloat_CheckExact(rhs))
             && cpjit_as_double(lhs, &x) && cpjit_as_double(rhs, &y)) {
        res = cpjit_bool(cpjit_compare_f64(x, y, oparg));
    }
    else if ((oparg == Py_EQ || oparg == Py_NE)
             && PyUnicode_CheckExact(lhs) && PyUnicode_CheckExact(rhs)) {
        res = cpjit_bool(_PyUnicode_Equal(lhs, rhs) == (oparg == Py_EQ));
    }
    else {
        SET_IP();
        res = PyObject_RichCompare(lhs, rhs, oparg);
        escaped = 1;
    }
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// IS_OP: `is` (oparg 0) or `is not` (oparg 1).
UOP(_IS_OP, (lhs, rhs -- res), 0) {
    int same = (lhs == rhs) ^ oparg;
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    res = cpjit_bool(same);
}

// CONTAINS_OP: `in` (oparg 0) or `not in` (oparg 1).
UOP(_CONTAINS_OP, (item, container -- res), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    int found = PySequence_Contains(container, item);
    Py_DECREF(item);
    Py_DECREF(container);
    ERROR_IF(found < 0);
    res = cpjit_bool(found ^ oparg);
    CHECK_TRACING_AFTER();
}
