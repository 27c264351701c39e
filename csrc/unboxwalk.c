/* unboxwalk.c: _runtime.WalkCore, the C core of cpjit/unbox.py's _Walk.
 *
 * The unbox pass walks the uops of a loop one by one with an abstract stack
 * (None: boxed in the frame; else a Virtual item) and raw locals.  Most uops
 * it meets go through _Walk.generic, and every uop that can side-exit needs
 * the exit steps of the abstract state where it is; as Python, those few
 * methods took some 40 % of the pass (a tenth of a compilation).  Here they
 * are C, on the walk's state, which _Walk (a subclass) shares as attributes:
 *
 *     stack        list: None or a Virtual per stack item, deepest first
 *     raw          dict: the raw locals where the walk is ({} outside loops)
 *     sync_steps   tuple: the ExitSteps that box the raw locals (interned)
 *     syncs        tuple: (uop name, local, whether it can side-exit) per
 *                  raw local to box before code that needs the frame
 *     clean        set: the raw locals boxed since their last store
 *     exit_cache   dict: (id(sync_steps), *stack) -> exit steps
 *     interned     dict: exit steps -> the one equal tuple
 *     out          list: the uops made so far
 *     current      the uop walked: what emitted uops take their offsets from
 *     deopts       set: the names of the uops that can side-exit
 *     generic_info mapping: (name, oparg) -> (pops, pushes, deopts,
 *                  exits_after, sees_whole_stack, needs_frame)
 *     uop_type     cpjit.ir.UOp
 *     exit_step_type  cpjit.ir.ExitStep (a named tuple of 3)
 *
 * The methods do what the Python ones they replaced did (kept as the
 * reference in tests/test_unboxwalk.py); materialize stays Python (it is
 * called back, rarely).  Each checks the types of the state it reads: a
 * TypeError, not a crash, for a state that is not what the walk makes.
 */
#include "cpjit.h"

#ifndef Py_T_OBJECT_EX
#include <structmember.h>   /* 3.11: T_OBJECT_EX */
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

typedef struct {
    PyObject_HEAD
    PyObject *stack;
    PyObject *raw;
    PyObject *sync_steps;
    PyObject *syncs;
    PyObject *clean;
    PyObject *exit_cache;
    PyObject *interned;
    PyObject *out;
    PyObject *current;
    PyObject *deopts;
    PyObject *generic_info;
    PyObject *uop_type;
    PyObject *exit_step_type;
} WalkObject;

static PyObject *s_exit_action, *s_exit_value, *s_materialize, *s_label, *s_leave_region,
                *s_oparg, *s_operand0, *s_operand1, *s_jump_to, *empty_str, *empty_tuple, *zero,
                *minus_one;

/* -- the state, checked -- */

static int
bad(const char *field, const char *expected, PyObject *value)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "WalkCore: %s is not set", field);
    }
    else {
        PyErr_Format(PyExc_TypeError, "WalkCore: %s must be %s, not %.100s", field, expected,
                     Py_TYPE(value)->tp_name);
    }
    return -1;
}

/* Whether the state has the types the methods count on: 0, or -1 with an error. */
static int
check_state(WalkObject *w)
{
    if (w->stack == NULL || !PyList_CheckExact(w->stack)) {
        return bad("stack", "a list", w->stack);
    }
    if (w->raw == NULL || !PyDict_Check(w->raw)) {
        return bad("raw", "a dict", w->raw);
    }
    if (w->sync_steps == NULL || !PyTuple_CheckExact(w->sync_steps)) {
        return bad("sync_steps", "a tuple", w->sync_steps);
    }
    if (w->syncs == NULL || !PyTuple_CheckExact(w->syncs)) {
        return bad("syncs", "a tuple", w->syncs);
    }
    if (w->clean == NULL || !PySet_Check(w->clean)) {
        return bad("clean", "a set", w->clean);
    }
    if (w->exit_cache == NULL || !PyDict_Check(w->exit_cache)) {
        return bad("exit_cache", "a dict", w->exit_cache);
    }
    if (w->interned == NULL || !PyDict_Check(w->interned)) {
        return bad("interned", "a dict", w->interned);
    }
    if (w->out == NULL || !PyList_CheckExact(w->out)) {
        return bad("out", "a list", w->out);
    }
    if (w->deopts == NULL || !PyAnySet_Check(w->deopts)) {
        return bad("deopts", "a set or frozenset", w->deopts);
    }
    if (w->generic_info == NULL) {
        return bad("generic_info", "a mapping", NULL);
    }
    if (w->uop_type == NULL || !PyType_Check(w->uop_type)) {
        return bad("uop_type", "a type", w->uop_type);
    }
    PyTypeObject *steps = (PyTypeObject *)w->exit_step_type;
    if (steps == NULL || !PyType_Check(steps) || !PyType_IsSubtype(steps, &PyTuple_Type)
        || steps->tp_basicsize != PyTuple_Type.tp_basicsize || steps->tp_alloc == NULL) {
        return bad("exit_step_type", "a tuple subclass without fields of its own",
                   w->exit_step_type);
    }
    return 0;
}

