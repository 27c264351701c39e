/* analyze.c: the worklist of cpjit/analysis.py's type analysis.
 *
 * The body of analysis._analyze: the state (what is known about each stack
 * item and local) before each uop of a trace.  It runs once per compilation
 * (the passes reuse it); in Python its bookkeeping (the worklist, the label
 * lookups, the comparisons of states, generic_transfer) ran some 11,600
 * bytecodes for nqueens.place's 104 uops, besides the transfer functions.
 * What the uops do to a state still comes from Python: the transfer
 * functions (a dict by uop name, mostly specialize.py's
 * Specializer.transfers()) are called from here, and so is State.join, at
 * labels.  A uop without a transfer
 * function, or whose transfer function returns None (or anything false), has
 * its generic stack effect: generic_transfer below, the twin of
 * analysis.generic_transfer (which other code calls): the two must do the
 * same, and tests/test_analysis.py compares them on every uop it visits.
 * Both read a uop's effect from analysis.EFFECTS, by (name, oparg): a dict
 * that fills itself on first use (__missing__), asked as a mapping.
 * analyze() reads the UOp objects' fields straight from their slots
 * (uopfields.c), and makes States as tuple.__new__(State, (stack, locals))
 * does (analysis.new).
 *
 * The algorithm.  states[i] is the state before uop i (NULL: not reached
 * yet); states[0] is the entry state.  Uops are visited in code order,
 * lowest index first: the worklist is a min-heap of indices, `pending` says
 * which are in it, so that a loop body is revisited once its back edge
 * changes the header, not once per path.  From each index taken off the
 * worklist the walk goes on through a run of uops:
 *
 *   - A visit makes the uop's outcome from its state: (the state on falling
 *     through, the state on jumping), NULL where it does not.  A label
 *     passes its state on unchanged; another uop's outcome is its transfer
 *     function's (called with the uop and the state), or generic_transfer's.
 *     altered[i] is set when a visit of a uop that is not a label does not
 *     just fall through with the very state it was given (the outcome's
 *     fall-through state is another object, or it jumps): see
 *     analysis.remove_uops.
 *   - A jump goes to the label whose oparg is the uop's jump_to (the last
 *     such label; none: AnalysisError "<uop.describe()>: no label").
 *   - Falling through into uop i + 1 (if there is one): if it was not
 *     reached yet, it takes the state.  If it is not a label, its only way in
 *     is from uop i: its state is what uop i makes of its own, no join
 *     needed; it takes the new state unless that is the old one or equal to
 *     it (`new is not old and new != old`).  A label joins the new state
 *     into its own (State.join; None: AnalysisError "stack depths differ at
 *     uop <i + 1>"), and takes the join if it differs.  Only labels join;
 *     they only grow, so the walk ends.
 *   - Then the jump's state is joined into its label's the same way (taken
 *     as it is if the label was not reached yet); if the label's state
 *     changed (`merged is not old and not merged == old`), the label is
 *     queued, unless it is already.
 *   - The walk goes on to uop i + 1 if its state changed, unless something
 *     before it is queued (work[0] <= i + 1, after a back edge): then i + 1
 *     is queued (unless it is already) and the run ends.  (The worklist holds
 *     what `pending` says: nothing at or before i + 1 is queued when work[0]
 *     is after it; else the next uop in code order is next anyway, with no
 *     need to queue it.)
 *
 * The visits, and so the calls of the transfer functions, come in exactly
 * the order the Python _analyze made them (tests/test_analysis.py keeps it,
 * python_analyze, to check this file against), and its errors are the same:
 * AnalysisError (the `error` class handed in) for a broken trace, with the
 * Python messages; an exception from a transfer function or State.join
 * propagates unchanged.  What is not a trace at all (wrong types, a transfer
 * function's result that is not a pair of States or None, effects out of
 * range, a branch that pops more than its uop) raises TypeError or
 * ValueError.  The uops are read as the list holds them when analyze() is
 * called (a transfer function does not change the trace).
 */
#include "cpjit.h"

#include <stdlib.h>
#include <string.h>

/* Far more items than a uop pops or pushes, and uops than a trace has. */
enum { EFFECT_LIMIT = 1 << 20, UOPS_LIMIT = 1 << 26 };

