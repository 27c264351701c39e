/* Calls (PRECALL + CALL, with the KW_NAMES of the call in operand0). */

// CALL with `oparg` arguments, the last len(operand0) of them passed by
// keyword (operand0: tuple of names, or NULL).  The two slots below the
// arguments hold either (method, self) from LOAD_METHOD or (NULL, callable);
// a bound method object is unpacked like the interpreter does, so the callee
// gets `self` without a new argument array.
UOP(_CALL, (meth_or_null, callable, args[oparg] -- res), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *kwnames = (PyObject *)operand0;
    PyObject *function;
    PyObject **arguments = args;
    int total = oparg;
    if (meth_or_null != NULL) {
        function = meth_or_null;
        arguments = args - 1;
        total = oparg + 1;
    }
    else if (Py_TYPE(callable) == &PyMethod_Type) {
        function = ((PyMethodObject *)callable)->im_func;
        PyObject *self = ((PyMethodObject *)callable)->im_self;
        Py_INCREF(function);
        Py_INCREF(self);
        args[-2] = function;
        args[-1] = self;
        Py_DECREF(callable);
        arguments = args - 1;
        total = oparg + 1;
    }
    else {
        function = callable;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    res = cpjit_call(tstate, state, function, arguments,
                     (size_t)(total - nkw) | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
    for (int i = 0; i < total; i++) {
        Py_DECREF(arguments[i]);
    }
    Py_DECREF(function);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}