/* Fields of the uop walked (w->current), for the uops made at it: borrowed. */
typedef struct {
    PyObject *offset, *exit_to, *exit_after;
} At;

static int
current_at(WalkObject *w, At *at)
{
    PyObject *uop = w->current;
    Py_ssize_t offsets[F_COUNT];
    if (uop == NULL || uop == Py_None
        || cpjit_find_uop_fields((PyObject *)Py_TYPE(uop), offsets) < 0) {
        PyErr_Clear();
        return bad("current", "a uop", uop);
    }
    at->offset = cpjit_uop_field(offsets, uop, 0, F_OFFSET);
    at->exit_to = at->offset != NULL ? cpjit_uop_field(offsets, uop, 0, F_EXIT_TO) : NULL;
    at->exit_after = at->exit_to != NULL ? cpjit_uop_field(offsets, uop, 0, F_EXIT_AFTER) : NULL;
    return at->exit_after != NULL ? 0 : -1;
}

/* Whether every stack item is boxed (None): nothing virtual. */
static int
all_boxed(PyObject *stack)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(stack); i++) {
        if (PyList_GET_ITEM(stack, i) != Py_None) {
            return 0;
        }
    }
    return 1;
}

/* 1 if `name` can side-exit, 0 if not, -1 with an error. */
static int
deopts(WalkObject *w, PyObject *name)
{
    return PySet_Contains(w->deopts, name);
}

/* -- exit steps -- */

/* The one tuple equal to `steps` in this walk: a new reference. */
static PyObject *
intern_steps(WalkObject *w, PyObject *steps)
{
    PyObject *found = PyDict_SetDefault(w->interned, steps, steps);
    return Py_XNewRef(found);
}

/* The uops' steps that put the abstract state into the frame: each virtual
 * item boxed into its place, deepest first (an ExitStep of its exit action,
 * the boxed items above it and its exit value), then the raw locals' sync
 * steps; interned.  The sync steps themselves when nothing is virtual. */
static PyObject *
make_exit_steps(WalkObject *w)
{
    PyObject *stack = w->stack, *sync = w->sync_steps;
    Py_ssize_t n = PyList_GET_SIZE(stack), nvirtual = 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        nvirtual += PyList_GET_ITEM(stack, p) != Py_None;
    }
    if (nvirtual == 0) {
        return Py_NewRef(sync);
    }
    Py_ssize_t nsync = PyTuple_GET_SIZE(sync);
    PyObject *steps = PyTuple_New(nvirtual + nsync);
    if (steps == NULL) {
        return NULL;
    }
    /* (Held: the attribute lookups below could run code that rebinds them.) */
    PyTypeObject *step_type = (PyTypeObject *)Py_NewRef(w->exit_step_type);
    Py_INCREF(stack);
    Py_INCREF(sync);
    /* From the top down, counting the boxed items above each virtual one. */
    Py_ssize_t boxed = 0, k = nvirtual;
    for (Py_ssize_t p = n - 1; p >= 0 && k > 0; p--) {
        PyObject *item = PyList_GET_ITEM(stack, p);
        if (item == Py_None) {
            boxed++;
            continue;
        }
        Py_INCREF(item);   /* (the attribute lookups could run code) */
        PyObject *action = PyObject_GetAttr(item, s_exit_action);
        PyObject *value = action != NULL ? PyObject_GetAttr(item, s_exit_value) : NULL;
        PyObject *above = value != NULL ? PyLong_FromSsize_t(boxed) : NULL;
        Py_DECREF(item);
        PyObject *step = above != NULL ? step_type->tp_alloc(step_type, 3) : NULL;
        if (step == NULL) {
            Py_XDECREF(action);
            Py_XDECREF(value);
            Py_XDECREF(above);
            goto failed;
        }
        PyTuple_SET_ITEM(step, 0, action);
        PyTuple_SET_ITEM(step, 1, above);
        PyTuple_SET_ITEM(step, 2, value);
        PyTuple_SET_ITEM(steps, --k, step);
        if (PyList_GET_SIZE(stack) != n) {   /* (changed by code the lookups ran) */
            PyErr_SetString(PyExc_RuntimeError, "WalkCore: the stack changed during exit_steps");
            goto failed;
        }
    }
    for (Py_ssize_t i = 0; i < nsync; i++) {
        PyTuple_SET_ITEM(steps, nvirtual + i, Py_NewRef(PyTuple_GET_ITEM(sync, i)));
    }
    Py_DECREF(step_type);
    Py_DECREF(stack);
    Py_DECREF(sync);
    PyObject *interned = intern_steps(w, steps);
    Py_DECREF(steps);
    return interned;
