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

// _CALL of a callable under a NULL (a global or an attribute called as a
// function), without keywords: no method to unpack, no keyword names.  (The
// analysis proved the NULL; it is checked all the same.)
UOP(_CALL_FUNCTION, (null, callable, args[oparg] -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(null != NULL);
    SET_IP();
    res = cpjit_call(tstate, state, callable, args, (size_t)oparg | PY_VECTORCALL_ARGUMENTS_OFFSET,
                     NULL);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(args[i]);
    }
    Py_DECREF(callable);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// CALL_FUNCTION_EX: func(*callargs, **kwargs) (kwargs when oparg & 1).  An
// argument tuple or keyword dict that is not exact (the interpreter converts
// it, with its own error messages) and C functions under tracing side-exit.
UOP(_CALL_FUNCTION_EX, (null, func, callargs, kwargs[oparg & 1] -- res), ESCAPES) {
    PyObject *kwdict = (oparg & 1) ? kwargs[0] : NULL;
    DEOPT_IF(!PyTuple_CheckExact(callargs));
    DEOPT_IF(kwdict != NULL && !PyDict_CheckExact(kwdict));
    DEOPT_IF(CPJIT_TRACING(tstate));
    res = PyObject_Call(func, callargs, kwdict);
    Py_DECREF(func);
    Py_DECREF(callargs);
    Py_XDECREF(kwdict);
    (void)null;  // always NULL (PUSH_NULL)
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// MAKE_FUNCTION: a function of the code object on top and the frame's
// globals; below the code, deepest first, the parts oparg's bits name:
// defaults (1), keyword defaults (2), annotations (4), closure (8).
UOP(_MAKE_FUNCTION, (parts[(oparg & 1) + ((oparg >> 1) & 1) + ((oparg >> 2) & 1) + ((oparg >> 3) & 1)], codeobj -- func), 0) {
    PyFunctionObject *made = (PyFunctionObject *)PyFunction_New(codeobj, GLOBALS());
    ERROR_KEEP_IF(made == NULL);
    Py_DECREF(codeobj);
    int next = 0;
    if (oparg & 0x01) {
        made->func_defaults = parts[next++];
    }
    if (oparg & 0x02) {
        made->func_kwdefaults = parts[next++];
    }
    if (oparg & 0x04) {
        made->func_annotations = parts[next++];
    }
    if (oparg & 0x08) {
        made->func_closure = parts[next++];
    }
    func = (PyObject *)made;
}

/* ---- calls specialized by what the profile or tier 1 saw: each checks what
 * it relies on and side-exits (before any effect) when the callable is not
 * what it expects; the C function is called as the interpreter's own
 * specialized PRECALL forms call it ---- */

// A builtin METH_O function of one argument (NULL below it).
UOP(_CALL_BUILTIN_O, (null, callable, arg -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(null != NULL || !PyCFunction_CheckExact(callable));
    DEOPT_IF(PyCFunction_GET_FLAGS(callable) != METH_O);
    SET_IP();
    res = cpjit_call_checked(tstate, PyCFunction_GET_FUNCTION(callable),
                             PyCFunction_GET_SELF(callable), arg);
    Py_DECREF(arg);
    Py_DECREF(callable);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// A builtin METH_FASTCALL function (NULL below it).
UOP(_CALL_BUILTIN_FAST, (null, callable, args[oparg] -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(null != NULL || !PyCFunction_CheckExact(callable));
    DEOPT_IF(PyCFunction_GET_FLAGS(callable) != METH_FASTCALL);
    SET_IP();
    res = ((_PyCFunctionFast)(void (*)(void))PyCFunction_GET_FUNCTION(callable))(
        PyCFunction_GET_SELF(callable), args, oparg);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(args[i]);
    }
    Py_DECREF(callable);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// A METH_NOARGS method descriptor found by LOAD_METHOD on an object of its
// exact type (str.lower).
UOP(_CALL_METHOD_DESCRIPTOR_NOARGS, (descr, self -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(descr == NULL || !Py_IS_TYPE(descr, &PyMethodDescr_Type));
    PyMethodDef *def = ((PyMethodDescrObject *)descr)->d_method;
    DEOPT_IF(def->ml_flags != METH_NOARGS);
    DEOPT_IF(!Py_IS_TYPE(self, ((PyMethodDescrObject *)descr)->d_common.d_type));
    SET_IP();
    res = cpjit_call_checked(tstate, def->ml_meth, self, NULL);
    Py_DECREF(self);
    Py_DECREF(descr);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// A METH_O method descriptor (set.add, dict.__contains__...), as above.
// list.append, operand0, is done inline as tier 1's PRECALL_NO_KW_LIST_APPEND
// does: the item goes into the list's spare room, when it has some.
UOP(_CALL_METHOD_DESCRIPTOR_O, (descr, self, arg -- res), ESCAPES | SYNCS_FRAME) {
    if (descr == (PyObject *)operand0 && PyList_CheckExact(self)) {
        Py_ssize_t size = PyList_GET_SIZE(self);
        int err = 0;
        if (size < ((PyListObject *)self)->allocated) {
            PyList_SET_ITEM(self, size, arg);   /* (takes the reference) */
            Py_SET_SIZE(self, size + 1);
        }
        else {
            err = PyList_Append(self, arg);   /* (out of memory: MemoryError) */
            Py_DECREF(arg);
        }
        Py_DECREF(self);
        Py_DECREF(descr);
        ERROR_IF(err);
        res = Py_None;
        Py_INCREF(res);
    }
    else {
        DEOPT_IF(descr == NULL || !Py_IS_TYPE(descr, &PyMethodDescr_Type));
        PyMethodDef *def = ((PyMethodDescrObject *)descr)->d_method;
        DEOPT_IF(def->ml_flags != METH_O);
        DEOPT_IF(!Py_IS_TYPE(self, ((PyMethodDescrObject *)descr)->d_common.d_type));
        SET_IP();
        res = cpjit_call_checked(tstate, def->ml_meth, self, arg);
        Py_DECREF(arg);
        Py_DECREF(self);
        Py_DECREF(descr);
        ERROR_IF(res == NULL);
        CHECK_TRACING_AFTER();
    }
}

// A METH_FASTCALL method descriptor (str.strip, str.split...), as above.
// dict.get, operand0, is done inline on an exact dict: the lookup dict_get
// makes (a key's __hash__ or __eq__ can run Python code or raise), without
// the call and its argument parsing.
UOP(_CALL_METHOD_DESCRIPTOR_FAST, (descr, self, args[oparg] -- res), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    if (descr == (PyObject *)operand0 && PyDict_CheckExact(self) && (oparg == 1 || oparg == 2)) {
        res = PyDict_GetItemWithError(self, args[0]);   /* (borrowed) */
        if (res == NULL && !PyErr_Occurred()) {
            res = oparg == 2 ? args[1] : Py_None;
        }
        Py_XINCREF(res);
    }
    else {
        DEOPT_IF(descr == NULL || !Py_IS_TYPE(descr, &PyMethodDescr_Type));
        PyMethodDef *def = ((PyMethodDescrObject *)descr)->d_method;
        DEOPT_IF(def->ml_flags != METH_FASTCALL);
        DEOPT_IF(!Py_IS_TYPE(self, ((PyMethodDescrObject *)descr)->d_common.d_type));
        res = ((_PyCFunctionFast)(void (*)(void))def->ml_meth)(self, args, oparg);
    }
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(args[i]);
    }
    Py_DECREF(self);
    Py_DECREF(descr);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// len(arg), the builtin being operand0 (else side exit): the int it makes
// is known to the compiler.
UOP(_CALL_LEN, (null, callable, arg -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(null != NULL || callable != (PyObject *)operand0);
    SET_IP();
    Py_ssize_t length = PyObject_Length(arg);
    res = length < 0 ? NULL : PyLong_FromSsize_t(length);
    Py_DECREF(arg);
    Py_DECREF(callable);
    ERROR_IF(res == NULL);
    CHECK_TRACING_AFTER();
}

// isinstance(inst, cls), the builtin being operand0 (else side exit).
UOP(_CALL_ISINSTANCE, (null, callable, inst, cls -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(null != NULL || callable != (PyObject *)operand0);
    SET_IP();
    int found = PyObject_IsInstance(inst, cls);
    Py_DECREF(inst);
    Py_DECREF(cls);
    Py_DECREF(callable);
    ERROR_IF(found < 0);
    res = PyBool_FromLong(found);
    CHECK_TRACING_AFTER();
}
