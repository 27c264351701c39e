/* pyversion.h: every CPython-version-specific detail the C side relies on.
 *
 * Both the runtime (csrc/) and the stencils (stencils/) include this file, so
 * a new CPython version means one new section here (plus its Python twin,
 * cpjit/_versions/).  Only 3.11 is supported so far; on other versions the
 * runtime builds without its JIT entry and every wrapper falls back.
 */
#ifndef CPJIT_PYVERSION_H
#define CPJIT_PYVERSION_H

#ifndef Py_BUILD_CORE
#  define Py_BUILD_CORE 1
#endif
#include "Python.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#  define CPJIT_SUPPORTED 1
#  define CPJIT_VERSION_NAME "3.11"
#  include "internal/pycore_atomic.h"
#  include "internal/pycore_frame.h"
#  include "internal/pycore_ceval.h"
#  include "internal/pycore_interp.h"
#  include "internal/pycore_pystate.h"
#  include "internal/pycore_long.h"
#  include "internal/pycore_code.h"
#  include "internal/pycore_dict.h"
#  include "internal/pycore_list.h"
#  include "internal/pycore_tuple.h"
#  include "internal/pycore_object.h"
#  include "internal/pycore_moduleobject.h"
#  include "frameobject.h"

/* The frame the machine code runs on. */
typedef _PyInterpreterFrame CpjitFrame;

/* Words of the thread's data stack a frame of `co` takes. */
#define CPJIT_FRAME_SIZE(co) \
    ((size_t)((co)->co_nlocalsplus + (co)->co_stacksize) + FRAME_SPECIALS_SIZE)

/* Code unit pointer of instruction `index` (code units) of a code object. */
#define CPJIT_CODE_UNITS(co) (_PyCode_CODE(co))

/* 3.11 keeps "the code unit before the next instruction" in prev_instr. */
#define CPJIT_FRAME_LASTI(frame) _PyInterpreterFrame_LASTI(frame)

/* Tracing or profiling is active for the current C frame chain. */
#define CPJIT_TRACING(tstate) ((tstate)->cframe->use_tracing)

/* The eval-breaker word of the interpreter (signals, pending calls, GIL drop). */
#define CPJIT_EVAL_BREAKER(tstate) \
    _Py_atomic_load_relaxed(&(tstate)->interp->ceval.eval_breaker)

/* PEP 523 hook slot. */
#define CPJIT_GET_EVAL_FRAME(interp) ((interp)->eval_frame)
#define CPJIT_SET_EVAL_FRAME(interp, fn) ((interp)->eval_frame = (fn))

/* Private iterator layouts (Objects/rangeobject.c, listobject.c,
 * tupleobject.c in 3.11).  tests/test_versions.py checks them against the
 * live objects through their __reduce__/__length_hint__. */
typedef struct {
    PyObject_HEAD
    long index;
    long start;
    long step;
    long len;
} cpjit_rangeiterobject;

/* The cached small int v, for CPJIT_SMALL_INT_MIN <= v < CPJIT_SMALL_INT_END
 * (a borrowed reference to an immortal-in-practice object). */
#define CPJIT_SMALL_INT_MIN (-_PY_NSMALLNEGINTS)
#define CPJIT_SMALL_INT_END _PY_NSMALLPOSINTS
#define CPJIT_SMALL_INT(v) ((PyObject *)&_PyLong_SMALL_INTS[_PY_NSMALLNEGINTS + (v)])

/* A fresh range iterator from start, with step 1 and `len` items. */
#define CPJIT_RANGE_ITER_INIT(it, from, count) \
    ((it)->index = 0, (it)->start = (long)(from), (it)->step = 1, (it)->len = (count))

typedef struct {
    PyObject_HEAD
    Py_ssize_t it_index;
    PyListObject *it_seq;   /* NULL once exhausted */
} cpjit_listiterobject;

typedef struct {
    PyObject_HEAD
    Py_ssize_t it_index;
    PyTupleObject *it_seq;  /* NULL once exhausted */
} cpjit_tupleiterobject;

/* Exact ints whose value fits in a single 30-bit digit ("compact"). */
#define CPJIT_LONG_IS_COMPACT(op) (Py_ABS(Py_SIZE(op)) <= 1)
#define CPJIT_LONG_COMPACT_VALUE(op) \
    ((Py_ssize_t)Py_SIZE(op) * (Py_ssize_t)((PyLongObject *)(op))->ob_digit[0])

#else
/* Another version: the extension still builds (so that pip install works and
 * every jitted function runs in the interpreter, saying why), with the frame
 * type only declared. */
#  define CPJIT_SUPPORTED 0
#  define CPJIT_VERSION_NAME "unsupported"
struct _PyInterpreterFrame;
typedef struct _PyInterpreterFrame _PyInterpreterFrame;
#endif

#endif /* CPJIT_PYVERSION_H */
