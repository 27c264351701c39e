/* Subscripts, displays (list/tuple/dict/set/slice/str building), unpacking. */

// BINARY_SUBSCR: list and tuple with an in-range int, exact dicts inline.
UOP(_BINARY_SUBSCR, (container, sub -- res), ESCAPES | SYNCS_FRAME) {
    PyTypeObject *type = Py_TYPE(container);
    int escaped = 0;
    res = NULL;
    if (PyLong_CheckExact(sub) && CPJIT_LONG_IS_COMPACT(sub)
        && (type == &PyList_Type || type == &PyTuple_Type)) {
        Py_ssize_t index = CPJIT_LONG_COMPACT_VALUE(sub);
        if (cpjit_item_index(&index, Py_SIZE(container))) {
            res = type == &PyList_Type ? PyList_GET_ITEM(container, index)
                                       : PyTuple_GET_ITEM(container, index);
            Py_INCREF(res);
        }
    }
    else if (type == &PyDict_Type) {
        res = cpjit_dict_subscript(frame, container, sub, &escaped);
        if (res == NULL) {
            Py_DECREF(container);
            Py_DECREF(sub);
            ERROR_IF(1);
        }
    }
    if (res == NULL) {
        SET_IP();
        res = PyObject_GetItem(container, sub);
        escaped = 1;
    }
    Py_DECREF(container);
    Py_DECREF(sub);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// STORE_SUBSCR: container[sub] = value; lists with an in-range int inline.
UOP(_STORE_SUBSCR, (value, container, sub -- ), ESCAPES | SYNCS_FRAME) {
    int err, escaped = 0;
    if (PyList_CheckExact(container) && PyLong_CheckExact(sub) && CPJIT_LONG_IS_COMPACT(sub)
        && (size_t)CPJIT_LONG_COMPACT_VALUE(sub) < (size_t)PyList_GET_SIZE(container)) {
        Py_ssize_t index = CPJIT_LONG_COMPACT_VALUE(sub);
        PyObject *old = PyList_GET_ITEM(container, index);
        PyList_SET_ITEM(container, index, value);
        value = old;
        err = 0;
    }
    else {
        SET_IP();
        err = PyObject_SetItem(container, sub, value);
        escaped = 1;
    }
    Py_DECREF(value);
    Py_DECREF(container);
    Py_DECREF(sub);
    ERROR_IF(err);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// dict[key] for an exact dict (tier 1's BINARY_SUBSCR_DICT; else side exit).
UOP(_BINARY_SUBSCR_DICT, (dict, sub -- res), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(!PyDict_CheckExact(dict));
    int escaped = 0;
    res = cpjit_dict_subscript(frame, dict, sub, &escaped);
    Py_DECREF(dict);
    Py_DECREF(sub);
    ERROR_IF(res == NULL);
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}

// dict[key] = value for an exact dict (tier 1's STORE_SUBSCR_DICT).  A key
// that is not an exact str or int may run Python code (__hash__, __eq__).
UOP(_STORE_SUBSCR_DICT, (value, dict, sub -- ), ESCAPES | SYNCS_FRAME) {
    DEOPT_IF(!PyDict_CheckExact(dict));
    int simple = PyUnicode_CheckExact(sub) || PyLong_CheckExact(sub);
    if (!simple) {
        SET_IP();
    }
    int err = PyDict_SetItem(dict, sub, value);
    Py_DECREF(value);
    Py_DECREF(dict);
    Py_DECREF(sub);
    ERROR_IF(err);
    if (!simple) {
        CHECK_TRACING_AFTER();
    }
}

// DELETE_SUBSCR.
UOP(_DELETE_SUBSCR, (container, sub -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    int err = PyObject_DelItem(container, sub);
    Py_DECREF(container);
    Py_DECREF(sub);
    ERROR_IF(err);
    CHECK_TRACING_AFTER();
}

// BUILD_LIST.
UOP(_BUILD_LIST, (values[oparg] -- list), 0) {
    list = PyList_New(oparg);
    ERROR_KEEP_IF(list == NULL);
    for (int i = 0; i < oparg; i++) {
        PyList_SET_ITEM(list, i, values[i]);
    }
}

// BUILD_TUPLE.
UOP(_BUILD_TUPLE, (values[oparg] -- tuple), 0) {
    tuple = PyTuple_New(oparg);
    ERROR_KEEP_IF(tuple == NULL);
    for (int i = 0; i < oparg; i++) {
        PyTuple_SET_ITEM(tuple, i, values[i]);
    }
}

// LIST_TO_TUPLE.
UOP(_LIST_TO_TUPLE, (list -- tuple), 0) {
    tuple = PyList_AsTuple(list);
    Py_DECREF(list);
    ERROR_IF(tuple == NULL);
}

// BUILD_MAP: `oparg` key/value pairs, inserted in order.
UOP(_BUILD_MAP, (items[oparg * 2] -- map), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    map = PyDict_New();
    ERROR_KEEP_IF(map == NULL);
    for (int i = 0; i < oparg; i++) {
        if (PyDict_SetItem(map, items[2 * i], items[2 * i + 1]) < 0) {
            Py_DECREF(map);
            ERROR_KEEP_IF(1);
        }
    }
    for (int i = 0; i < 2 * oparg; i++) {
        Py_DECREF(items[i]);
    }
    CHECK_TRACING_AFTER();
}

// BUILD_CONST_KEY_MAP: `oparg` values and a tuple of constant keys.
UOP(_BUILD_CONST_KEY_MAP, (values[oparg], keys -- map), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    map = PyDict_New();
    ERROR_KEEP_IF(map == NULL);
    for (int i = 0; i < oparg; i++) {
        if (PyDict_SetItem(map, PyTuple_GET_ITEM(keys, i), values[i]) < 0) {
            Py_DECREF(map);
            ERROR_KEEP_IF(1);
        }
    }
    Py_DECREF(keys);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(values[i]);
    }
    CHECK_TRACING_AFTER();
}

// BUILD_SET.
UOP(_BUILD_SET, (values[oparg] -- set), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    set = PySet_New(NULL);
    ERROR_KEEP_IF(set == NULL);
    int err = 0;
    for (int i = 0; i < oparg; i++) {
        if (err == 0) {
            err = PySet_Add(set, values[i]);
        }
        Py_DECREF(values[i]);
    }
    if (err != 0) {
        Py_DECREF(set);
        ERROR_IF(1);
    }
    CHECK_TRACING_AFTER();
}

// BUILD_SLICE: start:stop (oparg 0) or start:stop:step (oparg 1).
UOP(_BUILD_SLICE, (start, stop, step[oparg] -- slice), 0) {
    slice = PySlice_New(start, stop, oparg ? step[0] : NULL);
    Py_DECREF(start);
    Py_DECREF(stop);
    if (oparg) {
        Py_DECREF(step[0]);
    }
    ERROR_IF(slice == NULL);
}

// Slicing without the slice object: BUILD_SLICE fused with the BINARY_SUBSCR
// or STORE_SUBSCR after it (cpjit/optimize.py fuse_slices).  The uop is the
// subscript's instruction; its side exit resumes at the BUILD_SLICE, with the
// container and the bounds on the stack (exit_to), when the container is not
// of the uop's type or a bound is not None or a compact int.  Each does what
// the type's subscript function does with the slice (Objects/listobject.c,
// tupleobject.c, unicodeobject.c), or, for a tuple's or str's step other
// than 1 (rare, but `s[::-1]`), makes the slice object after all.  Out of
// memory, the error is cleared and the uop side-exits: the interpreter,
// redoing it, raises it itself.

// container[start:stop] and container[start:stop:step] of an exact list.
UOP(_BINARY_SLICE_LIST, (container, start, stop, step[oparg] -- res), 0) {
    Py_ssize_t istart, istop, istep;
    DEOPT_IF(!PyList_CheckExact(container));
    Py_ssize_t length = cpjit_slice_indices(start, stop, SLICE_STEP,
                                            PyList_GET_SIZE(container), &istart, &istop, &istep);
    DEOPT_IF(length < 0);
    if (istep == 1) {
        res = PyList_GetSlice(container, istart, istop);
    }
    else {
        res = PyList_New(length);
        if (res != NULL) {
            for (Py_ssize_t i = 0; i < length; i++, istart += istep) {
                PyObject *item = PyList_GET_ITEM(container, istart);
                Py_INCREF(item);
                PyList_SET_ITEM(res, i, item);
            }
        }
    }
    SLICE_DONE(res);
}

// container[start:stop] and container[start:stop:step] of an exact tuple.
UOP(_BINARY_SLICE_TUPLE, (container, start, stop, step[oparg] -- res), 0) {
    Py_ssize_t istart, istop, istep;
    DEOPT_IF(!PyTuple_CheckExact(container));
    Py_ssize_t length = cpjit_slice_indices(start, stop, SLICE_STEP,
                                            PyTuple_GET_SIZE(container), &istart, &istop, &istep);
    DEOPT_IF(length < 0);
    res = istep == 1 ? PyTuple_GetSlice(container, istart, istop)
                     : cpjit_subscript_slice(container, start, stop, SLICE_STEP);
    SLICE_DONE(res);
}

// container[start:stop] and container[start:stop:step] of an exact str.
UOP(_BINARY_SLICE_STR, (container, start, stop, step[oparg] -- res), 0) {
    Py_ssize_t istart, istop, istep;
    DEOPT_IF(!PyUnicode_CheckExact(container) || !PyUnicode_IS_READY(container));
    Py_ssize_t length = cpjit_slice_indices(start, stop, SLICE_STEP,
                                            PyUnicode_GET_LENGTH(container), &istart, &istop,
                                            &istep);
    DEOPT_IF(length < 0);
    res = istep != 1 ? cpjit_subscript_slice(container, start, stop, SLICE_STEP)
          : length == 0 ? PyUnicode_New(0, 0)
          : PyUnicode_Substring(container, istart, istart + length);
    SLICE_DONE(res);
}

// container[start:stop] = value on an exact list (a step other than 1: side
// exit).  The items it replaces are released, which can run Python code.
UOP(_STORE_SLICE_LIST, (value, container, start, stop, step[oparg] -- ), ESCAPES | SYNCS_FRAME) {
    Py_ssize_t istart, istop, istep;
    DEOPT_IF(!PyList_CheckExact(container));
    Py_ssize_t length = cpjit_slice_indices(start, stop, SLICE_STEP,
                                            PyList_GET_SIZE(container), &istart, &istop, &istep);
    DEOPT_IF(length < 0 || istep != 1);
    SET_IP();
    int err = PyList_SetSlice(container, istart, istop, value);
    Py_DECREF(value);
    Py_DECREF(container);
    Py_DECREF(start);
    Py_DECREF(stop);
    if (oparg) {
        Py_DECREF(step[0]);
    }
    ERROR_IF(err);
    CHECK_TRACING_AFTER();
}

// BUILD_STRING: concatenate `oparg` str pieces (operand0 is "").
UOP(_BUILD_STRING, (pieces[oparg] -- str), 0) {
    str = _PyUnicode_JoinArray((PyObject *)operand0, pieces, oparg);
    for (int i = 0; i < oparg; i++) {
        Py_DECREF(pieces[i]);
    }
    ERROR_IF(str == NULL);
}

// FORMAT_VALUE: convert with operand0 (PyObject_Str/Repr/ASCII or NULL),
// then format with the spec below it when oparg is 1.
UOP(_FORMAT_VALUE, (value, spec[oparg] -- result), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *fmt_spec = oparg ? spec[0] : NULL;
    unaryfunc convert = (unaryfunc)operand0;
    if (convert != NULL) {
        PyObject *converted = convert(value);
        Py_DECREF(value);
        if (converted == NULL) {
            Py_XDECREF(fmt_spec);
            ERROR_IF(1);
        }
        value = converted;
    }
    if (fmt_spec == NULL && PyUnicode_CheckExact(value)) {
        result = value;
    }
    else {
        result = PyObject_Format(value, fmt_spec);
        Py_DECREF(value);
        Py_XDECREF(fmt_spec);
        ERROR_IF(result == NULL);
    }
    CHECK_TRACING_AFTER();
}

// LIST_APPEND: append to the list `oparg` deep below `value`.
UOP(_LIST_APPEND, (value -- ), 0) {
    PyObject *list = PEEK(oparg + 1);
    int err = PyList_Append(list, value);
    Py_DECREF(value);
    ERROR_IF(err < 0);
}

// SET_ADD: add to the set `oparg` deep below `value`.
UOP(_SET_ADD, (value -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *set = PEEK(oparg + 1);
    int err = PySet_Add(set, value);
    Py_DECREF(value);
    ERROR_IF(err < 0);
    CHECK_TRACING_AFTER();
}

// MAP_ADD: store into the dict `oparg` deep below the pair.
UOP(_MAP_ADD, (key, value -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *map = PEEK(oparg + 2);
    int err = PyDict_SetItem(map, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    ERROR_IF(err < 0);
    CHECK_TRACING_AFTER();
}

// LIST_EXTEND: extend the list `oparg` deep below `iterable`.
UOP(_LIST_EXTEND, (iterable -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *list = PEEK(oparg + 1);
    int err = cpjit_list_extend(tstate, list, iterable);
    Py_DECREF(iterable);
    ERROR_IF(err < 0);
    CHECK_TRACING_AFTER();
}

// DICT_UPDATE: update the dict `oparg` deep below `update`.
UOP(_DICT_UPDATE, (update -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    PyObject *dict = PEEK(oparg + 1);
    int err = cpjit_dict_update(tstate, dict, update);
    Py_DECREF(update);
    ERROR_IF(err < 0);
    CHECK_TRACING_AFTER();
}

// UNPACK_SEQUENCE: exact tuples and lists of the right length inline; other
// iterables (and the errors) go through the runtime helper.
UOP(_UNPACK_SEQUENCE, (seq -- values[oparg]), ESCAPES | SYNCS_FRAME) {
    PyObject **items = NULL;
    if (PyTuple_CheckExact(seq) && PyTuple_GET_SIZE(seq) == oparg) {
        items = _PyTuple_ITEMS(seq);
    }
    else if (PyList_CheckExact(seq) && PyList_GET_SIZE(seq) == oparg) {
        items = ((PyListObject *)seq)->ob_item;
    }
    if (LIKELY(items != NULL)) {
        for (int i = 0; i < oparg; i++) {
            Py_INCREF(items[i]);
            values[oparg - 1 - i] = items[i];
        }
        Py_DECREF(seq);
    }
    else {
        SET_IP();
        int ok = cpjit_unpack_iterable(tstate, seq, oparg, values + oparg);
        Py_DECREF(seq);
        ERROR_IF(!ok);
        CHECK_TRACING_AFTER();
    }
}

// DICT_MERGE (the ** of a call): merge `update` into the dict `oparg` deep
// below it.  Only an exact dict of str keys none of which is there yet is
// merged here; anything else (a mapping, a repeated keyword: errors naming
// the function) side-exits, before any change, for the interpreter.
// ESCAPES: a str subclass key the interpreter merged earlier may compare
// with Python code.
UOP(_DICT_MERGE, (update -- ), ESCAPES) {
    PyObject *dict = PEEK(oparg + 1);
    DEOPT_IF(!PyDict_CheckExact(update));
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(update, &position, &key, &value)) {
        DEOPT_IF(!PyUnicode_CheckExact(key));
        DEOPT_IF(PyDict_Contains(dict, key) != 0);
    }
    int err = PyDict_Update(dict, update);
    ERROR_KEEP_IF(err < 0);
    Py_DECREF(update);
}
