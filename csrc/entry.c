/* entry.c: running machine code on CPython's own frame.
 *
 * A call to a compiled function installs cpjit's PEP 523 eval-frame function
 * for exactly one frame evaluation and calls the original function, so that
 * CPython binds the arguments and pushes the frame.  The eval-frame function
 * removes itself first thing and runs the machine code on that frame, doing
 * the bookkeeping of _PyEval_EvalFrameDefault's entry and exit: the C frame
 * (_PyCFrame) that publishes the frame to sys._getframe and tracebacks,
 * is_entry, the recursion counter.  What the machine code leaves undone (a
 * side exit, an exception to unwind) is finished by the interpreter on the
 * same frame.
 *
 * The hook is never left installed: with a PEP 523 function present, CPython
 * stops inlining Python-to-Python calls (much slower, and deep recursion
 * overflows the C stack).
 */
#include "cpjit.h"

#include <alloca.h>
#include <pthread.h>

#if CPJIT_SUPPORTED

cpjit_counters cpjit_stats;

typedef struct {
    JitCode *pending;        /* code for the next frame evaluated by the hook */
    uintptr_t stack_limit;   /* lowest C stack address we let machine code reach */
} ThreadState;

static _Thread_local ThreadState thread_state;

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

int
cpjit_check_c_stack(void)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    ThreadState *ts = &thread_state;
    if (ts->stack_limit == 0) {
        ts->stack_limit = compute_stack_limit();
    }
    if (here < ts->stack_limit) {
        PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded");
        return -1;
    }
    return 0;
}

/* ---- running a frame ---- */

static PyObject *
run_machine_code(PyThreadState *tstate, _PyInterpreterFrame *frame, JitCode *code)
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
    JitState *state = alloca(sizeof(JitState) + (size_t)code->nslots * sizeof(int64_t));
    state->code = (PyObject *)code;
    jit_entry_fn entry = (jit_entry_fn)(void *)(code->memory + code->entry_offset);
    cpjit_stats.entries++;
    PyObject *result = entry(frame, _PyFrame_GetStackPointer(frame), tstate, state);
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
    return run_machine_code(tstate, frame, code);
}

PyObject *
cpjit_call_jitted(PyObject *func, JitCode *code, PyObject *const *args, size_t nargsf,
                  PyObject *kwnames)
{
    if (cpjit_check_c_stack() < 0) {
        return NULL;
    }
    PyThreadState *tstate = _PyThreadState_GET();
    PyInterpreterState *interp = tstate->interp;
    if (CPJIT_GET_EVAL_FRAME(interp) != NULL || CPJIT_TRACING(tstate)) {
        /* A debugger's own PEP 523 hook, or tracing/profiling: tier 1. */
        cpjit_stats.not_entered++;
        return _PyFunction_Vectorcall(func, args, nargsf, kwnames);
    }
    ThreadState *ts = &thread_state;
    Py_INCREF(code);
    ts->pending = code;
    CPJIT_SET_EVAL_FRAME(interp, cpjit_eval_frame);
    PyObject *result = _PyFunction_Vectorcall(func, args, nargsf, kwnames);
    if (CPJIT_GET_EVAL_FRAME(interp) == cpjit_eval_frame) {
        /* No frame was evaluated (the arguments did not bind). */
        CPJIT_SET_EVAL_FRAME(interp, NULL);
    }
    ts->pending = NULL;
    Py_DECREF(code);
    return result;
}

#else  /* !CPJIT_SUPPORTED */

cpjit_counters cpjit_stats;

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

#endif
