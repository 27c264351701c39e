/* caches.c: inline caches for attributes, methods and globals (the miss paths).
 *
 * Each cached site owns a few read-write words of its compiled code.  The
 * stencil's fast path (stencils/uops/caches.c) checks them and reads the
 * value directly; on a miss it calls the function here, which does the
 * generic operation and, when the access is one the fast path can repeat
 * safely, fills the cache.  The conditions mirror what 3.11's specializer
 * (Python/specialize.c) checks, and every fast path re-checks what could have
 * changed (type version tags, dict keys, the entry's key), so a stale cache
 * costs a miss, never a wrong value.
 */
#include "cpjit.h"

#if CPJIT_SUPPORTED

#include "structmember.h"

/* The shared-keys index of `name` in the instance values of `type`, or -1. */
static Py_ssize_t
shared_keys_index(PyTypeObject *type, PyObject *name)
{
    if (!(type->tp_flags & Py_TPFLAGS_MANAGED_DICT)) {
        return -1;
    }
    PyDictKeysObject *keys = ((PyHeapTypeObject *)type)->ht_cached_keys;
    if (keys == NULL || !DK_IS_UNICODE(keys)) {
        return -1;
    }
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        if (entries[i].me_key == name) {   /* names are interned: the usual match */
            return i;
        }
    }
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        PyObject *key = entries[i].me_key;
        if (key != NULL && _PyUnicode_Equal(key, name)) {
            return i;
        }
    }
    return -1;
}

/* Put `entry` (CPJIT_CACHE_WORDS words, word 0 its key) into a polymorphic
 * site: over the entry of the same type if there is one, else first, moving
 * the others down (the least recent falls off). */
static void
store_entry(uint64_t *cache, const uint64_t *entry)
{
    int slot = CPJIT_CACHE_ENTRIES - 1;
    for (int i = 0; i < CPJIT_CACHE_ENTRIES; i++) {
        uint64_t key = cache[i * CPJIT_CACHE_WORDS];
        if (key == 0 || (uint32_t)key == (uint32_t)entry[0]) {
            slot = i;
            break;
        }
    }
    if (cache[slot * CPJIT_CACHE_WORDS] == 0 || (uint32_t)cache[slot * CPJIT_CACHE_WORDS]
                                                  != (uint32_t)entry[0]) {
        memmove(cache + CPJIT_CACHE_WORDS, cache, slot * CPJIT_CACHE_WORDS * sizeof(uint64_t));
        slot = 0;
    }
    memcpy(cache + slot * CPJIT_CACHE_WORDS, entry, CPJIT_CACHE_WORDS * sizeof(uint64_t));
}

/* Forget what a polymorphic site knows about `type` (its entry is stale). */
static void
drop_entry(uint64_t *cache, PyTypeObject *type)
{
    for (int i = 0; i < CPJIT_CACHE_ENTRIES; i++) {
        uint64_t key = cache[i * CPJIT_CACHE_WORDS];
        if (key != 0 && (uint32_t)key == type->tp_version_tag) {
            cache[i * CPJIT_CACHE_WORDS] = 0;
        }
    }
}

/* What a type's attribute `name` is, for caching purposes. */
enum { DESCR_NONE, DESCR_NON_DATA, DESCR_SLOT, DESCR_OTHER };

static int
classify(PyTypeObject *type, PyObject *name, PyObject **descr_out, Py_ssize_t *offset)
{
    PyObject *descr = _PyType_Lookup(type, name);   /* also assigns a version tag */
    *descr_out = descr;
    if (descr == NULL) {
        return DESCR_NONE;
    }
    PyTypeObject *kind = Py_TYPE(descr);
    if (!(kind->tp_flags & Py_TPFLAGS_IMMUTABLETYPE)) {
        return DESCR_OTHER;   /* its class could grow a __set__ behind our back */
    }
    if (kind->tp_descr_set != NULL) {
        if (kind == &PyMemberDescr_Type) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == T_OBJECT_EX && !(member->flags & READONLY)) {
                *offset = member->offset;
                return DESCR_SLOT;
            }
        }
        return DESCR_OTHER;
    }
    return DESCR_NON_DATA;
}

static inline uint64_t
cache_key(unsigned kind, PyTypeObject *type)
{
    return ((uint64_t)kind << 32) | type->tp_version_tag;
}

PyObject *
cpjit_load_attr_miss(PyObject *owner, PyObject *name, uint64_t *cache)
{
    PyObject *attr = PyObject_GetAttr(owner, name);
    if (attr == NULL) {
        return NULL;
    }
    PyTypeObject *type = Py_TYPE(owner);
    drop_entry(cache, type);
    uint64_t entry[CPJIT_CACHE_WORDS] = {0};
    if (type == &PyModule_Type) {
        PyDictObject *dict = (PyDictObject *)((PyModuleObject *)owner)->md_dict;
        if (dict != NULL && PyDict_CheckExact(dict) && dict->ma_values == NULL
            && DK_IS_UNICODE(dict->ma_keys) && _PyType_Lookup(type, name) == NULL
            && type->tp_version_tag != 0) {
            PyDictKeysObject *keys = dict->ma_keys;
            PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
            for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
                /* The fast path compares the entry's key with the site's
                 * name by identity: cache only interned-equal keys. */
                if (entries[i].me_value == attr && entries[i].me_key == name) {
                    entry[0] = cache_key(CPJIT_ATTR_MODULE, type);
                    entry[1] = (uint64_t)i;
                    entry[2] = (uint64_t)(uintptr_t)keys;
                    store_entry(cache, entry);
                    break;
                }
            }
        }
        return attr;
    }
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return attr;
    }
    PyObject *descr;
    Py_ssize_t offset = 0;
    int kind = classify(type, name, &descr, &offset);
    if (type->tp_version_tag == 0) {
        return attr;
    }
    if (kind == DESCR_SLOT) {
        entry[0] = cache_key(CPJIT_ATTR_SLOT, type);
        entry[1] = (uint64_t)offset;
        store_entry(cache, entry);
    }
    else if (kind == DESCR_NONE || kind == DESCR_NON_DATA) {
        Py_ssize_t index = shared_keys_index(type, name);
        PyDictValues *values = index < 0 ? NULL : *_PyObject_ValuesPointer(owner);
        if (values != NULL && values->values[index] == attr) {
            entry[0] = cache_key(CPJIT_ATTR_INSTANCE_VALUE, type);
            entry[1] = (uint64_t)index;
            store_entry(cache, entry);
        }
    }
    return attr;
}

