/* inline.h: small helpers shared by uop bodies (compiled into each stencil). */
#ifndef CPJIT_INLINE_H
#define CPJIT_INLINE_H

/* The int object of `v` (a new reference, NULL on error): a cached small
 * int without a call, as the interpreter's int arithmetic does. */
static inline __attribute__((always_inline)) PyObject *
cpjit_box_i64(int64_t v)
{
    if ((uint64_t)(v - CPJIT_SMALL_INT_MIN) < (uint64_t)(CPJIT_SMALL_INT_END - CPJIT_SMALL_INT_MIN)) {
        PyObject *small = CPJIT_SMALL_INT(v);
        Py_INCREF(small);
        return small;
    }
    return PyLong_FromLongLong(v);
}

/* Both operands exact ints of at most one digit (|v| < 2**30). */
static inline __attribute__((always_inline)) int
cpjit_both_compact_ints(PyObject *a, PyObject *b)
{
    return PyLong_CheckExact(a) && PyLong_CheckExact(b)
        && CPJIT_LONG_IS_COMPACT(a) && CPJIT_LONG_IS_COMPACT(b);
}

static inline __attribute__((always_inline)) int
cpjit_both_floats(PyObject *a, PyObject *b)
{
    return PyFloat_CheckExact(a) && PyFloat_CheckExact(b);
}

/* Python's item index rule: a negative index counts from the end.  Turns
 * `*index` into the offset of that item of `size` items; whether it is in
 * range (else the caller side-exits and the interpreter raises IndexError).
 * (Written so that clang makes the same code as the rule written out.) */
static inline __attribute__((always_inline)) int
cpjit_item_index(Py_ssize_t *index, Py_ssize_t size)
{
    if (*index < 0) {
        *index += size;
    }
    return (size_t)*index < (size_t)size;
}

/* iter(range(start, stop)) without the range object: what the range type's
 * iterator would be (its step is 1).  NULL when the length does not fit in a
 * C long (the interpreter makes its long iterator) or memory ran out (the
 * error is cleared: the interpreter, redoing the instruction, raises it
 * itself); the caller side-exits.  Range iterators are not tracked by the
 * GC, so making one runs no Python code. */
static inline __attribute__((always_inline)) PyObject *
cpjit_new_range_iter(int64_t start, int64_t stop)
{
    uint64_t len = stop > start ? (uint64_t)stop - (uint64_t)start : 0;
    if (len > (uint64_t)LONG_MAX) {
        return NULL;
    }
    cpjit_rangeiterobject *it = PyObject_New(cpjit_rangeiterobject, &PyRangeIter_Type);
    if (it == NULL) {
        PyErr_Clear();
        return NULL;
    }
    CPJIT_RANGE_ITER_INIT(it, start, (long)len);
    return (PyObject *)it;
}

/* One bound of a slice as PySlice_Unpack reads it: None is `none`, an
 * exact compact int its value; 0 for anything else (the caller side-exits
 * and the interpreter makes the slice object, converting it its own way). */
static inline __attribute__((always_inline)) int
cpjit_slice_index(PyObject *v, Py_ssize_t none, Py_ssize_t *out)
{
    if (v == Py_None) {
        *out = none;
        return 1;
    }
    if (PyLong_CheckExact(v) && CPJIT_LONG_IS_COMPACT(v)) {
        *out = CPJIT_LONG_COMPACT_VALUE(v);
        return 1;
    }
    return 0;
}

/* start:stop:step (step Py_None for start:stop) as PySlice_Unpack and
 * PySlice_AdjustIndices make them for a sequence of `size` items: the number
 * of items the slice selects, or -1 where a bound is not None or a compact
 * int, or the step is 0 (the interpreter raises ValueError). */
static inline __attribute__((always_inline)) Py_ssize_t
cpjit_slice_indices(PyObject *start, PyObject *stop, PyObject *step, Py_ssize_t size,
                    Py_ssize_t *istart, Py_ssize_t *istop, Py_ssize_t *istep)
{
    if (!cpjit_slice_index(step, 1, istep) || *istep == 0
        || !cpjit_slice_index(start, *istep < 0 ? PY_SSIZE_T_MAX : 0, istart)
        || !cpjit_slice_index(stop, *istep < 0 ? PY_SSIZE_T_MIN : PY_SSIZE_T_MAX, istop)) {
        return -1;
    }
    return PySlice_AdjustIndices(size, istart, istop, *istep);
}