/* A uop's effect on the stack: its analysis.Effect, read. */
typedef struct {
    int32_t pops, pushes;
    int32_t jump_pops;      /* -1 for None: the branch has the stack after the uop */
    char falls_through;     /* not a terminator */
    char jumps;
} Effect;

/* The effect last looked up for uop i (analyze: one per uop), with the name
 * (held) and oparg it was looked up for. */
typedef struct {
    PyObject *name;         /* NULL: none yet (see Analysis.has_known) */
    int64_t oparg;
    Effect effect;
} KnownEffect;

/* What generic_transfer needs from the caller. */
typedef struct {
    PyTypeObject *uop_type;         /* the uops are instances of exactly this type */
    Py_ssize_t offsets[F_COUNT];    /* its fields' slots */
    PyObject *effects;              /* analysis.EFFECTS: a dict by (name, oparg) */
    PyTypeObject *state_type;       /* analysis.State: a tuple subclass (stack, locals) */
    PyObject *unknown;              /* analysis.UNKNOWN: the item generic_transfer pushes */
    PyObject *error;                /* analysis.AnalysisError */
} Context;

/* Check what every entry point is handed.  0, or -1 with a TypeError. */
static int
context_init(Context *c, PyObject *uop_type, PyObject *effects, PyObject *state_type,
             PyObject *unknown, PyObject *error)
{
    if (cpjit_find_uop_fields(uop_type, c->offsets) < 0) {
        return -1;
    }
    if (!PyDict_Check(effects)) {
        PyErr_SetString(PyExc_TypeError, "cpjit: the uop effects must be a dict");
        return -1;
    }
    if (!PyType_Check(state_type)
        || !PyType_IsSubtype((PyTypeObject *)state_type, &PyTuple_Type)
        || ((PyTypeObject *)state_type)->tp_alloc == NULL) {
        PyErr_SetString(PyExc_TypeError, "cpjit: the state type must be a tuple subclass");
        return -1;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "cpjit: error must be an exception class");
        return -1;
    }
    c->uop_type = (PyTypeObject *)uop_type;
    c->effects = effects;
    c->state_type = (PyTypeObject *)state_type;
    c->unknown = unknown;
    c->error = error;
    return 0;
}

/* ---- states ---- */

/* Whether `state` is a State this file can read: exactly the state type, a
 * stack tuple and the locals. */
static int
is_state(const Context *c, PyObject *state)
{
    return Py_IS_TYPE(state, c->state_type) && PyTuple_GET_SIZE(state) == 2
           && PyTuple_Check(PyTuple_GET_ITEM(state, 0));
}

/* `state` is one (0), or -1 with a TypeError saying it is `what`. */
static int
check_state(const Context *c, PyObject *state, const char *what, Py_ssize_t index)
{
    if (is_state(c, state)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "cpjit: %s of uop %zd is a %.100s, not a %.100s of a stack "
                 "tuple and locals", what, index, Py_TYPE(state)->tp_name,
                 c->state_type->tp_name);
    return -1;
}

/* A new State (stack, locals): what tuple.__new__(State, (stack, locals))
 * makes (tuple_subtype_new: the type's tp_alloc, the items set). */
static PyObject *
new_state(const Context *c, PyObject *stack, PyObject *locals)
{
    PyObject *state = c->state_type->tp_alloc(c->state_type, 2);
    if (state == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(state, 0, Py_NewRef(stack));
    PyTuple_SET_ITEM(state, 1, Py_NewRef(locals));
    return state;
}

/* ---- uops and their effects ---- */

/* The name of uop `index` (borrowed): an exact str. */
static PyObject *
name_of(const Context *c, PyObject *uop, Py_ssize_t index)
{
    PyObject *name = cpjit_uop_field(c->offsets, uop, index, F_NAME);
    if (name != NULL && !PyUnicode_CheckExact(name)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: its name must be a str, not %.100s",
                     index, Py_TYPE(name)->tp_name);
        return NULL;
    }
    return name;
}

/* Raise c->error with "<uop.describe()><the message `format` makes>", as
 * the Python f-strings do.  -1. */
