/* entry.c: running machine code on CPython's own frame.
 *
 * Two ways in, both ending in run_machine_code(), which does the bookkeeping
 * of _PyEval_EvalFrameDefault's entry and exit (the C frame, _PyCFrame, that
 * publishes the frame to sys._getframe and tracebacks; is_entry; the
 * recursion counter) and hands the frame to the interpreter when the machine
 * code side-exits or raises:
 *
 * - Fast path: a call with plain positional arguments (the common case, and
 *   every call between jitted functions) pushes the frame on the thread's
 *   data stack itself, runs the machine code and clears and pops the frame,
 *   as _PyEval_Vector and _PyEvalFrameClearAndPop do in 3.11 (their helpers
 *   are not exported).  A full data stack chunk is left to CPython.
 * - Otherwise (keywords, *args, a full data stack chunk): cpjit's PEP 523
 *   eval-frame function is installed for exactly one frame evaluation and the
 *   original function is called, so that CPython binds the arguments and
 *   pushes the frame; the eval-frame function removes itself first thing and
 *   runs the machine code on that frame.  The hook is never left installed:
 *   with a PEP 523 function present CPython stops inlining Python calls.
 */
#include "cpjit.h"

#include <alloca.h>
#include <pthread.h>
#include <string.h>

cpjit_counters cpjit_stats;

#if CPJIT_SUPPORTED

typedef struct {
    JitCode *pending;        /* code for the next frame evaluated by the hook */
    uintptr_t stack_limit;   /* lowest C stack address we let machine code reach */
} ThreadState;

static _Thread_local ThreadState thread_state;

/* ---- frames pushed by the runtime ---- */

static inline _PyInterpreterFrame *
push_frame(PyThreadState *tstate, PyFunctionObject *func, PyCodeObject *co,
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

static inline void
pop_frame(PyThreadState *tstate, _PyInterpreterFrame *frame)
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

/* ---- C stack guard ---- */

static uintptr_t
compute_stack_limit(void)
{
    pthread_attr_t attr;
    void *base;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        return 1;   /* unknown: never trip */
    }
    int err = pthread_attr_getstack(&attr, &base, &size);
    pthread_attr_destroy(&attr);
    if (err != 0 || size == 0) {
        return 1;
    }
    /* Keep an eighth of the stack (64 KiB to 1 MiB) for whatever runs on top
     * of the deepest machine code: C functions, the interpreter, finalizers. */
    size_t margin = size / 8;
    if (margin < (64 << 10)) {
        margin = size / 2 < (64 << 10) ? size / 2 : (64 << 10);
    }
    if (margin > (1 << 20)) {
        margin = 1 << 20;
    }
    return (uintptr_t)base + margin;
}

static uintptr_t
thread_stack_limit(void)
{
    ThreadState *ts = &thread_state;
    if (ts->stack_limit == 0) {
        ts->stack_limit = compute_stack_limit();
    }
    return ts->stack_limit;
}

static int
stack_exhausted(uintptr_t limit)
{
    if ((uintptr_t)__builtin_frame_address(0) < limit) {
        PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded");
        return 1;
    }
    return 0;
}

int
cpjit_check_c_stack(void)
{
    return stack_exhausted(thread_stack_limit()) ? -1 : 0;
}

/* ---- running a frame ---- */