failed:
    Py_DECREF(step_type);
    Py_DECREF(stack);
    Py_DECREF(sync);
    Py_DECREF(steps);   /* (its unset items are NULL: fine for a tuple's dealloc) */
    return NULL;
}

/* The exit steps of the abstract state where the walk is: the sync steps
 * when nothing is virtual, else made once per (sync steps, stack items):
 * most uops that can exit see the state the one before them saw.  New
 * reference. */
static PyObject *
exit_steps(WalkObject *w)
{
    PyObject *stack = w->stack;
    if (all_boxed(stack)) {
        return Py_NewRef(w->sync_steps);
    }
    Py_ssize_t n = PyList_GET_SIZE(stack);
    PyObject *key = PyTuple_New(n + 1);
    if (key == NULL) {
        return NULL;
    }
    PyObject *id = PyLong_FromVoidPtr(w->sync_steps);
    if (id == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, id);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(key, i + 1, Py_NewRef(PyList_GET_ITEM(stack, i)));
    }
    PyObject *steps = PyDict_GetItemWithError(w->exit_cache, key);
    if (steps != NULL || PyErr_Occurred()) {
        Py_DECREF(key);
        return Py_XNewRef(steps);
    }
    steps = make_exit_steps(w);
    if (steps != NULL && PyDict_SetItem(w->exit_cache, key, steps) < 0) {
        Py_CLEAR(steps);
    }
    Py_DECREF(key);
    return steps;
}

/* -- uops made -- */

/* Append a new uop of uop_type (name, oparg, operand0, operand1, the
 * current uop's offset and exit_to, jump_to, no comment, its exit_after,
 * exit steps), borrowing every argument; the uop (borrowed: held by out),
 * or NULL with an error. */
static PyObject *
append_uop(WalkObject *w, const At *at, PyObject *name, PyObject *oparg, PyObject *operand0,
           PyObject *operand1, PyObject *jump_to, PyObject *steps)
{
    PyObject *args[10] = {name, oparg, operand0, operand1, at->offset, at->exit_to, jump_to,
                          empty_str, at->exit_after, steps};
    PyObject *uop = PyObject_Vectorcall(w->uop_type, args, 10, NULL);
    if (uop == NULL) {
        return NULL;
    }
    int failed = PyList_Append(w->out, uop);
    Py_DECREF(uop);
    return failed ? NULL : uop;
}

/* Box the raw locals into the frame (each if it changed) before code that
 * needs the frame, but those boxed since their last store (clean).  `steps`:
 * the exit steps of where the walk is (borrowed), or NULL to find them.
 * 0, or -1 with an error. */