/* The step of a slice uop (stencils/uops/containers.c): its step[oparg]
 * input, or None for start:stop. */
#define SLICE_STEP (oparg ? step[0] : Py_None)

/* The end of a _BINARY_SLICE_* uop (its inputs named container, start,
 * stop and step[oparg]): without a result (memory ran out) the error is
 * cleared and the uop side-exits, for the interpreter to redo the
 * instruction; else its inputs are released. */
#define SLICE_DONE(res)                                 \
    do {                                                \
        if (UNLIKELY((res) == NULL)) {                  \
            PyErr_Clear();                              \
            DEOPT_IF(1);                                \
        }                                               \
        Py_DECREF(container);                           \
        Py_DECREF(start);                               \
        Py_DECREF(stop);                                \
        if (oparg) {                                    \
            Py_DECREF(step[0]);                         \
        }                                               \
    } while (0)

/* container[start:stop:step] through a slice object, for an exact tuple or
 * str whose bounds cpjit_slice_indices took (None or compact ints, a step
 * not 0): its subscript function runs no Python code then, and can only
 * fail for memory (NULL with the error set: the caller clears it and
 * side-exits). */
static inline __attribute__((always_inline)) PyObject *
cpjit_subscript_slice(PyObject *container, PyObject *start, PyObject *stop, PyObject *step)
{
    PyObject *slice = PySlice_New(start, stop, step);
    if (slice == NULL) {
        return NULL;
    }
    PyObject *res = PyObject_GetItem(container, slice);
    /* (CPython's own release: a slice of ints and None frees nothing that
     * could run code, so it needs none of cpjit_decref's frame care.) */
    Py_DecRef(slice);
    return res;
}

/* The global `name` through its cache (stencils/uops/caches.c), or NULL
 * where the cache does not hold it (a borrowed reference). */
static inline __attribute__((always_inline)) PyObject *
cpjit_cached_global(PyDictObject *globals, PyDictObject *builtins, PyObject *name, uint64_t *cache)
{
    uint64_t kind = cache[1];
    /* The entry must still hold this very name (the site keeps it alive, so
     * no other string can have its address): then its value is current. */
    Py_ssize_t index = (Py_ssize_t)(kind >> 8);
    PyDictKeysObject *keys;
    if ((kind & 0xff) == CPJIT_GLOBAL_MODULE) {
        keys = globals->ma_keys;
        if (UNLIKELY((uint64_t)(uintptr_t)keys != cache[0])) {
            return NULL;
        }
    }
    else if ((kind & 0xff) == CPJIT_GLOBAL_BUILTIN) {
        keys = builtins->ma_keys;
        if (UNLIKELY(globals->ma_version_tag != cache[0]
                     || (uint64_t)(uintptr_t)keys != cache[3])) {
            return NULL;
        }
    }
    else {
        return NULL;
    }
    if (UNLIKELY(index >= keys->dk_nentries)) {
        return NULL;
    }
    PyDictUnicodeEntry *entry = &DK_UNICODE_ENTRIES(keys)[index];
    return entry->me_key == name ? entry->me_value : NULL;
}

/* A float, or a compact int (exactly representable as a double). */
static inline __attribute__((always_inline)) int
cpjit_as_double(PyObject *o, double *out)
{
    if (PyFloat_CheckExact(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 1;
    }
    if (PyLong_CheckExact(o) && CPJIT_LONG_IS_COMPACT(o)) {
        *out = (double)CPJIT_LONG_COMPACT_VALUE(o);
        return 1;
    }
    return 0;
}

/* Body of a binary operator with an int fast path (INT_EXPR over int64_t a,
 * b), a float fast path (FLOAT_EXPR over double x, y; taken when one operand
 * is a float and the other a float or compact int) and the generic C-API
 * function in operand0, which may run Python code (sets `escaped`).  INT_OK /
 * FLOAT_OK veto a fast path (division by zero).  Used by the _BINARY_OP_*
 * uops in stencils/uops/arith.c. */
#define CPJIT_BINARY_ARITH(INT_OK, INT_EXPR, FLOAT_OK, FLOAT_EXPR)                 \
    do {                                                                          \
        double x, y;                                                              \
        if (LIKELY(cpjit_both_compact_ints(lhs, rhs))) {                          \
            int64_t a = CPJIT_LONG_COMPACT_VALUE(lhs);                            \
            int64_t b = CPJIT_LONG_COMPACT_VALUE(rhs);                            \
            if (INT_OK) {                                                         \
                res = (INT_EXPR);                                                 \
                break;                                                            \
            }                                                                     \
        }                                                                         \
        else if ((PyFloat_CheckExact(lhs) || PyFloat_CheckExact(rhs))             \
                 && cpjit_as_double(lhs, &x) && cpjit_as_double(rhs, &y)         \
                 && (FLOAT_OK)) {                                                 \
            res = PyFloat_FromDouble(FLOAT_EXPR);                                 \
            break;                                                                \
        }                                                                         \
        SET_IP();                                                                 \
        res = ((binaryfunc)operand0)(lhs, rhs);                                   \
        escaped = 1;                                                              \
    } while (0)

/* Python's floor division and modulo of machine integers (b != 0, no
 * overflow: the operands are compact). */
static inline __attribute__((always_inline)) int64_t
cpjit_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b, r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}