static inline __attribute__((always_inline)) PyObject *
run_machine_code(PyThreadState *tstate, _PyInterpreterFrame *frame, JitCode *code,
                 uintptr_t stack_limit)
{
    /* As _PyEval_EvalFrameDefault does on entry: a C frame publishing `frame`. */
    _PyCFrame cframe;
    _PyCFrame *prev_cframe = tstate->cframe;
    cframe.use_tracing = prev_cframe->use_tracing;
    cframe.previous = prev_cframe;
    tstate->cframe = &cframe;
    frame->is_entry = true;
    frame->previous = prev_cframe->current_frame;
    cframe.current_frame = frame;
    if (_Py_EnterRecursiveCallTstate(tstate, "")) {
        /* RecursionError set; the counter is balanced again (see ceval.c). */
        tstate->cframe = prev_cframe;
        return NULL;
    }
    JitState *state = code->nslots == 0 ? &(JitState){0}
                      : alloca(sizeof(JitState) + (size_t)code->nslots * sizeof(int64_t));
    state->code = (PyObject *)code;
    state->stack_limit = stack_limit;
    state->rwdata = code->rwdata;
    /* Raw locals start clean (cpjit_dealloc boxes the changed ones). */
    for (Py_ssize_t j = 0; j < code->raw_locals; j++) {
        state->slots[2 * j + 1] = CPJIT_SLOT_CLEAN;
    }
    jit_entry_fn entry = (jit_entry_fn)(void *)(code->memory + code->entry_offset);
    cpjit_stats.entries++;
    code->active++;
    PyObject *result = entry(frame, _PyFrame_GetStackPointer(frame), tstate, state);
    code->active--;
    _Py_LeaveRecursiveCallTstate(tstate);
    tstate->cframe = cframe.previous;
    tstate->cframe->use_tracing = cframe.use_tracing;
    if (result == CPJIT_DEOPT) {
        /* frame->prev_instr and the stack were set for the resume point. */
        cpjit_stats.deopts++;
        return _PyEval_EvalFrameDefault(tstate, frame, 0);
    }
    if (result == NULL) {
        /* frame->prev_instr is the faulting instruction: the interpreter adds
         * the traceback entry and unwinds to a handler, or out. */
        cpjit_stats.errors++;
        return _PyEval_EvalFrameDefault(tstate, frame, 1);
    }
    return result;
}

/* Whether `nargs` positional arguments bind to `func` without CPython's
 * general argument binding. */
static inline int
binds_positionally(PyFunctionObject *func, JitCode *code, Py_ssize_t nargs)
{
    Py_ssize_t argcount = code->fast_argcount;
    if (nargs == argcount) {
        return 1;
    }
    return argcount >= 0 && nargs < argcount && func->func_defaults != NULL
           && nargs >= argcount - PyTuple_GET_SIZE(func->func_defaults);
}

/* Push the frame ourselves and run `code` on it; NULL with *handled = 0 when
 * the frame could not be pushed. */
static inline __attribute__((always_inline)) PyObject *
call_fast(PyThreadState *tstate, PyFunctionObject *func, JitCode *code,
          PyObject *const *args, Py_ssize_t nargs, uintptr_t stack_limit, int *handled)
{
    _PyInterpreterFrame *frame = push_frame(tstate, func, (PyCodeObject *)code->co, args, nargs);
    if (frame == NULL) {
        *handled = 0;
        return NULL;
    }
    *handled = 1;
    Py_INCREF(code);   /* the code may be replaced while it runs */
    PyObject *result = run_machine_code(tstate, frame, code, stack_limit);
    Py_DECREF(code);
    pop_frame(tstate, frame);
    return result;
}

static PyObject *
cpjit_eval_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag)
{
    CPJIT_SET_EVAL_FRAME(tstate->interp, NULL);   /* scoped: this evaluation only */
    ThreadState *ts = &thread_state;
    JitCode *code = ts->pending;
    ts->pending = NULL;
    if (code == NULL || throwflag || frame->f_code != (PyCodeObject *)code->co
        || frame->owner != FRAME_OWNED_BY_THREAD || CPJIT_TRACING(tstate)) {
        /* Not the frame we installed the hook for (a finalizer ran during
         * argument binding, another thread got the GIL): the interpreter. */
        cpjit_stats.not_entered++;
        return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    }
    return run_machine_code(tstate, frame, code, ts->stack_limit);
}

/* Through CPython's call path, with the hook installed for one evaluation. */
static PyObject *
call_with_hook(PyThreadState *tstate, PyObject *func, JitCode *code, PyObject *const *args,
               size_t nargsf, PyObject *kwnames)
{
    ThreadState *ts = &thread_state;
    Py_INCREF(code);
    ts->pending = code;
    CPJIT_SET_EVAL_FRAME(tstate->interp, cpjit_eval_frame);
    PyObject *result = _PyFunction_Vectorcall(func, args, nargsf, kwnames);
    if (CPJIT_GET_EVAL_FRAME(tstate->interp) == cpjit_eval_frame) {
        /* No frame was evaluated (the arguments did not bind). */
        CPJIT_SET_EVAL_FRAME(tstate->interp, NULL);
    }
    ts->pending = NULL;
    Py_DECREF(code);
    return result;
}