static int
sync_locals(WalkObject *w, PyObject *steps)
{
    PyObject *syncs = Py_NewRef(w->syncs);
    Py_XINCREF(steps);
    int result = -1, started = 0;
    At at;
    Py_ssize_t n = PyTuple_GET_SIZE(syncs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sync = PyTuple_GET_ITEM(syncs, i);
        if (!PyTuple_CheckExact(sync) || PyTuple_GET_SIZE(sync) != 3) {
            bad("syncs", "a tuple of (name, local, deopts) tuples", sync);
            goto done;
        }
        Py_ssize_t nclean = PySet_Size(w->clean);
        int clean = nclean > 0 ? PySet_Contains(w->clean, PyTuple_GET_ITEM(sync, 1)) : 0;
        if (nclean < 0 || clean < 0) {
            goto done;
        }
        if (clean) {
            continue;
        }
        if (!started) {   /* (the first sync: where the walk is, and its exit steps) */
            if (current_at(w, &at) < 0 || (steps == NULL && (steps = exit_steps(w)) == NULL)) {
                goto done;
            }
            started = 1;
        }
        int can_exit = PyObject_IsTrue(PyTuple_GET_ITEM(sync, 2));
        if (can_exit < 0
            || append_uop(w, &at, PyTuple_GET_ITEM(sync, 0), PyTuple_GET_ITEM(sync, 1), zero,
                          zero, minus_one, can_exit ? steps : empty_tuple) == NULL) {
            goto done;
        }
    }
    /* The raw locals are all clean from here on (those that were, and those synced). */
    for (Py_ssize_t i = 0; started && i < n; i++) {
        if (PySet_Add(w->clean, PyTuple_GET_ITEM(PyTuple_GET_ITEM(syncs, i), 1)) < 0) {
            goto done;
        }
    }
    result = 0;
done:
    Py_XDECREF(steps);
    Py_DECREF(syncs);
    return result;
}

/* -- methods -- */

static PyObject *
walk_exit_steps(WalkObject *w, PyObject *Py_UNUSED(ignored))
{
    return check_state(w) < 0 ? NULL : exit_steps(w);
}

static PyObject *
walk_make_exit_steps(WalkObject *w, PyObject *Py_UNUSED(ignored))
{
    return check_state(w) < 0 ? NULL : make_exit_steps(w);
}

static PyObject *
walk_intern(WalkObject *w, PyObject *steps)
{
    return check_state(w) < 0 ? NULL : intern_steps(w, steps);
}

static PyObject *
walk_has_virtual(WalkObject *w, PyObject *Py_UNUSED(ignored))
{
    if (check_state(w) < 0) {
        return NULL;
    }
    return PyBool_FromLong(!all_boxed(w->stack));
}