static inline __attribute__((always_inline)) int64_t
cpjit_mod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

/* Rich comparison as a bit test: `lt | eq << 1 | gt << 2 | unordered << 3`
 * against the mask of the operator, one nibble per Py_LT..Py_GE in
 * CPJIT_CMP_MASKS (LT 1, LE 3, EQ 2, NE 0xD, GT 4, GE 6). */
#define CPJIT_CMP_MASKS 0x64D231u
#define CPJIT_CMP_MASK(op) ((CPJIT_CMP_MASKS >> (4 * (op))) & 0xFu)

static inline __attribute__((always_inline)) int
cpjit_compare_i64(int64_t a, int64_t b, int op)
{
    unsigned bits = (unsigned)(a < b) | (unsigned)(a == b) << 1 | (unsigned)(a > b) << 2;
    return (bits & CPJIT_CMP_MASK(op)) != 0;
}

static inline __attribute__((always_inline)) int
cpjit_compare_f64(double a, double b, int op)
{
    unsigned bits = (unsigned)(a < b) | (unsigned)(a == b) << 1 | (unsigned)(a > b) << 2;
    bits |= (unsigned)(bits == 0) << 3;
    return (bits & CPJIT_CMP_MASK(op)) != 0;
}

static inline __attribute__((always_inline)) PyObject *
cpjit_bool(int value)
{
    PyObject *res = value ? Py_True : Py_False;
    Py_INCREF(res);
    return res;
}

/* *place (a list item or a local) = a float object holding `value`.  A float
 * that only *place refers to is overwritten in place: nothing else can see
 * it, so this is replacing it with a new float minus the allocation and the
 * deallocation.  -1, with nothing changed, when there is no memory. */
static inline __attribute__((always_inline)) int
cpjit_store_double(_PyInterpreterFrame *frame, JitState *state, PyObject **place, double value)
{
    PyObject *old = *place;
    if (old != NULL && PyFloat_CheckExact(old) && Py_REFCNT(old) == 1) {
        ((PyFloatObject *)old)->ob_fval = value;
        return 0;
    }
    PyObject *fresh = PyFloat_FromDouble(value);
    if (fresh == NULL) {
        return -1;
    }
    *place = fresh;
    Py_XDECREF(old);
    return 0;
}

