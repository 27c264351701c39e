/* cpjit.h: declarations shared by the files of the runtime extension. */
#ifndef CPJIT_H
#define CPJIT_H

#include "runtime.h"

/* ---- jitcode.c: executable memory for one compiled function ---- */

typedef struct {
    PyObject_HEAD
    unsigned char *memory;   /* mapped read+exec (never writable while executable) */
    size_t mapped_size;      /* size of the mapping: whole pages (a pooled one may be larger) */
    size_t code_size;        /* bytes of machine code and read-only data */
    size_t entry_offset;     /* where the shim starts */
    int64_t *rwdata;         /* zeroed read-write words: exit counters, caches */
    Py_ssize_t rwdata_words;
    Py_ssize_t nslots;       /* JitState slots the code needs */
    Py_ssize_t raw_locals;   /* locals with a slot (their dirty flags start clean) */
    Py_ssize_t fast_argcount; /* co_argcount if calls can bind positionally, else -1 */
    Py_ssize_t active;       /* frames running it right now (recursion: above 1) */
    PyObject *co;            /* the code object it was compiled from */
    PyObject *keepalive;     /* objects whose addresses the machine code holds */
    PyObject *weakreflist;
} JitCode;

extern PyTypeObject JitCode_Type;
#define JitCode_Check(op) Py_IS_TYPE((op), &JitCode_Type)

/* A JitCode (entry at offset 0) whose memory is mapped read+write and zeroed
 * for `code_size` bytes of code, for the caller to write; NULL with an error. */
JitCode *cpjit_jitcode_alloc(Py_ssize_t code_size, Py_ssize_t rwdata_words, Py_ssize_t nslots,
                             PyObject *co, PyObject *keepalive);
/* Apply `count` patch records to a JitCode from cpjit_jitcode_alloc (each
 * checked) and make its memory read+exec: 0, or -1 with an error (drop it then). */
int cpjit_jitcode_seal(JitCode *self, const unsigned char *patches, Py_ssize_t count);

typedef PyObject *(*jit_entry_fn)(_PyInterpreterFrame *frame, PyObject **stack_pointer,
                                  PyThreadState *tstate, JitState *state);

/* ---- resolve.c: the registered stencils, and holes to patch records ---- */

/* What a hole is filled with (cpjit/emit.py: the _V_* codes, same order). */
enum {
    CPJIT_HOLE_CONTINUE, CPJIT_HOLE_JUMP, CPJIT_HOLE_EXIT, CPJIT_HOLE_EXIT_AFTER,
    CPJIT_HOLE_ERROR, CPJIT_HOLE_OPARG, CPJIT_HOLE_OPERAND0, CPJIT_HOLE_OPERAND1,
    CPJIT_HOLE_INSTR, CPJIT_HOLE_CODE, CPJIT_HOLE_COLD, CPJIT_HOLE_DATA, CPJIT_HOLE_GOT,
    CPJIT_HOLE_SYMBOL, CPJIT_HOLE_OPARG_SLOT, CPJIT_HOLE_OPERAND0_SLOT,
    CPJIT_HOLE_OPERAND1_SLOT, CPJIT_HOLE_VALUES,
};

/* Patch kinds and bases, as jitcode.c applies them (cpjit/emit.py KIND, BASE_*). */
enum { CPJIT_PATCH_ABS64 = 0, CPJIT_PATCH_KINDS = 4 };
enum { CPJIT_BASE_ABSOLUTE = 0, CPJIT_BASE_CODE = 1, CPJIT_BASE_RWDATA = 2 };
enum { CPJIT_PATCH_RECORD_BYTES = 16 };

/* A hole of a registered stencil; its offset was checked against its part. */
typedef struct {
    int32_t offset;         /* in its part: the hot code, the cold code or the data */
    uint8_t kind;           /* CPJIT_PATCH_* */
    uint8_t value;          /* CPJIT_HOLE_* */
    uint8_t part;           /* 0 hot, 1 cold (data holes are kept apart) */
    int32_t symbol;         /* index into the registered symbols, or -1 */
    int64_t addend;
} cpjit_hole;