static int
fail_uop(const Context *c, PyObject *uop, const char *format, ...)
{
    PyObject *description = PyObject_CallMethod(uop, "describe", NULL);
    if (description == NULL) {
        return -1;
    }
    va_list args;
    va_start(args, format);
    PyObject *message = PyUnicode_FromFormatV(format, args);
    va_end(args);
    if (message != NULL) {
        PyObject *full = PyUnicode_FromFormat("%S%U", description, message);
        if (full != NULL) {
            PyErr_SetObject(c->error, full);
            Py_DECREF(full);
        }
        Py_DECREF(message);
    }
    Py_DECREF(description);
    return -1;
}

static const char *const effect_fields[5] = {
    "pops", "pushes", "falls_through", "jumps", "jump_pops",
};

/* Item `i` of an Effect: an int in [0, high]. */
static int
effect_count(PyObject *effect, Py_ssize_t i, int32_t high, PyObject *name, int32_t *out)
{
    PyObject *item = PyTuple_GET_ITEM(effect, i);
    if (!PyLong_Check(item)) {
        PyErr_Format(PyExc_TypeError, "cpjit: the effect of uop %U: %s must be an int, not %.100s",
                     name, effect_fields[i], Py_TYPE(item)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || value < 0 || value > high) {
        PyErr_Format(PyExc_ValueError, "cpjit: the effect of uop %U: %s out of range", name,
                     effect_fields[i]);
        return -1;
    }
    *out = (int32_t)value;
    return 0;
}

/* An Effect (pops, pushes, falls_through, jumps, jump_pops), read; its
 * branch pops no more than the uop does (so never more than the stack has,
 * once the pops are checked). */
static int
parse_effect(PyObject *effect, PyObject *name, Effect *out)
{
    if (!PyTuple_Check(effect) || PyTuple_GET_SIZE(effect) != 5) {
        PyErr_Format(PyExc_TypeError, "cpjit: the effect of uop %U must be an Effect, not "
                     "%.100s", name, Py_TYPE(effect)->tp_name);
        return -1;
    }
    if (effect_count(effect, 0, EFFECT_LIMIT, name, &out->pops) < 0
        || effect_count(effect, 1, EFFECT_LIMIT, name, &out->pushes) < 0) {
        return -1;
    }
    int falls_through = PyObject_IsTrue(PyTuple_GET_ITEM(effect, 2));
    int jumps = falls_through < 0 ? -1 : PyObject_IsTrue(PyTuple_GET_ITEM(effect, 3));
    if (jumps < 0) {
        return -1;
    }
    out->falls_through = (char)falls_through;
    out->jumps = (char)jumps;
    out->jump_pops = -1;
    if (PyTuple_GET_ITEM(effect, 4) != Py_None) {
        return effect_count(effect, 4, out->pops, name, &out->jump_pops);
    }
    return 0;
}

/* mapping[key] as a new reference: straight from the dict when it is there,
 * else through the mapping protocol (analysis._Effects.__missing__ works
 * the effect out and keeps it; Python code runs). */
static PyObject *
lookup(PyObject *mapping, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(mapping, key);
    if (value != NULL) {
        return Py_NewRef(value);
    }
    return PyErr_Occurred() ? NULL : PyObject_GetItem(mapping, key);
}

/* The effect of uop `index`: EFFECTS[uop.name, uop.oparg].  With `known`,
 * the one last looked up for that uop, if its name and oparg are the same. */
static int
effect_of(const Context *c, PyObject *uop, Py_ssize_t index, KnownEffect *known, Effect *effect)
{
    PyObject *name = name_of(c, uop, index);
    int64_t value;
    if (name == NULL || cpjit_uop_int_field(c->offsets, uop, index, F_OPARG, &value) < 0) {
        return -1;
    }
    if (known != NULL && known->name == name && known->oparg == value) {
        *effect = known->effect;
        return 0;
    }
    /* (An exact int in the key, so that hashing it runs no Python code.  The
     * key holds the name while Python code runs.) */
    PyObject *oparg = cpjit_uop_field(c->offsets, uop, index, F_OPARG);
    oparg = PyLong_CheckExact(oparg) ? Py_NewRef(oparg) : PyLong_FromLongLong(value);
    PyObject *key = oparg == NULL ? NULL : PyTuple_Pack(2, name, oparg);
    Py_XDECREF(oparg);
    PyObject *found = key == NULL ? NULL : lookup(c->effects, key);
    int err = found == NULL || parse_effect(found, name, effect) < 0;
    Py_XDECREF(found);
    if (!err && known != NULL) {
        Py_XSETREF(known->name, Py_NewRef(name));
        known->oparg = value;
        known->effect = *effect;
    }
    Py_XDECREF(key);
    return err ? -1 : 0;
}

/* analysis.generic_transfer, the same steps: the stack effect from the
 * uop's Effect, nothing known about what it pushes (UNKNOWN items), the
 * same locals.  `state` is a State (is_state).  Sets *fallthrough and *jump
 * (new references; NULL for None): 0, or -1 with an error.  Keep it the same
 * as the Python one (tests/test_analysis.py compares them). */
static int
generic_transfer(const Context *c, PyObject *uop, Py_ssize_t index, PyObject *state,
                 KnownEffect *known, PyObject **fallthrough, PyObject **jump)
{
    *fallthrough = *jump = NULL;
    Effect e;
    if (effect_of(c, uop, index, known, &e) < 0) {
        return -1;
    }
    PyObject *stack = PyTuple_GET_ITEM(state, 0), *locals = PyTuple_GET_ITEM(state, 1);
    Py_ssize_t depth = PyTuple_GET_SIZE(stack);
    if (e.pops > depth) {
        return fail_uop(c, uop, " pops %d of %zd items", (int)e.pops, depth);
    }
    /* after: stack[:depth - pops] + (UNKNOWN,) * pushes, or the state itself */
    PyObject *after;
    if (e.pops || e.pushes) {
        Py_ssize_t kept = depth - e.pops;
        PyObject *items = PyTuple_New(kept + e.pushes);
        if (items == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < kept; i++) {
            PyTuple_SET_ITEM(items, i, Py_NewRef(PyTuple_GET_ITEM(stack, i)));
        }
        for (Py_ssize_t i = kept; i < kept + e.pushes; i++) {
            PyTuple_SET_ITEM(items, i, Py_NewRef(c->unknown));
        }
        after = new_state(c, items, locals);
        Py_DECREF(items);
        if (after == NULL) {
            return -1;
        }
    }
    else {
        after = Py_NewRef(state);
    }
    /* jump: after, or state.pop(jump_pops) (a new State, even of the same stack) */
    if (e.jumps) {
        if (e.jump_pops < 0) {
            *jump = Py_NewRef(after);
        }
        else {
            PyObject *rest = e.jump_pops ? PyTuple_GetSlice(stack, 0, depth - e.jump_pops)
                                         : Py_NewRef(stack);
            *jump = rest == NULL ? NULL : new_state(c, rest, locals);
            Py_XDECREF(rest);
            if (*jump == NULL) {
                Py_DECREF(after);
                return -1;
            }
        }
    }
    if (e.falls_through) {
        *fallthrough = after;
    }
    else {
        Py_DECREF(after);
    }
    return 0;
}

/* ---- the analysis ---- */

/* A label: the offset it marks (its oparg) and its index. */
typedef struct {
    int64_t offset;
    Py_ssize_t index;
} Label;

typedef struct {
    Context c;
    /* from the caller */
    PyObject *uops;         /* a tuple (the list as it was) of instances of exactly c.uop_type */
    PyObject *label;        /* the name of the label pseudo-uop */
    PyObject *transfers;    /* dict: uop name -> transfer function */
    PyObject *join;         /* State.join */
    Py_ssize_t n;
    /* the analysis: per uop (one block with the labels and the worklist) */
    PyObject **states;      /* the state before it (held), or NULL: not reached yet */
    KnownEffect *known;     /* set up on first use: */
    char *has_known;
    char *is_label;
    char *pending;          /* it is in the worklist */
    char *altered;
    Label *labels;          /* by offset, then index */
    Py_ssize_t nlabels;
    Py_ssize_t *work;       /* the worklist: a min-heap of indices */
    Py_ssize_t nwork;
} Analysis;

/* The per-uop arrays, in one block.  0, or -1 with a MemoryError.  (Only
 * what must start zeroed is: the known effects are set up on first use.) */
static int
analysis_init(Analysis *a)
{
    size_t n = (size_t)a->n;
    char *block = PyMem_Malloc(n * (sizeof(PyObject *) + sizeof(KnownEffect) + sizeof(Label)
                                    + sizeof(Py_ssize_t) + 4));
    if (block == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    a->states = (PyObject **)block;
    a->known = (KnownEffect *)(a->states + n);
    a->labels = (Label *)(a->known + n);
    a->work = (Py_ssize_t *)(a->labels + n);
    a->has_known = (char *)(a->work + n);
    a->is_label = a->has_known + n;
    a->pending = a->is_label + n;
    a->altered = a->pending + n;
    memset(a->states, 0, n * sizeof(PyObject *));
    memset(a->has_known, 0, 4 * n);
    return 0;
}

static void
analysis_free(Analysis *a)
{
    if (a->states != NULL) {
        for (Py_ssize_t i = 0; i < a->n; i++) {
            Py_XDECREF(a->states[i]);
            if (a->has_known[i]) {
                Py_XDECREF(a->known[i].name);
            }
        }
        PyMem_Free(a->states);
    }
}

/* The known effect of uop `index`, set up (empty) if it was not yet. */
static KnownEffect *
known_effect(Analysis *a, Py_ssize_t index)
{
    if (!a->has_known[index]) {
        a->has_known[index] = 1;
        a->known[index].name = NULL;
    }
    return &a->known[index];
}

/* (An index is in the worklist at most once: see `pending`.) */
static void
push_work(Analysis *a, Py_ssize_t index)
{
    a->pending[index] = 1;
    cpjit_heap_push(a->work, &a->nwork, index);
}

static Py_ssize_t
pop_work(Analysis *a)
{
    Py_ssize_t first = cpjit_heap_pop(a->work, &a->nwork);
    a->pending[first] = 0;
    return first;
}

static int
compare_labels(const void *x, const void *y)
{
    const Label *a = x, *b = y;
    if (a->offset != b->offset) {
        return a->offset < b->offset ? -1 : 1;
    }
    return (a->index > b->index) - (a->index < b->index);
}

/* Before the analysis: every uop is of the uop type with a name, and the
 * labels are found by the offset they mark (their oparg), sorted (they
 * mostly are already). */
static int
find_labels(Analysis *a)
{
    int sorted = 1;
    for (Py_ssize_t index = 0; index < a->n; index++) {
        PyObject *uop = PyTuple_GET_ITEM(a->uops, index);
        if (!Py_IS_TYPE(uop, a->c.uop_type)) {
            PyErr_Format(PyExc_TypeError, "cpjit: uop %zd is a %.100s, not a %.100s", index,
                         Py_TYPE(uop)->tp_name, a->c.uop_type->tp_name);
            return -1;
        }
        PyObject *name = name_of(&a->c, uop, index);
        if (name == NULL) {
            return -1;
        }
        if (name == a->label || (PyUnicode_GET_LENGTH(name) == PyUnicode_GET_LENGTH(a->label)
                                 && PyUnicode_Compare(name, a->label) == 0)) {
            Label *label = &a->labels[a->nlabels];
            if (cpjit_uop_int_field(a->c.offsets, uop, index, F_OPARG, &label->offset) < 0) {
                return -1;
            }
            label->index = index;
            sorted = sorted && (a->nlabels == 0 || label[-1].offset < label->offset);
            a->nlabels++;
            a->is_label[index] = 1;
        }
    }
    if (!sorted) {
        qsort(a->labels, (size_t)a->nlabels, sizeof(Label), compare_labels);
    }
    return 0;
}

/* The index of the label of `offset` (the last of them, as a dict of them
 * built in order has it), or -1. */
static Py_ssize_t
label_at(const Analysis *a, int64_t offset)
{
    Py_ssize_t low = 0, high = a->nlabels;   /* the first one past `offset` is in [low, high] */
    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (a->labels[middle].offset <= offset) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    return low > 0 && a->labels[low - 1].offset == offset ? a->labels[low - 1].index : -1;
}

/* What the transfer function of uop `index` (named `name`) returned:
 * 1 for an outcome, a pair of States or None; 0 for None or anything false
 * (generic_transfer's outcome then); -1 with an error: what it raised, or a
 * TypeError for anything else. */
static int
check_result(const Analysis *a, Py_ssize_t index, PyObject *name, PyObject *result)
{
    if (result == NULL) {
        return -1;
    }
    if (PyTuple_Check(result) && PyTuple_GET_SIZE(result) == 2) {
        PyObject *f = PyTuple_GET_ITEM(result, 0), *j = PyTuple_GET_ITEM(result, 1);
        if ((f == Py_None || is_state(&a->c, f)) && (j == Py_None || is_state(&a->c, j))) {
            return 1;
        }
        PyErr_Format(PyExc_TypeError, "cpjit: the transfer function of uop %zd (%U) returned "
                     "(%.100s, %.100s), not a pair of %.100s or None", index, name,
                     Py_TYPE(f)->tp_name, Py_TYPE(j)->tp_name, a->c.state_type->tp_name);
        return -1;
    }
    int truth = result == Py_None ? 0 : PyObject_IsTrue(result);
    if (truth > 0) {
        PyErr_Format(PyExc_TypeError, "cpjit: the transfer function of uop %zd (%U) returned a "
                     "%.100s, not a pair of %.100s or None, nor None", index, name,
                     Py_TYPE(result)->tp_name, a->c.state_type->tp_name);
        return -1;
    }
    return truth;   /* 0, or -1 if truth testing it raised */
}

/* The outcome of visiting uop `index` (not a label) with `state`: its
 * transfer function's, or (it has none, or it returned None or anything
 * false) generic_transfer's.  As generic_transfer sets them. */
static int
outcome(Analysis *a, PyObject *uop, Py_ssize_t index, PyObject *state, PyObject **fallthrough,
        PyObject **jump)
{
    PyObject *name = name_of(&a->c, uop, index);
    if (name == NULL) {
        return -1;
    }
    /* (An exact str key: the lookup runs no Python code.) */
    PyObject *transfer = PyDict_GetItemWithError(a->transfers, name);
    if (transfer == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (transfer != NULL) {
        PyObject *args[2] = {uop, state};
        /* (While it runs, it could drop itself from the dict, or the name from the uop.) */
        Py_INCREF(transfer);
        Py_INCREF(name);
        PyObject *result = PyObject_Vectorcall(transfer, args, 2, NULL);
        Py_DECREF(transfer);
        int err = check_result(a, index, name, result);
        Py_DECREF(name);
        if (err < 0) {
            Py_XDECREF(result);
            return -1;
        }
        if (err > 0) {   /* its outcome */
            PyObject *f = PyTuple_GET_ITEM(result, 0), *j = PyTuple_GET_ITEM(result, 1);
            *fallthrough = f == Py_None ? NULL : Py_NewRef(f);
            *jump = j == Py_None ? NULL : Py_NewRef(j);
            Py_DECREF(result);
            return 0;
        }
        Py_DECREF(result);
    }
    return generic_transfer(&a->c, uop, index, state, known_effect(a, index), fallthrough,
                            jump);
}

/* old.join(new) for the state before uop `index` (a label): a new
 * reference, or NULL with an error (AnalysisError for None). */
static PyObject *
join(const Analysis *a, PyObject *old, PyObject *new, Py_ssize_t index)
{
    PyObject *args[2] = {old, new};
    PyObject *merged = PyObject_Vectorcall(a->join, args, 2, NULL);
    if (merged == Py_None) {
        Py_DECREF(merged);
        PyErr_Format(a->c.error, "stack depths differ at uop %zd", index);
        return NULL;
    }
    if (merged != NULL && check_state(&a->c, merged, "the join of the states", index) < 0) {
        Py_CLEAR(merged);
    }
    return merged;
}

/* After the visit of uop `index`: its fall-through state (if not NULL) into
 * uop index + 1, then its jump state (if not NULL) into its label.  Takes
 * both references.  1 if the walk goes on to uop index + 1 (its state
 * changed), 0 if not, -1 with an error. */
static int
follow_edges(Analysis *a, PyObject *uop, Py_ssize_t index, PyObject *fallthrough,
             PyObject *jump)
{
    Py_ssize_t target = -1;
    int follow = 0;
    if (jump != NULL) {
        int64_t offset;
        if (cpjit_uop_int_field(a->c.offsets, uop, index, F_JUMP_TO, &offset) < 0) {
            goto error;
        }
        if ((target = label_at(a, offset)) < 0) {
            fail_uop(&a->c, uop, ": no label");
            goto error;
        }
    }
    if (fallthrough != NULL && index + 1 < a->n) {
        PyObject **next = &a->states[index + 1];
        if (*next == NULL) {   /* (most often: no need to join) */
            *next = fallthrough;
            fallthrough = NULL;
            follow = 1;
        }
        else if (!a->is_label[index + 1]) {
            /* Its only way in is from this uop: no join. */
            int differs = PyObject_RichCompareBool(fallthrough, *next, Py_NE);
            if (differs < 0) {
                goto error;
            }
            if (differs) {
                Py_SETREF(*next, fallthrough);
                fallthrough = NULL;
                follow = 1;
            }
        }
        else {
            PyObject *merged = join(a, *next, fallthrough, index + 1);
            int differs = merged == NULL ? -1 : PyObject_RichCompareBool(merged, *next, Py_NE);
            if (differs > 0) {
                Py_SETREF(*next, merged);
                follow = 1;
            }
            else {
                Py_XDECREF(merged);
                if (differs < 0) {
                    goto error;
                }
            }
        }
    }
    if (jump != NULL) {
        PyObject **old = &a->states[target], *merged = jump;
        int same = 0;
        jump = NULL;
        if (*old != NULL) {
            PyObject *joined = join(a, *old, merged, target);
            Py_SETREF(merged, joined);
            same = merged == NULL ? -1 : PyObject_RichCompareBool(merged, *old, Py_EQ);
        }
        if (same != 0) {
            Py_XDECREF(merged);
            if (same < 0) {
                goto error;
            }
        }
        else {
            Py_XSETREF(*old, merged);
            if (!a->pending[target]) {
                push_work(a, target);
            }
        }
    }
    Py_XDECREF(fallthrough);
    return follow;
error:
    Py_XDECREF(fallthrough);
    Py_XDECREF(jump);
    return -1;
}

static int
run(Analysis *a)
{
    push_work(a, 0);
    while (a->nwork > 0) {
        Py_ssize_t index = pop_work(a);
        PyObject *state = Py_NewRef(a->states[index]);
        for (;;) {
            PyObject *uop = PyTuple_GET_ITEM(a->uops, index), *fallthrough, *jump;
            if (a->is_label[index]) {
                fallthrough = Py_NewRef(state);
                jump = NULL;
            }
            else {
                if (outcome(a, uop, index, state, &fallthrough, &jump) < 0) {
                    Py_DECREF(state);
                    return -1;
                }
                if (fallthrough != state || jump != NULL) {
                    a->altered[index] = 1;
                }
            }
            Py_DECREF(state);
            int follow = follow_edges(a, uop, index, fallthrough, jump);
            if (follow <= 0) {
                if (follow < 0) {
                    return -1;
                }
                break;
            }
            index++;
            if (a->nwork > 0 && a->work[0] <= index) {
                /* Something before it comes first (after a back edge). */
                if (!a->pending[index]) {
                    push_work(a, index);
                }
                break;
            }
            state = Py_NewRef(a->states[index]);
        }
    }
    return 0;
}

/* ---- what analyze returns ---- */

/* (list(uops), states, altered): the states as a list (None where no path
 * reaches), altered as a bytearray.  The states are handed over. */
static PyObject *
result_of(Analysis *a)
{
    PyObject *uops = PySequence_List(a->uops);
    PyObject *states = uops == NULL ? NULL : PyList_New(a->n);
    PyObject *altered = states == NULL ? NULL
                        : PyByteArray_FromStringAndSize(a->altered, a->n);
    PyObject *result = altered == NULL ? NULL : PyTuple_New(3);
    if (result == NULL) {
        Py_XDECREF(uops);
        Py_XDECREF(states);
        Py_XDECREF(altered);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < a->n; i++) {
        PyObject *state = a->states[i];
        a->states[i] = NULL;
        PyList_SET_ITEM(states, i, state != NULL ? state : Py_NewRef(Py_None));
    }
    PyTuple_SET_ITEM(result, 0, uops);
    PyTuple_SET_ITEM(result, 1, states);
    PyTuple_SET_ITEM(result, 2, altered);
    return result;
}

/* analyze(uops, uop_type, label, transfers, effects, entry, state_type, join,
 *         unknown, error)
 *
 * uops: the trace's list of uop_type instances (exactly that type:
 * cpjit.ir.UOp), label pseudo-uops (named `label`) included; transfers: a
 * dict of transfer functions by uop name; effects: analysis.EFFECTS; entry:
 * the state before the first uop; state_type: analysis.State; join:
 * State.join; unknown: analysis.UNKNOWN; error: analysis.AnalysisError.
 *
 * Returns (list(uops), states, altered), the fields of analysis._Analysis:
 * the state before each uop (None: unreachable), and per uop 1 where some
 * visit did not just fall through with the very state it was given. */
PyObject *
cpjit_analyze(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type, *label, *transfers, *effects, *entry, *state_type, *join_,
             *unknown, *error;
    if (!PyArg_ParseTuple(args, "O!OUO!OOOOOO:analyze", &PyList_Type, &uops, &uop_type, &label,
                          &PyDict_Type, &transfers, &effects, &entry, &state_type, &join_,
                          &unknown, &error)) {
        return NULL;
    }
    if (!PyDict_CheckExact(transfers)) {
        PyErr_SetString(PyExc_TypeError, "analyze: transfers must be a dict");
        return NULL;
    }
    if (!PyCallable_Check(join_)) {
        PyErr_SetString(PyExc_TypeError, "analyze: join must be callable");
        return NULL;
    }
    if (PyList_GET_SIZE(uops) == 0 || PyList_GET_SIZE(uops) > UOPS_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "analyze: a trace has at least one uop, and not "
                        "that many");
        return NULL;
    }
    Analysis a = {.label = label, .transfers = transfers, .join = join_};
    if (context_init(&a.c, uop_type, effects, state_type, unknown, error) < 0
        || check_state(&a.c, entry, "the entry state", 0) < 0
        || (a.uops = PyList_AsTuple(uops)) == NULL) {
        return NULL;
    }
    a.n = PyTuple_GET_SIZE(a.uops);
    PyObject *result = NULL;
    if (analysis_init(&a) == 0 && find_labels(&a) == 0) {
        a.states[0] = Py_NewRef(entry);
        if (run(&a) == 0) {
            result = result_of(&a);
        }
    }
    analysis_free(&a);
    Py_DECREF(a.uops);
    return result;
}

/* generic_transfer(uop, state, uop_type, effects, state_type, unknown, error)
 *
 * What analyze does with a uop that has no transfer function: analysis.
 * generic_transfer's (fallthrough, jump), made here (for the tests, which
 * compare the two). */
PyObject *
cpjit_generic_transfer(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uop, *state, *uop_type, *effects, *state_type, *unknown, *error, *fallthrough,
             *jump;
    Context c;
    if (!PyArg_ParseTuple(args, "OOOOOOO:generic_transfer", &uop, &state, &uop_type, &effects,
                          &state_type, &unknown, &error)
        || context_init(&c, uop_type, effects, state_type, unknown, error) < 0
        || check_state(&c, state, "the state", 0) < 0) {
        return NULL;
    }
    if (!Py_IS_TYPE(uop, c.uop_type)) {
        PyErr_Format(PyExc_TypeError, "generic_transfer: the uop is a %.100s, not a %.100s",
                     Py_TYPE(uop)->tp_name, c.uop_type->tp_name);
        return NULL;
    }
    if (generic_transfer(&c, uop, 0, state, NULL, &fallthrough, &jump) < 0) {
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, fallthrough != NULL ? fallthrough : Py_None,
                                    jump != NULL ? jump : Py_None);
    Py_XDECREF(fallthrough);
    Py_XDECREF(jump);
    return result;
}