/* An exact int that fits in 64 bits, as an int64. */
static inline __attribute__((always_inline)) int
cpjit_unbox_int(PyObject *o, int64_t *out)
{
    if (!PyLong_CheckExact(o)) {
        return 0;
    }
    Py_ssize_t size = Py_SIZE(o);
    const digit *d = ((PyLongObject *)o)->ob_digit;
    if (LIKELY(size >= -1 && size <= 1)) {
        *out = (int64_t)size * (int64_t)d[0];
        return 1;
    }
    if (size == 2 || size == -2) {
        int64_t magnitude = (int64_t)d[0] | ((int64_t)d[1] << PyLong_SHIFT);
        *out = size < 0 ? -magnitude : magnitude;
        return 1;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(o, &overflow);
    *out = value;
    return !overflow;
}

/* Put `value` into the stack under its top `above` items; returns what goes
 * into the new top slot (the caller's output). */
static inline __attribute__((always_inline)) PyObject *
cpjit_insert(PyObject **stack_pointer, int above, PyObject *value)
{
    if (LIKELY(above == 0)) {  /* the usual cases: keep them on the hot path */
        return value;
    }
    if (LIKELY(above == 1)) {
        PyObject *top = stack_pointer[-1];
        stack_pointer[-1] = value;
        return top;
    }
    PyObject *top = stack_pointer[-1];
    for (int i = 1; i < above; i++) {
        stack_pointer[-i] = stack_pointer[-i - 1];
    }
    stack_pointer[-above] = value;
    return top;
}

/* The entry of a polymorphic inline cache (csrc/runtime.h) that holds
 * what is known about `type`, or NULL.  The first entry is the most recent
 * type: a monomorphic site matches at once. */
static inline __attribute__((always_inline)) uint64_t *
cpjit_cache_entry(uint64_t *cache, PyTypeObject *type)
{
    uint32_t version = type->tp_version_tag;
    for (int i = 0; i < CPJIT_CACHE_ENTRIES; i++) {
        uint64_t *entry = cache + i * CPJIT_CACHE_WORDS;
        if (LIKELY((uint32_t)entry[0] == version && entry[0] != 0)) {
            return entry;
        }
    }
    return NULL;
}

/* The profile bit of an object's type (cpjit/feedback.py PROFILE_TYPES:
 * the same order). */
static inline __attribute__((always_inline)) unsigned
cpjit_type_bit(PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    return t == &PyLong_Type ? 1u << 0
         : t == &PyFloat_Type ? 1u << 1
         : t == &PyUnicode_Type ? 1u << 2
         : t == &PyList_Type ? 1u << 3
         : t == &PyTuple_Type ? 1u << 4
         : t == &PyDict_Type ? 1u << 5
         : t == &PyBool_Type ? 1u << 6
         : t == &PyRangeIter_Type ? 1u << 7
         : t == &PyListIter_Type ? 1u << 8
         : t == &PyTupleIter_Type ? 1u << 9
         : t == &PyRange_Type ? 1u << 10
         : 1u << 15;
}

/* The kind of a call, for the profile of a CALL (cpjit/feedback.py
 * CALL_KINDS: the same order): what `meth_or_null` and `callable` (as _CALL
 * names them) are, for `nargs` arguments. */
static inline __attribute__((always_inline)) unsigned
cpjit_call_kind_bit(PyObject *meth_or_null, PyObject *callable, int nargs)
{
    if (meth_or_null != NULL) {
        if (!Py_IS_TYPE(meth_or_null, &PyMethodDescr_Type)) {
            return 1u << 5;
        }
        PyMethodDescrObject *descr = (PyMethodDescrObject *)meth_or_null;
        if (!Py_IS_TYPE(callable, descr->d_common.d_type)) {
            return 1u << 5;
        }
        int flags = descr->d_method->ml_flags;
        return flags == METH_NOARGS && nargs == 0 ? 1u << 2
             : flags == METH_O && nargs == 1 ? 1u << 3
             : flags == METH_FASTCALL ? 1u << 4
             : 1u << 5;
    }
    if (!PyCFunction_CheckExact(callable)) {
        return 1u << 5;
    }
    int flags = PyCFunction_GET_FLAGS(callable);
    return flags == METH_O && nargs == 1 ? 1u << 0
         : flags == METH_FASTCALL ? 1u << 1
         : 1u << 5;
}

/* dict[key] for an exact dict, as the interpreter's BINARY_SUBSCR_DICT: a new
 * reference, or NULL with KeyError (the key looked up once) or another
 * error.  A key that is not an exact str or int may run Python code: the
 * frame is published first and *escaped set. */
static inline __attribute__((always_inline)) PyObject *
cpjit_dict_subscript(_PyInterpreterFrame *frame, PyObject *dict, PyObject *key, int *escaped)
{
    if (!(PyUnicode_CheckExact(key) || PyLong_CheckExact(key))) {
        SET_IP();
        *escaped = 1;
    }
    PyObject *res = PyDict_GetItemWithError(dict, key);
    if (res == NULL) {
        if (!PyErr_Occurred()) {
            _PyErr_SetKeyError(key);
        }
        return NULL;
    }
    return Py_NewRef(res);
}

/* A METH_O or METH_NOARGS C function with the recursion check CPython
 * promises for calls that are not vectorcalls. */
static inline __attribute__((always_inline)) PyObject *
cpjit_call_checked(PyThreadState *tstate, PyCFunction function, PyObject *self, PyObject *arg)
{
    if (_Py_EnterRecursiveCallTstate(tstate, " while calling a Python object")) {
        return NULL;
    }
    PyObject *result = function(self, arg);
    _Py_LeaveRecursiveCallTstate(tstate);
    return result;
}

#endif /* CPJIT_INLINE_H */
