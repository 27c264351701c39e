/* Globals, builtins and attributes (generic forms). */

// LOAD_GLOBAL: push global or builtin operand0 (a str), with a NULL below it
// when oparg is 1.  A missing name side-exits so that the interpreter raises
// its NameError (with the "Did you mean" hint).
UOP(_LOAD_GLOBAL, ( -- null[oparg], value), 0) {
    PyObject *name = (PyObject *)operand0;
    DEOPT_IF(!PyDict_CheckExact(GLOBALS()) || !PyDict_CheckExact(BUILTINS()));
    value = PyDict_GetItemWithError(GLOBALS(), name);
    if (value == NULL) {
        ERROR_KEEP_IF(PyErr_Occurred());
        value = PyDict_GetItemWithError(BUILTINS(), name);
        if (value == NULL) {
            ERROR_KEEP_IF(PyErr_Occurred());
            DEOPT_IF(1);
        }
    }
    Py_INCREF(value);
    if (oparg) {
        null[0] = NULL;
    }
}

// STORE_GLOBAL: globals[operand0] = value.
UOP(_STORE_GLOBAL, (value -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    int err = PyDict_SetItem(GLOBALS(), (PyObject *)operand0, value);
    Py_DECREF(value);
    ERROR_IF(err);
    CHECK_TRACING_AFTER();
}

// LOAD_ATTR: owner.operand0.
UOP(_LOAD_ATTR, (owner -- attr), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    attr = PyObject_GetAttr(owner, (PyObject *)operand0);
    Py_DECREF(owner);
    ERROR_IF(attr == NULL);
    CHECK_TRACING_AFTER();
}

// LOAD_METHOD: for a method found on the type, push the function and `self`
// (the call then needs no bound method); otherwise NULL and the attribute.
UOP(_LOAD_METHOD, (owner -- meth_or_null, self_or_attr), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *meth = NULL;
    int found = _PyObject_GetMethod(owner, (PyObject *)operand0, &meth);
    ERROR_KEEP_IF(meth == NULL);
    if (found) {
        meth_or_null = meth;
        self_or_attr = owner;
    }
    else {
        Py_DECREF(owner);
        meth_or_null = NULL;
        self_or_attr = meth;
    }
    CHECK_TRACING_AFTER();
}

// STORE_ATTR: owner.operand0 = value.
UOP(_STORE_ATTR, (value, owner -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    int err = PyObject_SetAttr(owner, (PyObject *)operand0, value);
    Py_DECREF(value);
    Py_DECREF(owner);
    ERROR_IF(err);
    CHECK_TRACING_AFTER();
}

// DELETE_ATTR: del owner.operand0.
UOP(_DELETE_ATTR, (owner -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    int err = PyObject_SetAttr(owner, (PyObject *)operand0, NULL);
    Py_DECREF(owner);
    ERROR_IF(err);
    CHECK_TRACING_AFTER();
}
