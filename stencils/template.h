/* template.h: the environment every stencil is compiled in.
 *
 * A stencil is one uop body compiled on its own into an object file.  It is
 * entered with a jump, runs on CPython's own frame, and leaves with a tail
 * call to one of the holes below, which the emitter patches with the address
 * of the next piece of machine code:
 *
 *   _JIT_CONTINUE      the next uop
 *   _JIT_JUMP_TARGET   the uop a branch goes to
 *   _JIT_EXIT_TARGET   the side exit (deopt) stub of this uop: the interpreter
 *                      redoes this uop's instruction
 *   _JIT_EXIT_AFTER    the side exit resuming at the next instruction (after
 *                      code that ran Python turned tracing on)
 *   _JIT_ERROR_TARGET  the error stub of this uop's instruction
 *
 * Values the stencil needs but cannot know at build time (the instruction
 * argument, object pointers, versions) are the addresses of the symbols
 * _JIT_OPARG, _JIT_OPERAND0, _JIT_OPERAND1 and _JIT_INSTR (the address of the
 * uop's instruction in the code object): the emitter patches them too.
 *
 * The uop body itself lives in a file of stencils/uops/; cpjit/_build/cgen.py wraps
 * it into a function using the macros defined here.
 */
#ifndef CPJIT_TEMPLATE_H
#define CPJIT_TEMPLATE_H

#include "runtime.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define PRESERVE_NONE __attribute__((preserve_none))
#define JIT_PARAMS _PyInterpreterFrame *frame, PyObject **stack_pointer, \
                   PyThreadState *tstate, JitState *state
typedef PRESERVE_NONE PyObject *(*jit_func)(JIT_PARAMS);

#define DECLARE_JUMP_HOLE(NAME) \
    extern PRESERVE_NONE __attribute__((visibility("hidden"))) PyObject *NAME(JIT_PARAMS);
DECLARE_JUMP_HOLE(_JIT_CONTINUE)
DECLARE_JUMP_HOLE(_JIT_JUMP_TARGET)
DECLARE_JUMP_HOLE(_JIT_EXIT_TARGET)
DECLARE_JUMP_HOLE(_JIT_ERROR_TARGET)
DECLARE_JUMP_HOLE(_JIT_EXIT_AFTER)

#define DECLARE_VALUE_HOLE(NAME) extern char NAME[] __attribute__((visibility("hidden")));
DECLARE_VALUE_HOLE(_JIT_OPARG)
DECLARE_VALUE_HOLE(_JIT_OPERAND0)
DECLARE_VALUE_HOLE(_JIT_OPERAND1)
DECLARE_VALUE_HOLE(_JIT_INSTR)

/* The value of a value hole.  The empty asm hides the symbol from the
 * optimizer: C says a symbol's address is never zero, but a patched operand
 * can well be (a NULL kwnames tuple, oparg 0). */
static inline __attribute__((always_inline)) uintptr_t
cpjit_hole_value(const void *symbol)
{
    uintptr_t value = (uintptr_t)symbol;
    __asm__("" : "+r"(value));
    return value;
}

/* An oparg variant (cpjit/_stencils.py VARIANT_OPARGS) is compiled with its
 * oparg a constant: no _JIT_OPARG hole, and clang folds the stack offsets
 * and unrolls the loops that depend on it. */
#ifdef CPJIT_FIXED_OPARG
#define oparg ((int)(CPJIT_FIXED_OPARG))
#else
#define oparg ((int)(uint32_t)cpjit_hole_value(_JIT_OPARG))
#endif
#define operand0 cpjit_hole_value(_JIT_OPERAND0)
#define operand1 cpjit_hole_value(_JIT_OPERAND1)

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Reference counting with the deallocation path marked cold, so that the
 * tail jump to the next uop stays the last instruction of most stencils
 * (and the emitter can drop it).  A deallocation can run Python code (a
 * __del__, a weakref callback, a ResourceWarning naming the line): it goes
 * through cpjit_dealloc, which first makes the frame what the interpreter's
 * would be at this uop's instruction.  Needs `frame` and `state` in scope. */
#undef Py_DECREF
#define Py_DECREF(op) cpjit_decref(_PyObject_CAST(op), frame, state)
static inline __attribute__((always_inline)) void
cpjit_decref(PyObject *op, _PyInterpreterFrame *frame, JitState *state)
{
    if (UNLIKELY(--op->ob_refcnt == 0)) {
        cpjit_dealloc(op, frame, state, (void *)cpjit_hole_value(_JIT_INSTR));
    }
}
#undef Py_XDECREF
#define Py_XDECREF(op) cpjit_xdecref(_PyObject_CAST(op), frame, state)
static inline __attribute__((always_inline)) void
cpjit_xdecref(PyObject *op, _PyInterpreterFrame *frame, JitState *state)
{
    if (op != NULL) {
        cpjit_decref(op, frame, state);
    }
}