static PyObject *
walk_sync_locals(WalkObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "sync_locals() takes at most 1 argument (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *steps = nargs == 1 && args[0] != Py_None ? args[0] : NULL;
    if (check_state(w) < 0 || sync_locals(w, steps) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* keep(uop): emit an original uop, a copy with the exit steps where it is if
 * it can side-exit and something is unboxed; returns what was emitted. */
static PyObject *
walk_keep(WalkObject *w, PyObject *uop)
{
    Py_ssize_t offsets[F_COUNT];
    if (check_state(w) < 0 || cpjit_find_uop_fields((PyObject *)Py_TYPE(uop), offsets) < 0) {
        return NULL;
    }
    PyObject *name = cpjit_uop_field(offsets, uop, 0, F_NAME);
    int exits = name != NULL ? deopts(w, name) : -1;
    if (exits < 0) {
        return NULL;
    }
    PyObject *kept;
    if (exits && (PyDict_GET_SIZE(w->raw) || !all_boxed(w->stack))) {
        PyObject *steps = exit_steps(w);
        kept = steps != NULL ? cpjit_uop_with_steps(uop, steps, 0) : NULL;
        Py_XDECREF(steps);
    }
    else {
        kept = Py_NewRef(uop);
    }
    if (kept != NULL && PyList_Append(w->out, kept) < 0) {
        Py_CLEAR(kept);
    }
    return kept;
}

/* emit(name, oparg=0, operand0=0, operand1=0, *, jump_to=-1): a new uop at
 * the current one (its exit steps where the walk is, if it can exit). */
static PyObject *
walk_emit(WalkObject *w, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *values[5] = {NULL, zero, zero, zero, minus_one};   /* (borrowed) */
    PyObject *keywords[5] = {NULL, s_oparg, s_operand0, s_operand1, s_jump_to};
    if (nargs < 1 || nargs > 4) {
        PyErr_Format(PyExc_TypeError, "emit() takes from 1 to 4 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = args[i];
    }
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = 0;
        for (int i = 1; i < 5 && !found; i++) {
            int equal = key == keywords[i] ? 1 : PyUnicode_Compare(key, keywords[i]) == 0;
            if (equal && i < nargs) {
                PyErr_Format(PyExc_TypeError, "emit() got multiple values for argument '%S'",
                             key);
                return NULL;
            }
            if (equal) {
                values[i] = args[nargs + k];
                found = 1;
            }
        }
        if (!found) {
            PyErr_Format(PyExc_TypeError, "emit() got an unexpected keyword argument '%S'", key);
            return NULL;
        }
    }
    At at;
    if (check_state(w) < 0 || current_at(w, &at) < 0) {
        return NULL;
    }
    int exits = deopts(w, values[0]);
    if (exits < 0) {
        return NULL;
    }
    PyObject *steps = exits ? exit_steps(w) : Py_NewRef(empty_tuple);
    if (steps == NULL) {
        return NULL;
    }
    PyObject *uop = append_uop(w, &at, values[0], values[1], values[2], values[3], values[4],
                               steps);
    Py_DECREF(steps);
    return Py_XNewRef(uop);
}

/* The (pops, pushes, deopts, exits_after, sees_whole_stack, needs_frame) of a uop. */
typedef struct {
    Py_ssize_t pops, pushes;
    int deopts, exits_after, sees_whole_stack, needs_frame;
} Generic;

static int
generic_info(WalkObject *w, PyObject *name, PyObject *oparg, Generic *g)
{
    PyObject *key = PyTuple_Pack(2, name, oparg);
    PyObject *info = key != NULL ? PyObject_GetItem(w->generic_info, key) : NULL;
    int result = -1;
    if (info == NULL) {
        goto done;
    }
    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) != 6) {
        PyErr_Format(PyExc_TypeError, "WalkCore: generic_info[%R] must be a 6-tuple, not %.100s",
                     key, Py_TYPE(info)->tp_name);
        goto done;
    }
    if ((g->pops = PyLong_AsSsize_t(PyTuple_GET_ITEM(info, 0))) == -1 && PyErr_Occurred()) {
        goto done;
    }
    if ((g->pushes = PyLong_AsSsize_t(PyTuple_GET_ITEM(info, 1))) == -1 && PyErr_Occurred()) {
        goto done;
    }
    if (g->pops < 0 || g->pushes < 0) {
        PyErr_Format(PyExc_ValueError, "WalkCore: generic_info[%R]: pops and pushes must be "
                     ">= 0", key);
        goto done;
    }
    if ((g->deopts = PyObject_IsTrue(PyTuple_GET_ITEM(info, 2))) < 0
        || (g->exits_after = PyObject_IsTrue(PyTuple_GET_ITEM(info, 3))) < 0
        || (g->sees_whole_stack = PyObject_IsTrue(PyTuple_GET_ITEM(info, 4))) < 0
        || (g->needs_frame = PyObject_IsTrue(PyTuple_GET_ITEM(info, 5))) < 0) {
        goto done;
    }
    result = 0;
done:
    Py_XDECREF(info);
    Py_XDECREF(key);
    return result;
}

/* The uop's effect on the abstract stack: it pops `pops` items and pushes
 * `pushes` boxed ones.  0, or -1 with an error. */
static int
pop_push(PyObject *stack, PyObject *uop_name, Py_ssize_t pops, Py_ssize_t pushes)
{
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (pops > n) {
        PyErr_Format(PyExc_RuntimeError, "unbox: %S pops %zd items of a stack of %zd",
                     uop_name, pops, n);
        return -1;
    }
    if (pops && PyList_SetSlice(stack, n - pops, n, NULL) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < pushes; i++) {
        if (PyList_Append(stack, Py_None) < 0) {
            return -1;
        }
    }
    return 0;
}

/* generic(uop): a uop on objects.  When nothing is unboxed it comes out as
 * it is.  Else the virtual items it looks at are boxed first (materialize:
 * all of the stack for one that sees below its inputs), the raw locals are
 * synced before code that needs the frame, and its exits get the steps that
 * box what stays unboxed. */
