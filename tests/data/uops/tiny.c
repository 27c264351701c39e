/* A tiny synthetic uop set for tests/test_build.py (not part of cpjit). */

// Push local `oparg`, side-exiting when it is unbound.
UOP(_TEST_LOAD, ( -- value), 0) {
    value = GETLOCAL(oparg);
    DEOPT_IF(value == NULL);
    Py_INCREF(value);
}

// Pop two items and push operand0(lhs, rhs); jump when the result is None.
UOP(_TEST_CALL_AND_BRANCH, (lhs, rhs -- res), ESCAPES) {
    res = ((binaryfunc)operand0)(lhs, rhs);
    Py_DECREF(lhs);
    Py_DECREF(rhs);
    ERROR_IF(res == NULL);
    JUMP_IF(res == Py_None);
}