/* What a stencil's holes need of a uop's placement (cpjit_stencil.needs). */
enum { CPJIT_NEEDS_EXIT = 1, CPJIT_NEEDS_EXIT_AFTER = 2, CPJIT_NEEDS_ERROR = 4 };

/* A stencil as registered by cpjit/emit.py (once per stencil table). */
typedef struct {
    PyObject *name;         /* str, for error messages */
    PyObject *code;         /* bytes: the hot path */
    PyObject *cold;         /* bytes: the cold code, placed after all hot code */
    PyObject *data;         /* bytes: read-only data */
    Py_ssize_t body_size;   /* the hot size when the next stencil follows it */
    Py_ssize_t data_align;  /* at least 1 */
    int continues;          /* has a CONTINUE hole: it must fall through */
    int needs;              /* CPJIT_NEEDS_*: the stubs its holes jump to */
    Py_ssize_t nholes;      /* hot holes, then cold holes */
    cpjit_hole *holes;
    Py_ssize_t ndata_holes;
    cpjit_hole *data_holes;
    Py_ssize_t ngot;        /* the symbols its holes reach through the GOT, first use first */
    int32_t *got;
    /* A uop's oparg variants (cpjit/_stencils.py VARIANT_OPARGS): variants[oparg]
     * is the id of its stencil compiled for that oparg, -1 for none. */
    Py_ssize_t nvariants;
    int64_t *variants;
    int is_variant;         /* it is some stencil's variant (variants do not nest) */
} cpjit_stencil;

/* Registered stencil `id`, or NULL with a ValueError. */
const cpjit_stencil *cpjit_stencil_at(int64_t id);
/* The stencil of the uop named `name` (an exact str): 1 with its id, 0 if
 * there is none (an oparg variant's name is none), -1 with an error. */
int cpjit_uop_stencil(PyObject *name, int64_t *id);
/* The stencil to place for a uop of stencil `id` with `oparg`: its variant
 * for that oparg if it has one, else `id` (a registered id). */
int64_t cpjit_oparg_variant(int64_t id, int64_t oparg);
/* The stencils of the shim, exit stubs and error stubs (registered with the table). */
int64_t cpjit_shim_stencil(void);
/* Changes with every registration (a stencil id is only good for one). */
uint64_t cpjit_registry_generation(void);
int64_t cpjit_exit_stub_stencil(void);
int64_t cpjit_error_stub_stencil(void);
/* The address of registered symbol `symbol`, or 0 if the interpreter has none. */
int64_t cpjit_symbol_address(int32_t symbol);
Py_ssize_t cpjit_symbol_count(void);
Py_ssize_t cpjit_stencil_count(void);

/* A placed stencil, as int64 words (CPJIT_P_*): where it went and the values
 * its holes may need; -1 for a target it has not. */
enum {
    CPJIT_P_STENCIL, CPJIT_P_HOT, CPJIT_P_HOT_SIZE, CPJIT_P_COLD, CPJIT_P_COLD_SIZE,
    CPJIT_P_CONTINUE, CPJIT_P_JUMP, CPJIT_P_EXIT, CPJIT_P_EXIT_AFTER, CPJIT_P_ERROR,
    CPJIT_P_OPARG, CPJIT_P_OPERAND0_BASE, CPJIT_P_OPERAND0, CPJIT_P_OPERAND1_BASE,
    CPJIT_P_OPERAND1, CPJIT_P_INSTR, CPJIT_P_DATA, CPJIT_PLACEMENT_WORDS,
};

/* Write one patch record (the format jitcode.c applies) at `out`. */
void cpjit_write_patch(unsigned char *out, int64_t offset, int kind, int base, int64_t value);

/* How many patch records `count` placements can make at most (-1 with a
 * ValueError for an unknown stencil), then the records themselves: every
 * hole that lies inside its placed part, resolved.  `got[symbol]` is the
 * offset of the symbol's GOT entry (-1: none).  0, or -1 with a ValueError. */