static PyObject *
walk_generic(WalkObject *w, PyObject *uop)
{
    Py_ssize_t offsets[F_COUNT];
    if (check_state(w) < 0 || cpjit_find_uop_fields((PyObject *)Py_TYPE(uop), offsets) < 0) {
        return NULL;
    }
    PyObject *name = cpjit_uop_field(offsets, uop, 0, F_NAME);
    PyObject *oparg = name != NULL ? cpjit_uop_field(offsets, uop, 0, F_OPARG) : NULL;
    Generic g = {0, 0, 0, 0, 0, 0};
    if (oparg == NULL || generic_info(w, name, oparg, &g) < 0) {
        return NULL;
    }
    PyObject *stack = Py_NewRef(w->stack);   /* (the list the walk had at the start) */
    PyObject *kept = NULL, *steps = NULL, *result = NULL;
    int raw = PyDict_GET_SIZE(w->raw) != 0;
    if (!raw && all_boxed(stack)) {   /* (and nothing is unboxed after it either) */
        if (PyList_Append(w->out, uop) < 0 || pop_push(stack, name, g.pops, g.pushes) < 0) {
            goto done;
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (!all_boxed(stack)) {
        PyObject *top = g.sees_whole_stack ? Py_NewRef(Py_None) : PyLong_FromSsize_t(g.pops);
        PyObject *done_ = top != NULL
                          ? PyObject_CallMethodOneArg((PyObject *)w, s_materialize, top) : NULL;
        Py_XDECREF(top);
        if (done_ == NULL) {
            goto done;
        }
        Py_DECREF(done_);
        if (check_state(w) < 0) {   /* (Python code ran) */
            goto done;
        }
    }
    steps = all_boxed(stack) ? Py_NewRef(w->sync_steps) : exit_steps(w);
    if (steps == NULL || (raw && g.needs_frame && sync_locals(w, steps) < 0)) {
        goto done;
    }
    /* (Without raw locals, the steps are empty when nothing is virtual.) */
    kept = g.deopts && (raw || PyTuple_GET_SIZE(steps)) ? cpjit_uop_with_steps(uop, steps, 0)
                                                         : Py_NewRef(uop);
    if (kept == NULL || PyList_Append(w->out, kept) < 0
        || pop_push(stack, name, g.pops, g.pushes) < 0) {
        goto done;
    }
    if (g.exits_after && (raw || !all_boxed(stack))) {
        /* Its exit after its effect boxes what is unboxed below its outputs. */
        PyObject *after = exit_steps(w);
        PyObject *copy = after != NULL ? cpjit_uop_with_steps(kept, after, 1) : NULL;
        Py_XDECREF(after);
        if (copy == NULL) {
            goto done;
        }
        Py_ssize_t last = PyList_GET_SIZE(w->out) - 1;
        if (last < 0) {
            Py_DECREF(copy);
            PyErr_SetString(PyExc_RuntimeError, "WalkCore: out emptied during generic");
            goto done;
        }
        if (PyList_SetItem(w->out, last, copy) < 0) {   /* (steals it, even on failure) */
            goto done;
        }
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(kept);
    Py_XDECREF(steps);
    Py_DECREF(stack);
    return result;
}

/* The size of a State's stack (its first item, a tuple), or -1 with an error. */
static Py_ssize_t
state_depth(PyObject *state)
{
    PyObject *stack = PyTuple_Check(state) && PyTuple_GET_SIZE(state) >= 1
                      ? PyTuple_GET_ITEM(state, 0) : NULL;
    if (stack == NULL || !PyTuple_Check(stack)) {
        PyErr_Format(PyExc_TypeError, "WalkCore: a state must be a (stack, locals) tuple, "
                     "not %.100s", Py_TYPE(state)->tp_name);
        return -1;
    }
    return PyTuple_GET_SIZE(stack);
}

/* One uop of the walk (see walk_uops): 0, or -1 with an error. */
static int
walk_one(WalkObject *w, PyObject *uop, PyObject *state, PyObject *region, Py_ssize_t index,
         PyObject *handlers, PyObject *skip, PyObject *label)
{
    Py_ssize_t offsets[F_COUNT];
    if (cpjit_find_uop_fields((PyObject *)Py_TYPE(uop), offsets) < 0) {
        return -1;
    }
    PyObject *name = cpjit_uop_field(offsets, uop, index, F_NAME);
    if (name == NULL) {
        return -1;
    }
    Py_INCREF(name);
    PyObject *result = NULL;
    Py_XSETREF(w->current, Py_NewRef(uop));
    int is_label = PyUnicode_Check(name) ? PyUnicode_Compare(name, label) == 0 : 0;
    if (is_label) {
        result = PyObject_CallMethodObjArgs((PyObject *)w, s_label, uop, region, NULL);
        goto done;
    }
    if (region == Py_None && PyDict_GET_SIZE(w->raw)) {
        result = PyObject_CallMethodNoArgs((PyObject *)w, s_leave_region);
        if (result == NULL || check_state(w) < 0) {
            goto done;
        }
        Py_CLEAR(result);
    }
    if (state == Py_None) {
        result = walk_keep(w, uop);
        goto done;
    }
    Py_ssize_t depth = state_depth(state);
    if (depth < 0) {
        goto done;
    }
    if (depth != PyList_GET_SIZE(w->stack)) {   /* after a terminator: a fresh path */
        PyObject *fresh = PyList_New(depth);
        if (fresh == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < depth; i++) {
            PyList_SET_ITEM(fresh, i, Py_NewRef(Py_None));
        }
        Py_SETREF(w->stack, fresh);
    }
    PyObject *handler = PyDict_GetItemWithError(handlers, name);
    if (handler == NULL) {
        result = PyErr_Occurred() ? NULL : walk_generic(w, uop);
        goto done;
    }
    Py_INCREF(handler);
    PyObject *at = PyLong_FromSsize_t(index);
    PyObject *args[3] = {(PyObject *)w, uop, at};
    PyObject *handled = at != NULL ? PyObject_Vectorcall(handler, args, 3, NULL) : NULL;
    Py_DECREF(handler);
    Py_XDECREF(at);
    int done_ = handled != NULL ? PyObject_IsTrue(handled) : -1;
    Py_XDECREF(handled);
    if (done_ < 0 && PyErr_ExceptionMatches(skip)) {
        PyErr_Clear();   /* (the handler gave up: generic) */
        done_ = 0;
    }
    if (done_ < 0 || check_state(w) < 0) {
        goto done;
    }
    result = done_ ? Py_NewRef(Py_None) : walk_generic(w, uop);
done:
    Py_DECREF(name);
    Py_XDECREF(result);
    return result != NULL ? 0 : -1;
}

/* walk_uops(start, uops, states, region_at, handlers, skip, label): uop by
 * uop from `start` until nothing is unboxed after one (no raw locals,
 * nothing virtual); the index where it stopped.  Each uop: a label (named
 * `label`) goes to self.label(uop, region); leaving a loop's region to
 * self.leave_region(); an unreachable one (state None) is kept; else its
 * handler (handlers[name](self, uop, index), which returns whether it
 * handled the uop or raises `skip`) or generic.  (generic and keep are
 * this type's, not a subclass's.) */
static PyObject *
walk_walk_uops(WalkObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "walk_uops() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[0]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *uops = args[1], *states = args[2], *region_at = args[3], *handlers = args[4],
             *skip = args[5], *label = args[6];
    if (!PyList_Check(uops) || !PyList_Check(states) || !PyList_Check(region_at)) {
        PyErr_SetString(PyExc_TypeError, "walk_uops: uops, states and region_at must be lists");
        return NULL;
    }
    if (!PyDict_Check(handlers) || !PyExceptionClass_Check(skip) || !PyUnicode_Check(label)) {
        PyErr_SetString(PyExc_TypeError, "walk_uops: handlers must be a dict, skip an "
                        "exception class and label a str");
        return NULL;
    }
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "walk_uops: start must be >= 0");
        return NULL;
    }
    for (Py_ssize_t index = start; ; index++) {
        if (check_state(w) < 0) {
            return NULL;
        }
        /* (The lists as they are now: Python code runs in between.) */
        if (index >= PyList_GET_SIZE(uops) || index >= PyList_GET_SIZE(states)
            || index >= PyList_GET_SIZE(region_at)) {
            return PyLong_FromSsize_t(PyList_GET_SIZE(uops));
        }
        if (!PyDict_GET_SIZE(w->raw) && index > start && all_boxed(w->stack)) {
            return PyLong_FromSsize_t(index);
        }
        PyObject *uop = Py_NewRef(PyList_GET_ITEM(uops, index));
        PyObject *state = Py_NewRef(PyList_GET_ITEM(states, index));
        PyObject *region = Py_NewRef(PyList_GET_ITEM(region_at, index));
        int failed = walk_one(w, uop, state, region, index, handlers, skip, label);
        Py_DECREF(uop);
        Py_DECREF(state);
        Py_DECREF(region);
        if (failed) {
            return NULL;
        }
    }
}

static PyMethodDef walk_methods[] = {
    {"walk_uops", (PyCFunction)(void (*)(void))walk_walk_uops, METH_FASTCALL,
     "walk_uops(start, uops, states, region_at, handlers, skip, label)\n--\n\n"
     "The walk from uop `start` until nothing is unboxed after one; where it stopped."},
    {"generic", (PyCFunction)walk_generic, METH_O,
     "generic(uop)\n--\n\nA uop on objects, emitted with what its place in the walk needs."},
    {"keep", (PyCFunction)walk_keep, METH_O,
     "keep(uop)\n--\n\nEmit an original uop (a copy, if its exits need steps); returns it."},
    {"emit", (PyCFunction)(void (*)(void))walk_emit, METH_FASTCALL | METH_KEYWORDS,
     "emit(name, oparg=0, operand0=0, operand1=0, *, jump_to=-1)\n--\n\n"
     "Emit a new uop at the current one; returns it."},
    {"exit_steps", (PyCFunction)walk_exit_steps, METH_NOARGS,
     "exit_steps()\n--\n\nThe exit steps of the abstract state where the walk is."},
    {"_exit_steps", (PyCFunction)walk_make_exit_steps, METH_NOARGS,
     "_exit_steps()\n--\n\nThe exit steps of the abstract state, made (not looked up)."},
    {"intern", (PyCFunction)walk_intern, METH_O,
     "intern(steps)\n--\n\nThe one tuple of these exit steps in this walk."},
    {"has_virtual", (PyCFunction)walk_has_virtual, METH_NOARGS,
     "has_virtual()\n--\n\nWhether some stack item is virtual (not None)."},
    {"sync_locals", (PyCFunction)(void (*)(void))walk_sync_locals, METH_FASTCALL,
     "sync_locals(steps=None)\n--\n\nBox the raw locals that are not clean into the frame."},
    {NULL, NULL, 0, NULL},
};

#define MEMBER(name) {#name, Py_T_OBJECT_EX, offsetof(WalkObject, name), 0, NULL}

static PyMemberDef walk_members[] = {
    MEMBER(stack), MEMBER(raw), MEMBER(sync_steps), MEMBER(syncs), MEMBER(clean),
    MEMBER(exit_cache), MEMBER(interned), MEMBER(out), MEMBER(current), MEMBER(deopts),
    MEMBER(generic_info), MEMBER(uop_type), MEMBER(exit_step_type),
    {NULL, 0, 0, 0, NULL},
};
#undef MEMBER

#define EACH_FIELD(DO) DO(stack) DO(raw) DO(sync_steps) DO(syncs) DO(clean) DO(exit_cache) \
    DO(interned) DO(out) DO(current) DO(deopts) DO(generic_info) DO(uop_type) DO(exit_step_type)

static int
walk_traverse(WalkObject *w, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(w->name);
    EACH_FIELD(VISIT)
#undef VISIT
    Py_VISIT(Py_TYPE(w));   /* (a heap subclass) */
    return 0;
}

static int
walk_clear(WalkObject *w)
{
#define CLEAR(name) Py_CLEAR(w->name);
    EACH_FIELD(CLEAR)
#undef CLEAR
    return 0;
}

static void
walk_dealloc(WalkObject *w)
{
    PyTypeObject *type = Py_TYPE(w);
    PyObject_GC_UnTrack(w);
    walk_clear(w);
    type->tp_free((PyObject *)w);
}

static PyTypeObject Walk_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.WalkCore",
    .tp_doc = "WalkCore()\n--\n\n"
              "The C core of cpjit.unbox._Walk: the walk's state (attributes the "
              "subclass sets) and the methods most uops go through.",
    .tp_basicsize = sizeof(WalkObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)walk_dealloc,
    .tp_traverse = (traverseproc)walk_traverse,
    .tp_clear = (inquiry)walk_clear,
    .tp_methods = walk_methods,
    .tp_members = walk_members,
};

int
cpjit_walk_type_init(PyObject *module)
{
    struct { PyObject **where; const char *text; } names[] = {
        {&s_exit_action, "exit_action"}, {&s_exit_value, "exit_value"},
        {&s_materialize, "materialize"}, {&s_label, "label"},
        {&s_leave_region, "leave_region"}, {&s_oparg, "oparg"}, {&s_operand0, "operand0"},
        {&s_operand1, "operand1"}, {&s_jump_to, "jump_to"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].where == NULL
            && (*names[i].where = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return -1;
        }
    }
    if (empty_str == NULL) {
        empty_str = PyUnicode_FromStringAndSize("", 0);
        empty_tuple = PyTuple_New(0);
        zero = PyLong_FromLong(0);
        minus_one = PyLong_FromLong(-1);
        if (empty_str == NULL || empty_tuple == NULL || zero == NULL || minus_one == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&Walk_Type) < 0) {
        return -1;
    }
    return PyModule_AddType(module, &Walk_Type);
}
