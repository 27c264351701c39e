/* cpjit.h: declarations shared by the files of the runtime extension. */
#ifndef CPJIT_H
#define CPJIT_H

#include "runtime.h"

/* ---- jitcode.c: executable memory for one compiled function ---- */

typedef struct {
    PyObject_HEAD
    unsigned char *memory;   /* mapped read+exec (never writable while executable) */
    size_t mapped_size;      /* page-rounded size of the mapping */
    size_t code_size;        /* bytes of machine code and read-only data */
    size_t entry_offset;     /* where the shim starts */
    int64_t *rwdata;         /* zeroed read-write words: exit counters, caches */
    Py_ssize_t rwdata_words;
    Py_ssize_t nslots;       /* JitState slots the code needs */
    Py_ssize_t fast_argcount; /* co_argcount if calls can bind positionally, else -1 */
    Py_ssize_t active;       /* frames running it right now (recursion: above 1) */
    PyObject *co;            /* the code object it was compiled from */
    PyObject *keepalive;     /* objects whose addresses the machine code holds */
    PyObject *weakreflist;
} JitCode;

extern PyTypeObject JitCode_Type;
#define JitCode_Check(op) Py_IS_TYPE((op), &JitCode_Type)

typedef PyObject *(*jit_entry_fn)(_PyInterpreterFrame *frame, PyObject **stack_pointer,
                                  PyThreadState *tstate, JitState *state);

/* ---- resolve.c: holes to patch records ---- */

/* What a hole is filled with (cpjit/emit.py: the _V_* codes, same order). */
enum {
    CPJIT_HOLE_CONTINUE, CPJIT_HOLE_JUMP, CPJIT_HOLE_EXIT, CPJIT_HOLE_EXIT_AFTER,
    CPJIT_HOLE_ERROR, CPJIT_HOLE_OPARG, CPJIT_HOLE_OPERAND0, CPJIT_HOLE_OPERAND1,
    CPJIT_HOLE_INSTR, CPJIT_HOLE_CODE, CPJIT_HOLE_COLD, CPJIT_HOLE_DATA, CPJIT_HOLE_GOT,
    CPJIT_HOLE_SYMBOL, CPJIT_HOLE_OPARG_SLOT, CPJIT_HOLE_OPERAND0_SLOT,
    CPJIT_HOLE_OPERAND1_SLOT,
};

/* register_stencils(holes, symbol_addresses) and
 * resolve_patches(placements, got_offsets, slots_offset): see resolve.c. */
PyObject *cpjit_register_stencils(PyObject *module, PyObject *args);
PyObject *cpjit_resolve_patches(PyObject *module, PyObject *args);

/* ---- wrapper.c: the decorated callable ---- */

#define CPJIT_PROFILE_PATIENCE 1024

enum { CPJIT_STATE_WARMING, CPJIT_STATE_COMPILING, CPJIT_STATE_COMPILED, CPJIT_STATE_FALLBACK };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *func;             /* the Python function */
    PyObject *code;             /* JitCode while CPJIT_STATE_COMPILED */
    PyObject *compiler;         /* compiler(wrapper): installs code or a fallback */
    PyObject *info;             /* the compiler's record (stats, dump), or None */
    PyObject *fallback_reason;  /* str, or NULL */
    PyObject *dict;
    PyObject *weakreflist;
    Py_ssize_t calls;           /* calls so far */
    Py_ssize_t compile_at;      /* compile at this call (1: the first); 0: never */
    Py_ssize_t recompile_at;    /* compile again at this call (with a profile); 0: never */
    int state;
    int strict;
} JitFunction;

extern PyTypeObject JitFunction_Type;

/* Whether the compiled function should be compiled again before this call:
 * a profile is ready, or side exits keep happening. */
static inline int
cpjit_wants_recompile(JitFunction *self, JitCode *code)
{
    self->calls++;
    /* A profile is ready once the profiling code finished a run: while it is
     * still running below (a recursive function) its deeper paths may not
     * have run yet; it waits CPJIT_PROFILE_PATIENCE calls at most. */
    return (self->recompile_at != 0 && self->calls >= self->recompile_at
            && (code->active == 0 || self->calls >= self->recompile_at + CPJIT_PROFILE_PATIENCE))
           || code->rwdata[CPJIT_RW_EXITS] >= CPJIT_EXIT_STORM;
}

/* Ask the compiler again (it may install new code); 0, or -1 with an error. */
int cpjit_recompile(JitFunction *self);

/* ---- entry.c: running machine code on a real frame ---- */

/* Call `func` (a Python function) with `code` running its frame; falls back to
 * a plain call when the JIT cannot be entered (tracing, another PEP 523 hook,
 * a frame that is not ours). */
PyObject *cpjit_call_jitted(PyObject *func, JitCode *code, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames);

/* Raise RecursionError instead of overflowing the C stack.  0 or -1. */
int cpjit_check_c_stack(void);

/* Counters visible from Python (cpjit._runtime.counters()). */
typedef struct {
    unsigned long long entries;     /* frames run by machine code */
    unsigned long long deopts;      /* frames handed to the interpreter by a side exit */
    unsigned long long errors;      /* frames handed to the interpreter with an exception */
    unsigned long long not_entered; /* calls that ran in the interpreter (tracing, hooks) */
} cpjit_counters;
extern cpjit_counters cpjit_stats;

/* ---- module.c ---- */
PyObject *cpjit_lookup_symbol(const char *name);   /* int address or NULL with an error */

#endif /* CPJIT_H */
