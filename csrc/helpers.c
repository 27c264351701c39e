/* helpers.c: slow paths that machine code calls (declared in runtime.h).
 *
 * Each one reproduces what the 3.11 interpreter does for the same
 * instruction, error messages included, so that results never differ. */
#include "cpjit.h"

#include <string.h>

char cpjit_deopt_marker;

#if CPJIT_SUPPORTED
#include "internal/pycore_pyerrors.h"   /* _PyErr_Format, _PyErr_SetObject (3.11) */

/* A value boxed on the way out, or None with the MemoryError set. */
static PyObject *
boxed_or_none(PyObject *value)
{
    return value != NULL ? value : Py_NewRef(Py_None);
}

PyObject *
cpjit_side_exit(_PyInterpreterFrame *frame, PyObject **stack_pointer, JitState *state,
                const int64_t *record)
{
    int64_t counter = record[0], resume = record[1], nsteps = record[2];
    state->rwdata[CPJIT_RW_EXITS] += 1;
    state->rwdata[counter] += 1;
    const int64_t *step = record + 3;
    for (int64_t i = 0; i < nsteps; i++, step += 3) {
        int64_t action = step[0], arg = step[1], value = step[2];
        PyObject *item = NULL;
        switch (action) {
        case CPJIT_EXIT_BOX_I64:
            item = boxed_or_none(PyLong_FromLongLong(state->slots[2 * value]));
            break;
        case CPJIT_EXIT_BOX_F64:
            item = boxed_or_none(PyFloat_FromDouble(((double *)state->slots)[2 * value]));
            break;
        case CPJIT_EXIT_LOCAL:
            item = Py_NewRef(frame->localsplus[value]);
            break;
        case CPJIT_EXIT_CONST:
            item = Py_NewRef((PyObject *)(uintptr_t)value);
            break;
        case CPJIT_EXIT_SYNC_I64:
        case CPJIT_EXIT_SYNC_F64:
            if (state->slots[2 * arg + 1]) {
                PyObject *boxed = action == CPJIT_EXIT_SYNC_I64
                    ? PyLong_FromLongLong(state->slots[2 * arg])
                    : PyFloat_FromDouble(((double *)state->slots)[2 * arg]);
                if (boxed != NULL) {
                    Py_XSETREF(frame->localsplus[arg], boxed);
                }
                state->slots[2 * arg + 1] = 0;
            }
            continue;
        default:
            Py_FatalError("cpjit: bad exit record");
        }
        /* Under its top `arg` items. */
        memmove(stack_pointer - arg + 1, stack_pointer - arg, (size_t)arg * sizeof(PyObject *));
        stack_pointer[-arg] = item;
        stack_pointer++;
    }
    _PyFrame_SetStackPointer(frame, stack_pointer);
    _Py_CODEUNIT *code = CPJIT_CODE_UNITS(frame->f_code);
    if (PyErr_Occurred()) {
        frame->prev_instr = code + resume;   /* raised by the resume instruction */
        return NULL;
    }
    frame->prev_instr = code + resume - 1;
    return CPJIT_DEOPT;
}

/* An object whose deallocation runs no Python code: an int, float, str,
 * bytes, bool or None (no finalizer, no weak references, nothing inside). */
static inline int
is_leaf(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    return type == &PyLong_Type || type == &PyFloat_Type || type == &PyUnicode_Type
           || type == &PyBytes_Type || type == &PyBool_Type || op == Py_None;
}

/* An item that a dying container releases quietly: one that outlives it
 * (another reference holds it: the small ints and None, most often) or a leaf. */
static inline int
released_quietly(PyObject *item)
{
    return item == NULL || Py_REFCNT(item) > 1 || is_leaf(item);
}

/* Whether all `size` items are released quietly (out of line: the loop
 * would make every deallocation save registers). */
static int __attribute__((noinline))
items_released_quietly(PyObject **items, Py_ssize_t size)
{
    if (size > 16) {
        return 0;   /* not worth the scan: take the slow path */
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if (!released_quietly(items[i])) {
            return 0;
        }
    }
    return 1;
}

/* Whether deallocating `op` runs no Python code: a leaf, a range or range
 * iterator (they hold only ints), or an exact slice, tuple or short list
 * whose items are released quietly (what slicing and small displays drop in
 * loops).  Anything else may run a finalizer, its own or an item's. */
