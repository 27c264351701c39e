/* runtime.h: the contract between machine code (stencils/) and the C runtime.
 *
 * Stencils include this header; the runtime implements it.  Every helper a
 * stencil may call is listed once in CPJIT_RUNTIME_SYMBOLS: the runtime builds
 * its symbol table from that list, and the emitter resolves `cpjit_*` holes
 * through it (dlsym cannot see symbols of an extension loaded RTLD_LOCAL).
 */
#ifndef CPJIT_RUNTIME_H
#define CPJIT_RUNTIME_H

#include "pyversion.h"
#include <stddef.h>
#include <stdint.h>

/* Per-run state, on the C stack of the entry (see entry.c).  Stencils get a
 * pointer to it as their fourth argument. */
typedef struct JitState {
    PyObject *code;         /* the JitCode being run (the entry holds a reference) */
    uintptr_t stack_limit;  /* C stack address below which calls raise RecursionError */
    int64_t *rwdata;        /* the code's read-write words (CPJIT_RW_* below) */
    int64_t slots[];        /* frame-side slots for unboxed values */
} JitState;

/* Read-write words of compiled code (cpjit/emit.py lays them out): word 0
 * counts every side exit taken, words 1..n count each exit stub's, then the
 * inline caches and profile words. */
#define CPJIT_RW_EXITS 0

/* Side exits past this many make the wrapper ask for a recompilation that
 * stops speculating where guards keep failing. */
#define CPJIT_EXIT_STORM 64

/* A side exit (the stub _EXIT_STUB): count it, do the exit record's steps
 * (box what the machine code held unboxed into the stack and the frame; a
 * failed allocation leaves None and the MemoryError set, raised at the resume
 * instruction) and hand the frame to the interpreter.  An exit record is
 * int64 words written by cpjit/emit.py: its read-write counter word, the
 * resume offset (code units), the number of steps, then three words a step:
 * CPJIT_EXIT_* action, argument (items above, or the local) and value (a
 * slot, a local or an object's address; see cpjit/ir.py ExitStep). */
enum {
    CPJIT_EXIT_BOX_I64 = 1,
    CPJIT_EXIT_BOX_F64 = 2,
    CPJIT_EXIT_LOCAL = 3,
    CPJIT_EXIT_CONST = 4,
    CPJIT_EXIT_SYNC_I64 = 5,
    CPJIT_EXIT_SYNC_F64 = 6,
};
PyObject *cpjit_side_exit(_PyInterpreterFrame *frame, PyObject **stack_pointer, JitState *state,
                          const int64_t *record);

/* RAISE_VARARGS 1 and 2: `raise exc [from cause]` as the interpreter's
 * do_raise() does it (the exception is set; both references are stolen). */
void cpjit_raise(PyThreadState *tstate, PyObject *exc, PyObject *cause);

/* What the dirty word of a raw-value slot says: unchanged since boxed (0), or
 * changed and holding an int64 or a double. */
enum { CPJIT_SLOT_CLEAN = 0, CPJIT_SLOT_I64 = 1, CPJIT_SLOT_F64 = 2 };

/* An object whose reference count reached zero in machine code.  Unless its
 * deallocation cannot run Python code, the frame is first made what the
 * interpreter's would be: `instr` published as the current instruction and
 * every changed raw local boxed into it (slot j < co_nlocalsplus is local j).
 * So a __del__ or a weakref callback sees the right line and locals. */
void cpjit_dealloc(PyObject *op, _PyInterpreterFrame *frame, JitState *state, void *instr);

/* Returned by machine code to say "finish this frame in the interpreter":
 * frame->prev_instr and the stack pointer have been set for the resume point. */
extern char cpjit_deopt_marker;
#define CPJIT_DEOPT ((PyObject *)&cpjit_deopt_marker)

/* CALL: like PyObject_Vectorcall, but a compiled function (a JitFunction,
 * or a function whose code object has machine code attached: a jitted
 * function's comprehension) called with plain positional arguments runs on a
 * frame pushed by the runtime, without going through CPython's call
 * machinery. */