int
cpjit_store_attr_miss(PyObject *owner, PyObject *name, PyObject *value, uint64_t *cache)
{
    PyTypeObject *type = Py_TYPE(owner);
    drop_entry(cache, type);
    uint64_t entry[CPJIT_CACHE_WORDS] = {0};
    if (type->tp_setattro == PyObject_GenericSetAttr) {
        PyObject *descr;
        Py_ssize_t offset = 0;
        int kind = classify(type, name, &descr, &offset);
        if (type->tp_version_tag != 0) {
            if (kind == DESCR_SLOT) {
                entry[0] = cache_key(CPJIT_ATTR_SLOT, type);
                entry[1] = (uint64_t)offset;
                store_entry(cache, entry);
            }
            else if (kind == DESCR_NONE || kind == DESCR_NON_DATA) {
                Py_ssize_t index = shared_keys_index(type, name);
                if (index >= 0 && *_PyObject_ValuesPointer(owner) != NULL) {
                    entry[0] = cache_key(CPJIT_ATTR_INSTANCE_VALUE, type);
                    entry[1] = (uint64_t)index;
                    store_entry(cache, entry);
                }
            }
        }
    }
    return PyObject_SetAttr(owner, name, value);
}

cpjit_method
cpjit_load_method_miss(PyObject *owner, PyObject *name, uint64_t *cache)
{
    PyTypeObject *type = Py_TYPE(owner);
    drop_entry(cache, type);
    uint64_t entry[CPJIT_CACHE_WORDS] = {0};
    PyObject *method = NULL;
    int found = _PyObject_GetMethod(owner, name, &method);
    cpjit_method result = {method, found};
    if (!found || method == NULL || type->tp_getattro != PyObject_GenericGetAttr) {
        return result;
    }
    PyObject *descr = _PyType_Lookup(type, name);
    if (descr != method || !(Py_TYPE(descr)->tp_flags & Py_TPFLAGS_METHOD_DESCRIPTOR)
        || !(Py_TYPE(descr)->tp_flags & Py_TPFLAGS_IMMUTABLETYPE) || type->tp_version_tag == 0) {
        return result;
    }
    if (!(type->tp_flags & Py_TPFLAGS_MANAGED_DICT) && type->tp_dictoffset == 0) {
        entry[0] = cache_key(CPJIT_METHOD_NO_DICT, type);
        entry[1] = (uint64_t)(uintptr_t)descr;
        store_entry(cache, entry);
    }
    else if ((type->tp_flags & Py_TPFLAGS_MANAGED_DICT)
             && *_PyObject_ValuesPointer(owner) != NULL && shared_keys_index(type, name) < 0) {
        PyDictKeysObject *keys = ((PyHeapTypeObject *)type)->ht_cached_keys;
        entry[0] = cache_key(CPJIT_METHOD_WITH_VALUES, type);
        entry[1] = (uint64_t)(uintptr_t)descr;
        entry[2] = (uint64_t)(uintptr_t)keys;
        entry[3] = keys == NULL ? 0 : (uint64_t)keys->dk_nentries;
        store_entry(cache, entry);
    }
    return result;
}

/* The entry holding `name` itself (the fast path compares keys by identity)
 * in a combined unicode table, or -1. */
static Py_ssize_t
entry_index(PyDictObject *dict, PyObject *name)
{
    if (dict->ma_values != NULL || !DK_IS_UNICODE(dict->ma_keys)) {
        return -1;
    }
    PyDictKeysObject *keys = dict->ma_keys;
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        if (entries[i].me_key == name && entries[i].me_value != NULL) {
            return i;
        }
    }
    return -1;
}

PyObject *
cpjit_load_global_miss(PyObject *globals, PyObject *builtins, PyObject *name, uint64_t *cache)
{
    cache[1] = 0;
    PyObject *value = PyDict_GetItemWithError(globals, name);
    if (value != NULL) {
        Py_ssize_t i = entry_index((PyDictObject *)globals, name);
        if (i >= 0) {
            cache[0] = (uint64_t)(uintptr_t)((PyDictObject *)globals)->ma_keys;
            cache[1] = CPJIT_GLOBAL_MODULE | ((uint64_t)i << 8);
        }
        return value;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    value = PyDict_GetItemWithError(builtins, name);
    if (value != NULL) {
        Py_ssize_t i = entry_index((PyDictObject *)builtins, name);
        if (i >= 0) {
            cache[0] = ((PyDictObject *)globals)->ma_version_tag;
            cache[3] = (uint64_t)(uintptr_t)((PyDictObject *)builtins)->ma_keys;
            cache[1] = CPJIT_GLOBAL_BUILTIN | ((uint64_t)i << 8);
        }
    }
    return value;   /* NULL without an error: the name is not defined */
}

#endif