static inline __attribute__((always_inline)) PyObject *
call_compiled(PyThreadState *tstate, PyObject *func, JitCode *code, PyObject *const *args,
              size_t nargsf, PyObject *kwnames, uintptr_t stack_limit)
{
    if (stack_exhausted(stack_limit)) {
        return NULL;
    }
    if (CPJIT_GET_EVAL_FRAME(tstate->interp) != NULL || CPJIT_TRACING(tstate)) {
        /* A debugger's own PEP 523 hook, or tracing/profiling: tier 1. */
        cpjit_stats.not_entered++;
        return _PyFunction_Vectorcall(func, args, nargsf, kwnames);
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && binds_positionally((PyFunctionObject *)func, code, nargs)) {
        int handled;
        PyObject *result = call_fast(tstate, (PyFunctionObject *)func, code, args, nargs,
                                     stack_limit, &handled);
        if (handled) {
            return result;
        }
    }
    return call_with_hook(tstate, func, code, args, nargsf, kwnames);
}

PyObject *
cpjit_call_jitted(PyObject *func, JitCode *code, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    return call_compiled(_PyThreadState_GET(), func, code, args, nargsf, kwnames,
                         thread_stack_limit());
}

/* METH_O and METH_NOARGS functions get the recursion check CPython promises
 * for calls that are not vectorcalls. */
static inline PyObject *
call_checked(PyThreadState *tstate, PyCFunction function, PyObject *self, PyObject *arg)
{
    if (_Py_EnterRecursiveCallTstate(tstate, " while calling a Python object")) {
        return NULL;
    }
    PyObject *result = function(self, arg);
    _Py_LeaveRecursiveCallTstate(tstate);
    return result;
}

/* A C function called the way its flags say, as the interpreter's specialized
 * PRECALL forms do (no vectorcall indirection, the same checks).  NULL with
 * *handled = 0 when the flags are not one of these shapes. */
static inline PyObject *
call_method_def(PyThreadState *tstate, PyMethodDef *def, PyObject *self,
                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *handled)
{
    *handled = 1;
    switch (def->ml_flags) {
    case METH_FASTCALL:
        if (kwnames == NULL) {
            return ((_PyCFunctionFast)(void (*)(void))def->ml_meth)(self, args, nargs);
        }
        break;
    case METH_FASTCALL | METH_KEYWORDS:
        return ((_PyCFunctionFastWithKeywords)(void (*)(void))def->ml_meth)(self, args, nargs,
                                                                           kwnames);
    case METH_O:
        if (kwnames == NULL && nargs == 1) {
            return call_checked(tstate, def->ml_meth, self, args[0]);
        }
        break;
    case METH_NOARGS:
        if (kwnames == NULL && nargs == 0) {
            return call_checked(tstate, def->ml_meth, self, NULL);
        }
        break;
    }
    *handled = 0;
    return NULL;
}

/* Builtin functions (len, isinstance, bound methods of builtin objects) and
 * method descriptors called on an object of their exact type (str.lower,
 * dict.get after LOAD_METHOD): straight into the C function.  NULL with
 * *handled = 0 for anything else. */
static inline PyObject *
call_c(PyThreadState *tstate, PyObject *callable, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames, int *handled)
{
    PyTypeObject *type = Py_TYPE(callable);
    if (type == &PyCFunction_Type) {
        PyCFunctionObject *function = (PyCFunctionObject *)callable;
        return call_method_def(tstate, function->m_ml, function->m_self, args, nargs, kwnames,
                               handled);
    }
    if (type == &PyMethodDescr_Type && nargs >= 1) {
        PyMethodDescrObject *descr = (PyMethodDescrObject *)callable;
        if (Py_IS_TYPE(args[0], descr->d_common.d_type)) {
            return call_method_def(tstate, descr->d_method, args[0], args + 1, nargs - 1,
                                   kwnames, handled);
        }
    }
    *handled = 0;
    return NULL;
}

/* ---- code attached to code objects (comprehensions) ---- */

static Py_ssize_t code_extra_index = -1;

int
cpjit_code_extra_init(void)
{
    /* No free function: the pointer is borrowed (see cpjit_detach_code). */
    code_extra_index = _PyEval_RequestCodeExtraIndex(NULL);
    return code_extra_index < 0 ? -1 : 0;
}