Py_ssize_t cpjit_patch_capacity(const int64_t *placements, Py_ssize_t count);
int cpjit_resolve_holes(const int64_t *placements, Py_ssize_t count, const int64_t *got,
                        Py_ssize_t ngot, int64_t slots_offset, unsigned char *out,
                        Py_ssize_t *written);

/* register_stencils(stencils, symbol_addresses, variants, shim, exit_stub,
 * error_stub): see resolve.c. */
PyObject *cpjit_register_stencils(PyObject *module, PyObject *args);

/* ---- a min-heap of indexes (the worklists of stackwalk.c and analyze.c:
 * lowest index first, so that a walk goes in code order) ---- */

static inline void
cpjit_heap_push(Py_ssize_t *heap, Py_ssize_t *count, Py_ssize_t index)
{
    Py_ssize_t at = (*count)++;
    while (at > 0 && heap[(at - 1) / 2] > index) {
        heap[at] = heap[(at - 1) / 2];
        at = (at - 1) / 2;
    }
    heap[at] = index;
}

/* The lowest index, taken out (the heap must not be empty). */
static inline Py_ssize_t
cpjit_heap_pop(Py_ssize_t *heap, Py_ssize_t *count)
{
    Py_ssize_t first = heap[0], last = heap[--*count], at = 0;
    for (;;) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= *count) {
            break;
        }
        if (child + 1 < *count && heap[child + 1] < heap[child]) {
            child++;
        }
        if (heap[child] >= last) {
            break;
        }
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = last;
    return first;
}

/* ---- uop.c: _runtime.UOpBase, the C base of cpjit/ir.py UOp ---- */

/* Ready the type and add it to the module: 0, or -1 with an error. */
int cpjit_uop_type_init(PyObject *module);
/* A copy of `uop` (an instance of a UOpBase subclass made with its fields)
 * whose exit_steps (exit_after_steps if `after`) are `steps`; NULL with an
 * error. */
PyObject *cpjit_uop_with_steps(PyObject *uop, PyObject *steps, int after);

/* ---- uopfields.c: the fields of a uop (cpjit/ir.py UOp), read from their slots ---- */

/* The fields read (members of uop.c's UOpBase; cpjit_uop_field_names spells them). */
enum {
    F_NAME, F_OPARG, F_OPERAND0, F_OPERAND1, F_OFFSET, F_EXIT_TO, F_JUMP_TO, F_EXIT_AFTER,
    F_EXIT_STEPS, F_EXIT_AFTER_STEPS, F_COUNT,
};
extern const char *const cpjit_uop_field_names[F_COUNT];

/* Where each field's slot is in an instance of `type`, so that a walk over
 * the uops reads them with no attribute lookup; only instances of exactly
 * `type` may be read so.  0, or -1 with a TypeError. */
int cpjit_find_uop_fields(PyObject *type, Py_ssize_t offsets[F_COUNT]);

/* Field `f` of uop `index` (borrowed), or NULL with a TypeError if unset. */
static inline PyObject *
cpjit_uop_field(const Py_ssize_t offsets[F_COUNT], PyObject *uop, Py_ssize_t index, int f)
{
    PyObject *value = *(PyObject **)((char *)uop + offsets[f]);
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd has no %s", index,
                     cpjit_uop_field_names[f]);
    }
    return value;
}

/* Int field `f` of uop `index` as an int64 (an int subclass is read as an
 * int: no Python code runs).  0, or -1 with a TypeError or OverflowError. */
static inline int
cpjit_uop_int_field(const Py_ssize_t offsets[F_COUNT], PyObject *uop, Py_ssize_t index, int f,
                    int64_t *out)
{
    PyObject *value = cpjit_uop_field(offsets, uop, index, f);
    if (value == NULL) {
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: %s must be an int, not %.100s", index,
                     cpjit_uop_field_names[f], Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "cpjit: uop %zd: %s does not fit 64 bits", index,
                     cpjit_uop_field_names[f]);
        return -1;
    }
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* ---- uopscan.c: the scans passes start with, over a list of uops ---- */

