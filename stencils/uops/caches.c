/* Uops with an inline cache: operand0 is the name, operand1 the address of
 * the site's read-write words (layouts in csrc/runtime.h: one entry for a
 * global, CPJIT_CACHE_ENTRIES entries, one per type, for an attribute or method).
 * The fast path reads what the cache says; a miss calls the runtime, which
 * does the generic operation (possibly running Python code) and refills. */

// LOAD_GLOBAL through a cache of the global's (or builtin's) dict entry (the
// NULL a call wants below it is pushed by _PUSH_NULL_UNDER, after).
UOP(_LOAD_GLOBAL_CACHED, ( -- value), ESCAPES | SYNCS_FRAME) {
    PyObject *name = (PyObject *)operand0;
    uint64_t *cache = (uint64_t *)operand1;
    PyDictObject *globals = (PyDictObject *)GLOBALS();
    PyDictObject *builtins = (PyDictObject *)BUILTINS();
    DEOPT_IF(!PyDict_CheckExact(globals) || !PyDict_CheckExact(builtins));
    value = cpjit_cached_global(globals, builtins, name, cache);
    if (UNLIKELY(value == NULL)) {
        SET_IP();
        value = cpjit_load_global_miss((PyObject *)globals, (PyObject *)builtins, name, cache);
        ERROR_KEEP_IF(value == NULL && PyErr_Occurred());
        DEOPT_IF(value == NULL);   /* undefined: the interpreter raises NameError */
    }
    Py_INCREF(value);
}

// _LOAD_GLOBAL_CACHED that runs no Python code (in a loop with raw locals:
// they need no boxing first).  A miss refills the cache only when both dicts
// have str keys only (a lookup then compares no objects); else, or when the
// name is not defined, it side-exits.
UOP(_LOAD_GLOBAL_CACHED_QUIET, ( -- value), 0) {
    PyObject *name = (PyObject *)operand0;
    uint64_t *cache = (uint64_t *)operand1;
    PyDictObject *globals = (PyDictObject *)GLOBALS();
    PyDictObject *builtins = (PyDictObject *)BUILTINS();
    DEOPT_IF(!PyDict_CheckExact(globals) || !PyDict_CheckExact(builtins));
    value = cpjit_cached_global(globals, builtins, name, cache);
    if (UNLIKELY(value == NULL)) {
        DEOPT_IF(!DK_IS_UNICODE(globals->ma_keys) || !DK_IS_UNICODE(builtins->ma_keys));
        value = cpjit_load_global_miss((PyObject *)globals, (PyObject *)builtins, name, cache);
        if (value == NULL) {
            PyErr_Clear();   /* (defensive: str keys only, no lookup can fail) */
        }
        DEOPT_IF(value == NULL);
    }
    Py_INCREF(value);
}

// LOAD_ATTR through a cache of an instance value, a __slots__ member or a
// module global.
UOP(_LOAD_ATTR_CACHED, (owner -- attr), ESCAPES | SYNCS_FRAME) {
    uint64_t *cache = (uint64_t *)operand1;
    PyTypeObject *type = Py_TYPE(owner);
    uint64_t *entry = cpjit_cache_entry(cache, type);
    attr = NULL;
    if (LIKELY(entry != NULL)) {
        unsigned kind = (unsigned)(entry[0] >> 32);
        if (kind == CPJIT_ATTR_INSTANCE_VALUE) {
            PyDictValues *values = *_PyObject_ValuesPointer(owner);
            if (values != NULL) {
                attr = values->values[entry[1]];
            }
        }
        else if (kind == CPJIT_ATTR_SLOT) {
            attr = *(PyObject **)((char *)owner + entry[1]);
        }
        else {
            PyDictKeysObject *keys = ((PyDictObject *)((PyModuleObject *)owner)->md_dict)->ma_keys;
            if ((uint64_t)(uintptr_t)keys == entry[2] && (Py_ssize_t)entry[1] < keys->dk_nentries) {
                PyDictUnicodeEntry *item = &DK_UNICODE_ENTRIES(keys)[entry[1]];
                if (item->me_key == (PyObject *)operand0) {
                    attr = item->me_value;
                }
            }
        }
    }
    if (LIKELY(attr != NULL)) {
        Py_INCREF(attr);
        Py_DECREF(owner);
    }
    else {
        SET_IP();
        attr = cpjit_load_attr_miss(owner, (PyObject *)operand0, cache);
        Py_DECREF(owner);
        ERROR_IF(attr == NULL);
        CHECK_TRACING_AFTER();
    }
}

// STORE_ATTR through a cache of an instance value or a __slots__ member.
UOP(_STORE_ATTR_CACHED, (value, owner -- ), ESCAPES | SYNCS_FRAME) {
    uint64_t *cache = (uint64_t *)operand1;
    PyTypeObject *type = Py_TYPE(owner);
    uint64_t *entry = cpjit_cache_entry(cache, type);
    int done = 0;
    if (LIKELY(entry != NULL)) {
        if ((entry[0] >> 32) == CPJIT_ATTR_INSTANCE_VALUE) {
            PyDictValues *values = *_PyObject_ValuesPointer(owner);
            if (values != NULL) {
                Py_ssize_t index = (Py_ssize_t)entry[1];
                PyObject *old = values->values[index];
                values->values[index] = value;
                if (old == NULL) {
                    _PyDictValues_AddToInsertionOrder(values, index);
                }
                else {
                    Py_DECREF(old);
                }
                done = 1;
            }
        }
        else {
            PyObject **slot = (PyObject **)((char *)owner + entry[1]);
            PyObject *old = *slot;
            *slot = value;
            Py_XDECREF(old);
            done = 1;
        }
    }
    if (LIKELY(done)) {
        Py_DECREF(owner);
    }
    else {
        SET_IP();
        int err = cpjit_store_attr_miss(owner, (PyObject *)operand0, value, cache);
        Py_DECREF(value);
        Py_DECREF(owner);
        ERROR_IF(err);
        CHECK_TRACING_AFTER();
    }
}

// LOAD_METHOD through a cache of the method found on the type (and proof that
// the instance does not shadow it).
UOP(_LOAD_METHOD_CACHED, (owner -- meth_or_null, self_or_attr), ESCAPES | SYNCS_FRAME) {
    uint64_t *cache = (uint64_t *)operand1;
    PyTypeObject *type = Py_TYPE(owner);
    uint64_t *entry = cpjit_cache_entry(cache, type);
    if (LIKELY(entry != NULL)) {
        int hit = (entry[0] >> 32) == CPJIT_METHOD_NO_DICT;
        if (!hit && *_PyObject_ValuesPointer(owner) != NULL) {
            PyDictKeysObject *keys = ((PyHeapTypeObject *)type)->ht_cached_keys;
            hit = (uint64_t)(uintptr_t)keys == entry[2]
                  && (uint64_t)keys->dk_nentries == entry[3];
        }
        if (LIKELY(hit && entry[1] != 0)) {
            meth_or_null = (PyObject *)entry[1];
            Py_INCREF(meth_or_null);
            self_or_attr = owner;
            CONTINUE();
        }
    }
    SET_IP();
    cpjit_method found = cpjit_load_method_miss(owner, (PyObject *)operand0, cache);
    ERROR_KEEP_IF(found.method == NULL);
    if (found.found) {
        meth_or_null = found.method;
        self_or_attr = owner;
    }
    else {
        Py_DECREF(owner);
        meth_or_null = NULL;
        self_or_attr = found.method;
    }
    CHECK_TRACING_AFTER();
}
