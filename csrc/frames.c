/* frames.c: pushing and clearing the frames the runtime creates itself.
 *
 * A call to a compiled function with plain positional arguments does not go
 * through _PyFunction_Vectorcall: the runtime pushes the frame on the
 * thread's data stack, runs the machine code on it and clears it, as
 * _PyEval_Vector / _PyEvalFrameClearAndPop do in 3.11 (whose helpers are not
 * exported).  Anything unusual (a full data stack chunk) is left to CPython.
 */
#include "cpjit.h"

#if CPJIT_SUPPORTED

#include <string.h>

_PyInterpreterFrame *
cpjit_push_frame(PyThreadState *tstate, PyFunctionObject *func, PyCodeObject *co,
                 PyObject *const *args, Py_ssize_t nargs)
{
    PyObject **base = tstate->datastack_top;
    size_t size = CPJIT_FRAME_SIZE(co);
    if (base == NULL || base + size >= tstate->datastack_limit) {
        return NULL;   /* a new chunk is needed: CPython's call path does that */
    }
    tstate->datastack_top = base + size;
    _PyInterpreterFrame *frame = (_PyInterpreterFrame *)base;
    Py_INCREF(func);
    _PyFrame_InitializeSpecials(frame, func, NULL, co->co_nlocalsplus);
    PyObject **locals = frame->localsplus;
    Py_ssize_t argcount = co->co_argcount;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        locals[i] = Py_NewRef(args[i]);
    }
    if (nargs < argcount) {
        /* The caller checked that the defaults cover the missing arguments. */
        PyObject *defaults = func->func_defaults;
        Py_ssize_t first = argcount - PyTuple_GET_SIZE(defaults);
        for (Py_ssize_t i = nargs; i < argcount; i++) {
            locals[i] = Py_NewRef(PyTuple_GET_ITEM(defaults, i - first));
        }
    }
    for (Py_ssize_t i = argcount; i < co->co_nlocalsplus; i++) {
        locals[i] = NULL;
    }
    return frame;
}

/* A frame object outlives its frame: move the frame's data into it (what
 * take_ownership() in Python/frame.c does). */
static void
take_ownership(PyFrameObject *f, _PyInterpreterFrame *frame)
{
    /* f->f_back from frame->previous, before the link goes away. */
    PyFrameObject *back = PyFrame_GetBack(f);
    if (back == NULL && PyErr_Occurred()) {
        PyErr_Clear();   /* MemoryError: nothing to link */
    }
    Py_ssize_t size = (char *)&frame->localsplus[frame->stacktop] - (char *)frame;
    memcpy((_PyInterpreterFrame *)f->_f_frame_data, frame, (size_t)size);
    frame = (_PyInterpreterFrame *)f->_f_frame_data;
    f->f_frame = frame;
    frame->owner = FRAME_OWNED_BY_FRAME_OBJECT;
    if (_PyFrame_IsIncomplete(frame)) {
        PyCodeObject *code = frame->f_code;
        frame->prev_instr = _PyCode_CODE(code) + code->_co_firsttraceable;
    }
    if (back != NULL) {
        f->f_back = back;   /* the reference PyFrame_GetBack returned */
    }
    frame->previous = NULL;
    if (!_PyObject_GC_IS_TRACKED((PyObject *)f)) {
        _PyObject_GC_TRACK((PyObject *)f);
    }
}

void
cpjit_pop_frame(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
    /* As _PyEvalFrameClearAndPop: the frame is no longer current. */
    tstate->recursion_remaining--;
    if (frame->frame_obj != NULL) {
        PyFrameObject *f = frame->frame_obj;
        frame->frame_obj = NULL;
        if (Py_REFCNT(f) > 1) {
            take_ownership(f, frame);
            Py_DECREF(f);
            goto pop;
        }
        Py_DECREF(f);
    }
    for (int i = 0; i < frame->stacktop; i++) {
        Py_XDECREF(frame->localsplus[i]);
    }
    Py_XDECREF(frame->f_locals);
    Py_DECREF(frame->f_func);
    Py_DECREF(frame->f_code);
pop:
    tstate->recursion_remaining++;
    /* We pushed it inside the current chunk: popping is moving the top back. */
    tstate->datastack_top = (PyObject **)frame;
}

#endif