int
cpjit_attach_code(JitCode *code)
{
    if (code_extra_index < 0 || code->co == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cpjit: cannot attach code");
        return -1;
    }
    return _PyCode_SetExtra(code->co, code_extra_index, code);
}

JitCode *
cpjit_attached_code(PyObject *co)
{
    void *extra = NULL;
    if (code_extra_index < 0 || _PyCode_GetExtra(co, code_extra_index, &extra) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return (JitCode *)extra;
}

void
cpjit_detach_code(JitCode *code)
{
    if (cpjit_attached_code(code->co) == code) {
        (void)_PyCode_SetExtra(code->co, code_extra_index, NULL);
    }
}

PyObject *
cpjit_call(PyThreadState *tstate, JitState *state, PyObject *callable, PyObject *const *args,
           size_t nargsf, PyObject *kwnames)
{
    if (Py_IS_TYPE(callable, &JitFunction_Type)) {   /* (first: most calls here are to Python) */
        JitFunction *wrapper = (JitFunction *)callable;
        JitCode *code = (JitCode *)wrapper->code;
        if (wrapper->state == CPJIT_STATE_COMPILED) {
            if (__builtin_expect(cpjit_wants_recompile(wrapper, code), 0)
                && !CPJIT_TRACING(tstate)) {
                /* The wrapper's own call does the recompilation. */
                wrapper->calls--;
                return PyObject_Vectorcall(callable, args, nargsf, kwnames);
            }
            if (((PyFunctionObject *)wrapper->func)->func_code == code->co) {
                return call_compiled(tstate, wrapper->func, code, args, nargsf, kwnames,
                                     state->stack_limit);
            }
        }
        return PyObject_Vectorcall(callable, args, nargsf, kwnames);
    }
    if (PyFunction_Check(callable)) {
        /* A function whose code has machine code attached (a comprehension
         * of a jitted function), unless its side exits keep being taken. */
        JitCode *code = cpjit_attached_code(((PyFunctionObject *)callable)->func_code);
        if (code != NULL) {
            int64_t *exits = &code->rwdata[CPJIT_RW_EXITS];
            if (*exits < CPJIT_EXIT_STORM) {
                return call_compiled(tstate, callable, code, args, nargsf, kwnames,
                                     state->stack_limit);
            }
            if (*exits < CPJIT_EXIT_REPORTED) {
                /* Its storm, once: the code calling it (its function, or the
                 * comprehension it is nested in) counts as storming too, so
                 * that the function is compiled again, this comprehension
                 * without speculating where its guards kept failing.  Until
                 * then it runs in the interpreter. */
                *exits = CPJIT_EXIT_REPORTED;
                if (state->rwdata[CPJIT_RW_EXITS] < CPJIT_EXIT_STORM) {
                    state->rwdata[CPJIT_RW_EXITS] = CPJIT_EXIT_STORM;
                }
            }
        }
        return PyObject_Vectorcall(callable, args, nargsf, kwnames);
    }
    int handled;
    PyObject *result = call_c(tstate, callable, args, PyVectorcall_NARGS(nargsf), kwnames,
                              &handled);
    if (handled) {
        return result;
    }
    return PyObject_Vectorcall(callable, args, nargsf, kwnames);
}

#else  /* !CPJIT_SUPPORTED */

int
cpjit_code_extra_init(void)
{
    return 0;
}

int
cpjit_attach_code(JitCode *code)
{
    (void)code;
    PyErr_SetString(PyExc_RuntimeError, "cpjit: not supported on this version");
    return -1;
}

JitCode *
cpjit_attached_code(PyObject *co)
{
    (void)co;
    return NULL;
}

void
cpjit_detach_code(JitCode *code)
{
    (void)code;
}

int
cpjit_check_c_stack(void)
{
    return 0;
}

PyObject *
cpjit_call_jitted(PyObject *func, JitCode *code, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    (void)code;
    return PyObject_Vectorcall(func, args, nargsf, kwnames);
}

PyObject *
cpjit_call(PyThreadState *tstate, JitState *state, PyObject *callable, PyObject *const *args,
           size_t nargsf, PyObject *kwnames)
{
    (void)tstate;
    (void)state;
    return PyObject_Vectorcall(callable, args, nargsf, kwnames);
}

#endif