PyObject *cpjit_call(PyThreadState *tstate, JitState *state, PyObject *callable,
                     PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* Eval breaker: signals, pending calls, GIL drop requests.  Returns -1 with
 * an exception set, 0 to go on, 1 to leave to the interpreter (which then
 * handles what remains, such as an asynchronous exception). */
int cpjit_handle_pending(PyThreadState *tstate);

/* Eval breaker inside a loop whose locals live unboxed: only a GIL hand-off
 * is done here (no Python code runs in this thread meanwhile).  Returns 1
 * when anything else is pending (signals, pending calls, an asynchronous
 * exception): the machine code then side-exits, boxing its locals, and the
 * interpreter handles it. */
int cpjit_handle_gil_request(PyThreadState *tstate);

/* Generic UNPACK_SEQUENCE: push `argcnt` items of `v` below `sp` (the last
 * item deepest), with the interpreter's exact error messages.  Returns 1 on
 * success, 0 with an exception set (nothing left on the stack). */
int cpjit_unpack_iterable(PyThreadState *tstate, PyObject *v, int argcnt, PyObject **sp);

/* LIST_EXTEND / the `*` of a call or display: list.extend(iterable), with the
 * interpreter's "Value after * must be an iterable" message.  0 or -1. */
int cpjit_list_extend(PyThreadState *tstate, PyObject *list, PyObject *iterable);

/* DICT_UPDATE: dict.update(update), with the interpreter's "is not a
 * mapping" message.  0 or -1. */
int cpjit_dict_update(PyThreadState *tstate, PyObject *dict, PyObject *update);

/* `**` and `**=` as binary functions (PyNumber_Power takes a modulus; the
 * interpreter's own two-argument forms are not exported). */
PyObject *cpjit_power(PyObject *base, PyObject *exponent);
PyObject *cpjit_inplace_power(PyObject *base, PyObject *exponent);

/* Inline caches (caches.c): the miss paths of the cached uops, which do the
 * generic operation and fill the site's words when the fast path can repeat
 * it.  A global's site is one entry of CPJIT_CACHE_WORDS words; an attribute
 * or method site is polymorphic: CPJIT_CACHE_ENTRIES such entries, one per
 * type seen (most recent first), each with word 0 = kind << 32 | type version
 * (0: empty). */
enum {
    CPJIT_ATTR_INSTANCE_VALUE = 1,  /* word 1: index in the instance values */
    CPJIT_ATTR_SLOT = 2,            /* word 1: byte offset of a __slots__ member */
    CPJIT_ATTR_MODULE = 3,          /* words 1-2: entry index, keys of the module dict */
    CPJIT_METHOD_NO_DICT = 1,       /* word 1: the method */
    CPJIT_METHOD_WITH_VALUES = 2,   /* words 1-3: method, shared keys, their entry count */
    CPJIT_GLOBAL_MODULE = 1,        /* word 0 keys, word 1 kind | index << 8 */
    CPJIT_GLOBAL_BUILTIN = 2,       /* word 0 globals version, word 1 as above, word 3 keys */
};
#define CPJIT_CACHE_WORDS 4    /* cpjit/ir.py CACHE_WORDS */
#define CPJIT_CACHE_ENTRIES 4  /* cpjit/ir.py CACHE_ENTRIES */

PyObject *cpjit_load_attr_miss(PyObject *owner, PyObject *name, uint64_t *cache);
int cpjit_store_attr_miss(PyObject *owner, PyObject *name, PyObject *value, uint64_t *cache);
/* What a LOAD_METHOD found: `method` (a new reference; NULL: an error) is
 * an unbound method to call with the owner (`found` 1) or the attribute
 * itself (`found` 0).  Returned in two registers, so that the stencil needs
 * no stack slot for it (and its cache hit no stack frame). */
typedef struct {
    PyObject *method;
    intptr_t found;
} cpjit_method;
cpjit_method cpjit_load_method_miss(PyObject *owner, PyObject *name, uint64_t *cache);
PyObject *cpjit_load_global_miss(PyObject *globals, PyObject *builtins, PyObject *name,
                                 uint64_t *cache);

/* Every symbol of the runtime that machine code may refer to. */
#define CPJIT_RUNTIME_SYMBOLS(X) \
    X(cpjit_deopt_marker)        \
    X(cpjit_side_exit)           \
    X(cpjit_dealloc)             \
    X(cpjit_raise)               \
    X(cpjit_call)                \
    X(cpjit_load_attr_miss)      \
    X(cpjit_store_attr_miss)     \
    X(cpjit_load_method_miss)    \
    X(cpjit_load_global_miss)    \
    X(cpjit_handle_pending)      \
    X(cpjit_handle_gil_request)  \
    X(cpjit_unpack_iterable)     \
    X(cpjit_list_extend)         \
    X(cpjit_dict_update)         \
    X(cpjit_power)               \
    X(cpjit_inplace_power)

#endif /* CPJIT_RUNTIME_H */