/* uop_names(uops, uop_type), uop_positions(uops, uop_type, names) and
 * uop_jumps_into(uops, uop_type, targets, label): see uopscan.c. */
PyObject *cpjit_uop_names(PyObject *module, PyObject *args);
PyObject *cpjit_uop_positions(PyObject *module, PyObject *args);
PyObject *cpjit_uop_jumps_into(PyObject *module, PyObject *args);

/* ---- transfer.c: _runtime.LoadFastTransfer, _LOAD_FAST's transfer function ---- */

/* Ready the type and add it to the module: 0, or -1 with an error. */
int cpjit_transfer_types_init(PyObject *module);

/* ---- unboxwalk.c: _runtime.WalkCore, the C core of cpjit/unbox.py's walk ---- */

/* Ready the type and add it to the module: 0, or -1 with an error. */
int cpjit_walk_type_init(PyObject *module);

/* ---- layout.c: a function's code laid out, copied and patched ---- */

/* emit_trace(uops, uop_type, label, co, units, cache_words, nslots, slots_offset,
 * exit_actions, encode_operand, step_value, keepalive): see layout.c. */
PyObject *cpjit_emit_trace(PyObject *module, PyObject *args);

/* ---- stackwalk.c: the stack depth before each uop, checked ---- */

/* stack_walk(uops, uop_type, label, oparg_free_steps, steps, stacksize,
 * entry_depths, pushing_actions, error, instructions=None): see stackwalk.c. */
PyObject *cpjit_stack_walk(PyObject *module, PyObject *args);
/* The STEP_* flags of the steps stack_walk reads, as module constants: 0 or -1. */
int cpjit_add_step_flags(PyObject *module);

/* ---- analyze.c: the type analysis' worklist ---- */

/* analyze(uops, uop_type, label, transfers, effects, entry, state_type, join,
 * unknown, error) and generic_transfer(uop, state, uop_type, effects,
 * state_type, unknown, error): see analyze.c. */
PyObject *cpjit_analyze(PyObject *module, PyObject *args);
PyObject *cpjit_generic_transfer(PyObject *module, PyObject *args);

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

/* A comprehension's code whose side-exit storm was passed on to the code
 * calling it (csrc/entry.c cpjit_call) has its exit count (CPJIT_RW_EXITS)
 * set to this: at least this from then on. */
#define CPJIT_EXIT_REPORTED (INT64_MAX / 2)

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

/* Code compiled for a code object that is not a JitFunction's (the
 * comprehensions of a jitted function): attached to the code object through
 * PEP 523's co_extra, as a borrowed pointer, so that calls from machine code
 * of any function with that code run it (cpjit_call).  The JitCode detaches
 * itself when it dies.  cpjit_code_extra_init at module load (0 or -1);
 * attach: 0, or -1 with an error. */
int cpjit_code_extra_init(void);
int cpjit_attach_code(JitCode *code);
JitCode *cpjit_attached_code(PyObject *co);
void cpjit_detach_code(JitCode *code);

/* Counters visible from Python (cpjit._runtime.counters()). */
typedef struct {
    unsigned long long entries;     /* frames run by machine code */
    unsigned long long deopts;      /* frames handed to the interpreter by a side exit */
    unsigned long long errors;      /* frames handed to the interpreter with an exception */
    unsigned long long not_entered; /* calls that ran in the interpreter (tracing, hooks) */
    unsigned long long code_bytes;  /* memory mapped for live compiled code */
    unsigned long long pooled_bytes; /* freed code memory kept for reuse (jitcode.c) */
} cpjit_counters;
extern cpjit_counters cpjit_stats;

/* ---- module.c ---- */
PyObject *cpjit_lookup_symbol(const char *name);   /* int address or NULL with an error */

#endif /* CPJIT_H */
