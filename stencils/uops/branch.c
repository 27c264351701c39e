/* Conditional jumps.  Truth of exact bools is inline; anything else calls
 * PyObject_IsTrue (which may run __bool__ / __len__). */

// POP_JUMP_*_IF_FALSE.
UOP(_POP_JUMP_IF_FALSE, (cond -- ), ESCAPES) {
    int truth = cond == Py_True ? 1 : cond == Py_False ? 0 : PyObject_IsTrue(cond);
    Py_DECREF(cond);
    ERROR_IF(truth < 0);
    JUMP_IF(truth == 0);
}

// POP_JUMP_*_IF_TRUE.
UOP(_POP_JUMP_IF_TRUE, (cond -- ), ESCAPES) {
    int truth = cond == Py_True ? 1 : cond == Py_False ? 0 : PyObject_IsTrue(cond);
    Py_DECREF(cond);
    ERROR_IF(truth < 0);
    JUMP_IF(truth > 0);
}

// POP_JUMP_*_IF_NONE.
UOP(_POP_JUMP_IF_NONE, (value -- ), 0) {
    int is_none = Py_IsNone(value);
    Py_DECREF(value);
    JUMP_IF(is_none);
}

// POP_JUMP_*_IF_NOT_NONE.
UOP(_POP_JUMP_IF_NOT_NONE, (value -- ), 0) {
    int is_none = Py_IsNone(value);
    Py_DECREF(value);
    JUMP_IF(!is_none);
}

// JUMP_IF_FALSE_OR_POP: jump keeping `cond` when false, else pop it.
UOP(_JUMP_IF_FALSE_OR_POP, (cond -- ), ESCAPES) {
    int truth;
    if (cond == Py_True || cond == Py_False) {
        truth = cond == Py_True;
    }
    else {
        truth = PyObject_IsTrue(cond);
        ERROR_KEEP_IF(truth < 0);
    }
    if (truth == 0) {
        JUMP_POPPING(0);
    }
    Py_DECREF(cond);
}

// JUMP_IF_TRUE_OR_POP: jump keeping `cond` when true, else pop it.
UOP(_JUMP_IF_TRUE_OR_POP, (cond -- ), ESCAPES) {
    int truth;
    if (cond == Py_True || cond == Py_False) {
        truth = cond == Py_True;
    }
    else {
        truth = PyObject_IsTrue(cond);
        ERROR_KEEP_IF(truth < 0);
    }
    if (truth > 0) {
        JUMP_POPPING(0);
    }
    Py_DECREF(cond);
}
