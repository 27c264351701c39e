/* Conditional jumps.  Truth of exact bools is inline; anything else calls
 * PyObject_IsTrue (which may run __bool__ / __len__).  The _OR_POP forms
 * leave the object itself on the stack when they jump, so they cannot hand a
 * bool to the interpreter: the translator checks tracing around them. */

// POP_JUMP_*_IF_FALSE.
UOP(_POP_JUMP_IF_FALSE, (cond -- ), ESCAPES | SYNCS_FRAME) {
    int truth;
    if (LIKELY(cond == Py_True || cond == Py_False)) {
        truth = cond == Py_True;
        Py_DECREF(cond);
    }
    else {
        SET_IP();
        truth = PyObject_IsTrue(cond);
        Py_DECREF(cond);
        ERROR_IF(truth < 0);
        if (UNLIKELY(CPJIT_TRACING(tstate))) {
            /* __bool__ turned tracing on: the interpreter redoes the jump
             * on the truth value (a bool, so nothing runs twice). */
            stack_pointer[-1] = cpjit_bool(truth);
            DEOPT_IF(1);
        }
    }
    JUMP_IF(truth == 0);
}

// POP_JUMP_*_IF_TRUE.
UOP(_POP_JUMP_IF_TRUE, (cond -- ), ESCAPES | SYNCS_FRAME) {
    int truth;
    if (LIKELY(cond == Py_True || cond == Py_False)) {
        truth = cond == Py_True;
        Py_DECREF(cond);
    }
    else {
        SET_IP();
        truth = PyObject_IsTrue(cond);
        Py_DECREF(cond);
        ERROR_IF(truth < 0);
        if (UNLIKELY(CPJIT_TRACING(tstate))) {
            /* __bool__ turned tracing on: the interpreter redoes the jump
             * on the truth value (a bool, so nothing runs twice). */
            stack_pointer[-1] = cpjit_bool(truth);
            DEOPT_IF(1);
        }
    }
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