static inline int
dies_quietly(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    if (type == &PySlice_Type) {
        PySliceObject *slice = (PySliceObject *)op;
        return released_quietly(slice->start) && released_quietly(slice->stop)
               && released_quietly(slice->step);
    }
    if (type == &PyList_Type) {
        return items_released_quietly(((PyListObject *)op)->ob_item, PyList_GET_SIZE(op));
    }
    if (type == &PyTuple_Type) {
        return items_released_quietly(((PyTupleObject *)op)->ob_item, PyTuple_GET_SIZE(op));
    }
    return is_leaf(op) || type == &PyRange_Type || type == &PyRangeIter_Type;
}

/* Before a deallocation that may run Python code (a finalizer, a weakref
 * callback, a warning): the frame as the interpreter would have it, its
 * changed raw locals boxed.  Out of line: the common, quiet case stays a few
 * compares and a jump. */
static void __attribute__((noinline))
publish_frame(_PyInterpreterFrame *frame, JitState *state, void *instr)
{
    frame->prev_instr = (_Py_CODEUNIT *)instr;
    Py_ssize_t raw_locals = ((JitCode *)state->code)->raw_locals;
    PyObject *error_type = NULL, *error_value = NULL, *error_traceback = NULL;
    int fetched = 0;   /* an exception may be being raised: kept aside while boxing */
    for (Py_ssize_t j = 0; j < raw_locals; j++) {
        int64_t kind = state->slots[2 * j + 1];
        if (kind == CPJIT_SLOT_CLEAN) {
            continue;
        }
        if (!fetched) {
            PyErr_Fetch(&error_type, &error_value, &error_traceback);
            fetched = 1;
        }
        PyObject *boxed = kind == CPJIT_SLOT_I64
            ? PyLong_FromLongLong(state->slots[2 * j])
            : PyFloat_FromDouble(((double *)state->slots)[2 * j]);
        if (boxed == NULL) {
            PyErr_Clear();  /* stays unboxed: the machine code boxes it later */
            continue;
        }
        state->slots[2 * j + 1] = CPJIT_SLOT_CLEAN;
        Py_XSETREF(frame->localsplus[j], boxed);
    }
    if (fetched) {
        PyErr_Restore(error_type, error_value, error_traceback);
    }
}

void
cpjit_dealloc(PyObject *op, _PyInterpreterFrame *frame, JitState *state, void *instr)
{
    if (!dies_quietly(op)) {
        publish_frame(frame, state, instr);
    }
    _Py_Dealloc(op);
}

void
cpjit_raise(PyThreadState *tstate, PyObject *exc, PyObject *cause)
{
    /* do_raise() of Python/ceval.c for `raise exc [from cause]`: the same
     * checks, messages and reference handling (both are stolen). */
    PyObject *type = NULL, *value = NULL;
    if (PyExceptionClass_Check(exc)) {
        type = exc;
        value = PyObject_CallNoArgs(exc);
        if (value == NULL) {
            goto raise_error;
        }
        if (!PyExceptionInstance_Check(value)) {
            _PyErr_Format(tstate, PyExc_TypeError,
                          "calling %R should have returned an instance of "
                          "BaseException, not %R", type, Py_TYPE(value));
            goto raise_error;
        }
    }
    else if (PyExceptionInstance_Check(exc)) {
        value = exc;
        type = PyExceptionInstance_Class(exc);
        Py_INCREF(type);
    }
    else {
        Py_DECREF(exc);
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        goto raise_error;
    }
    if (cause != NULL) {
        PyObject *fixed_cause;
        if (PyExceptionClass_Check(cause)) {
            fixed_cause = PyObject_CallNoArgs(cause);
            if (fixed_cause == NULL) {
                goto raise_error;
            }
            Py_DECREF(cause);
        }
        else if (PyExceptionInstance_Check(cause)) {
            fixed_cause = cause;
        }
        else if (Py_IsNone(cause)) {
            Py_DECREF(cause);
            fixed_cause = NULL;
        }
        else {
            PyErr_SetString(PyExc_TypeError, "exception causes must derive from BaseException");
            goto raise_error;
        }
        PyException_SetCause(value, fixed_cause);
    }
    _PyErr_SetObject(tstate, type, value);
    Py_DECREF(value);
    Py_DECREF(type);
    return;
raise_error:
    Py_XDECREF(value);
    Py_XDECREF(type);
    Py_XDECREF(cause);
}