/* Frame-side slots of raw (unboxed) values: slot k is a 64-bit value and a
 * dirty flag (set when the value changed since it was last boxed into the
 * frame).  See cpjit/unbox.py.  A uop names its slots by its fields: SLOT_I64(OPARG)
 * is the slot numbered by oparg.  The emitter patches the slot's byte offset
 * in the JitState (the holes _JIT_OPARG_SLOT, _JIT_OPERAND0_SLOT and
 * _JIT_OPERAND1_SLOT), which clang folds into the instruction as a 32-bit
 * displacement: declared as functions, they are below 2 GiB in the medium
 * code model, and an offset past the JitState header is never zero. */
#define DECLARE_SLOT_HOLE(NAME) extern void NAME(void) __attribute__((visibility("hidden")));
DECLARE_SLOT_HOLE(_JIT_OPARG_SLOT)
DECLARE_SLOT_HOLE(_JIT_OPERAND0_SLOT)
DECLARE_SLOT_HOLE(_JIT_OPERAND1_SLOT)
#define CPJIT_SLOT(FIELD) ((int64_t *)((char *)state + (uintptr_t)&_JIT_##FIELD##_SLOT))
#define SLOT_I64(FIELD) (CPJIT_SLOT(FIELD)[0])
#define SLOT_F64(FIELD) (*(double *)CPJIT_SLOT(FIELD))
#define SLOT_DIRTY(FIELD) (CPJIT_SLOT(FIELD)[1])
/* The dirty flag says what the slot holds (CPJIT_SLOT_I64, CPJIT_SLOT_F64), so
 * that the runtime can box a changed local without knowing the code. */
#define SET_SLOT_I64(FIELD, v) \
    do { SLOT_I64(FIELD) = (v); SLOT_DIRTY(FIELD) = CPJIT_SLOT_I64; } while (0)
#define SET_SLOT_F64(FIELD, v) \
    do { SLOT_F64(FIELD) = (v); SLOT_DIRTY(FIELD) = CPJIT_SLOT_F64; } while (0)

/* Frame access. */
#define GETLOCAL(i) (frame->localsplus[(i)])
#define GLOBALS() (frame->f_globals)
#define BUILTINS() (frame->f_builtins)
#define PEEK(n) (stack_pointer[-(n)])

/* Leaving a stencil.  UOP_INPUTS_BASE, UOP_OUTPUTS_END and
 * UOP_WRITE_OUTPUTS() are defined per uop by the generator: the stack
 * pointer with the inputs popped, with the outputs pushed, and the stores of
 * the scalar outputs. */
#define CPJIT_TAIL(TARGET, SP) \
    __attribute__((musttail)) return TARGET(frame, (SP), tstate, state)

/* Side exit: the interpreter redoes this uop's instruction from its start,
 * with the stack as it is now (the inputs still on it). */
#define DEOPT_IF(COND) \
    do { if (UNLIKELY(COND)) { CPJIT_TAIL(_JIT_EXIT_TARGET, stack_pointer); } } while (0)

/* Error with the inputs consumed (the body has released them). */
#define ERROR_IF(COND) \
    do { if (UNLIKELY(COND)) { CPJIT_TAIL(_JIT_ERROR_TARGET, UOP_INPUTS_BASE); } } while (0)

/* Error with the inputs still on the stack (the interpreter releases them). */
#define ERROR_KEEP_IF(COND) \
    do { if (UNLIKELY(COND)) { CPJIT_TAIL(_JIT_ERROR_TARGET, stack_pointer); } } while (0)

/* Branch taken, with the same stack effect as falling through. */
#define JUMP_IF(COND) \
    do { if (COND) { UOP_WRITE_OUTPUTS(); CPJIT_TAIL(_JIT_JUMP_TARGET, UOP_OUTPUTS_END); } } while (0)

/* Branch taken with its own stack effect: pop `n` items of the stack as it
 * was on entry. */
#define JUMP_POPPING(N) CPJIT_TAIL(_JIT_JUMP_TARGET, stack_pointer - (N))

/* Unconditional jump. */
#define JUMP() JUMP_IF(1)

/* Done, on to the next uop with the outputs written: a fast path that
 * leaves at once, so that clang lays it out alone, first (the build step
 * then moves what follows, the slow path, to the cold code). */
#define CONTINUE() \
    do { UOP_WRITE_OUTPUTS(); CPJIT_TAIL(_JIT_CONTINUE, UOP_OUTPUTS_END); } while (0)

/* For uops that may run arbitrary Python code on a slow path (flag
 * SYNCS_FRAME): publish the instruction before it (tracebacks, f_lineno,
 * the frame's completeness) ... */
#define SET_IP() (frame->prev_instr = (_Py_CODEUNIT *)cpjit_hole_value(_JIT_INSTR))

/* ... and after it, if that code turned tracing on (sys.settrace, pdb),
 * leave to the interpreter at the next instruction, with the outputs. */
#define CHECK_TRACING_AFTER() \
    do { if (UNLIKELY(CPJIT_TRACING(tstate))) { \
        UOP_WRITE_OUTPUTS(); CPJIT_TAIL(_JIT_EXIT_AFTER, UOP_OUTPUTS_END); } } while (0)

#include "inline.h"

#endif /* CPJIT_TEMPLATE_H */