int
cpjit_handle_pending(PyThreadState *tstate)
{
    /* Signals (main thread only) and pending calls. */
    if (Py_MakePendingCalls() < 0) {
        return -1;
    }
    /* Another thread asked for the GIL: let it run. */
    if (_Py_atomic_load_relaxed(&tstate->interp->ceval.gil_drop_request)) {
        PyThreadState *saved = PyEval_SaveThread();
        PyEval_RestoreThread(saved);
    }
    /* An asynchronous exception (PyThreadState_SetAsyncExc) is raised by the
     * interpreter, which also clears the request. */
    if (tstate->async_exc != NULL) {
        return 1;
    }
    return 0;
}

int
cpjit_handle_gil_request(PyThreadState *tstate)
{
    PyInterpreterState *interp = tstate->interp;
    if (_Py_atomic_load_relaxed(&interp->runtime->ceval.signals_pending)
        || _Py_atomic_load_relaxed(&interp->ceval.pending.calls_to_do)
        || interp->ceval.pending.async_exc || tstate->async_exc != NULL) {
        return 1;
    }
    if (_Py_atomic_load_relaxed(&interp->ceval.gil_drop_request)) {
        PyThreadState *saved = PyEval_SaveThread();
        PyEval_RestoreThread(saved);
    }
    return 0;
}

int
cpjit_unpack_iterable(PyThreadState *tstate, PyObject *v, int argcnt, PyObject **sp)
{
    (void)tstate;
    PyObject *it = PyObject_GetIter(v);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)
            && Py_TYPE(v)->tp_iter == NULL && !PySequence_Check(v)) {
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object",
                         Py_TYPE(v)->tp_name);
        }
        return 0;
    }
    int i = 0;
    for (; i < argcnt; i++) {
        PyObject *w = PyIter_Next(it);
        if (w == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError,
                             "not enough values to unpack (expected %d, got %d)", argcnt, i);
            }
            goto error;
        }
        *--sp = w;
    }
    PyObject *extra = PyIter_Next(it);
    if (extra == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        Py_DECREF(it);
        return 1;
    }
    Py_DECREF(extra);
    PyErr_Format(PyExc_ValueError, "too many values to unpack (expected %d)", argcnt);
error:
    for (; i > 0; i--, sp++) {
        Py_DECREF(*sp);
    }
    Py_DECREF(it);
    return 0;
}

int
cpjit_list_extend(PyThreadState *tstate, PyObject *list, PyObject *iterable)
{
    (void)tstate;
    PyObject *none = _PyList_Extend((PyListObject *)list, iterable);
    if (none == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)
            && Py_TYPE(iterable)->tp_iter == NULL && !PySequence_Check(iterable)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "Value after * must be an iterable, not %.200s",
                         Py_TYPE(iterable)->tp_name);
        }
        return -1;
    }
    Py_DECREF(none);
    return 0;
}

int
cpjit_dict_update(PyThreadState *tstate, PyObject *dict, PyObject *update)
{
    (void)tstate;
    if (PyDict_Update(dict, update) < 0) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Format(PyExc_TypeError, "'%.200s' object is not a mapping",
                         Py_TYPE(update)->tp_name);
        }
        return -1;
    }
    return 0;
}

PyObject *
cpjit_power(PyObject *base, PyObject *exponent)
{
    return PyNumber_Power(base, exponent, Py_None);
}

PyObject *
cpjit_inplace_power(PyObject *base, PyObject *exponent)
{
    return PyNumber_InPlacePower(base, exponent, Py_None);
}

#else  /* !CPJIT_SUPPORTED: the symbols exist but machine code never runs */

int cpjit_handle_pending(PyThreadState *t) { (void)t; return 0; }
int cpjit_handle_gil_request(PyThreadState *t) { (void)t; return 0; }
int cpjit_unpack_iterable(PyThreadState *t, PyObject *v, int n, PyObject **sp)
{ (void)t; (void)v; (void)n; (void)sp; return 0; }
int cpjit_list_extend(PyThreadState *t, PyObject *l, PyObject *i) { (void)t; (void)l; (void)i; return -1; }
int cpjit_dict_update(PyThreadState *t, PyObject *d, PyObject *u) { (void)t; (void)d; (void)u; return -1; }
PyObject *cpjit_power(PyObject *b, PyObject *e) { return PyNumber_Power(b, e, Py_None); }
PyObject *cpjit_inplace_power(PyObject *b, PyObject *e) { return PyNumber_InPlacePower(b, e, Py_None); }

#endif
