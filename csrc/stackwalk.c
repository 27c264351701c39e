/* stackwalk.c: the real stack depth before each uop of a trace, checked.
 *
 * The body of cpjit/analysis.py's stack_depths, check_stack and
 * instruction_depths: translate takes the interpreter's stack depth at each
 * instruction from it and the verify pass checks the finished trace with
 * it, so it runs twice per compilation; in Python it cost a tenth of a
 * compilation.  stack_walk() reads the UOp objects' fields straight from
 * their slots (uopfields.c).  What a uop does to the stack still comes from
 * Python, the uop specs of the stencil table being its one source:
 * analysis._STEPS gives a uop's steps (pops, pushes, STEP_* flags, the pops
 * of its branch) by (name, oparg), and analysis._OPARG_FREE_STEPS by name
 * alone for the uops whose steps do not depend on their oparg (None for the
 * others).  Both fill themselves on first use (__missing__), so this file
 * asks them as a mapping when the key is not there yet (Python filling them
 * for the trace's names first took longer than the whole walk); each key is
 * asked once a walk.  Which exit step actions push an item comes from
 * Python too (ir.PUSHING_ACTIONS).
 *
 * The walk goes in code order, a run of uops at a time: from the entry, and
 * from each label once a branch reaches it, up to a uop that does not fall
 * through (or a label already walked), so each reachable uop is visited
 * once, with its depth.  (Every check looks at one uop or one edge, so which
 * order finds a broken trace's first error is the only thing the order
 * decides.)  A wrong side exit is reported after the walk, the first by
 * index: the walk's own errors come first.  Those errors are raised as the
 * `error` class handed in (analysis.AnalysisError); what is not a trace at
 * all (wrong types, steps out of range) raises TypeError or ValueError.
 */
#include "cpjit.h"

#include <stdlib.h>
#include <string.h>

/* What a uop's STEP_* flags say (exported as _runtime.STEP_*, for analysis._STEPS). */
enum {
    STEP_FALLS_THROUGH = 1,   /* not a terminator */
    STEP_JUMPS = 2,           /* branches to the label of its jump_to */
    STEP_JUMP_POPS = 4,       /* its branch pops jump_pops of the stack before it (else
                               * the branch has the stack after it) */
    STEP_EXIT = 8,            /* side-exits to redo its instruction (exit_to, exit_steps) */
    STEP_EXIT_AFTER = 16,     /* side-exits after its effect (exit_after, exit_after_steps) */
    STEP_ALL = 31,
};
/* Far more items than a uop pops or pushes, and uops than a trace has:
 * depths and sizes stay far from overflowing. */
enum { STEP_LIMIT = 1 << 20, UOPS_LIMIT = 1 << 26 };
/* The depth of a uop no path has reached yet. */
#define UNREACHED INT64_MIN

typedef struct {
    int32_t pops, pushes, flags, jump_pops;
} Step;

/* ---- what the walk has looked up ---- */

/* The steps of each uop name (MEMO_NAME; flags BY_OPARG: ask by (name,
 * oparg)) and (name, oparg) (MEMO_NAME_OPARG) are looked up once a walk,
 * then kept here, with the label of each instruction offset (MEMO_LABEL:
 * the last label of that offset, as a dict of them built in order has it).
 * Keyed by (object, number, kind); the objects are held, so that their
 * addresses stay theirs while Python code runs.  A trace has a few dozen:
 * the first MEMO_FIRST_SIZE entries are part of the Walk, on the C stack. */
enum { MEMO_EMPTY, MEMO_NAME, MEMO_NAME_OPARG, MEMO_LABEL };
enum { BY_OPARG = -1, MEMO_FIRST_SIZE = 128 };

typedef struct {
    PyObject *object;       /* held, or NULL */
    int64_t number;
    int kind;
    union {
        Step step;          /* MEMO_NAME, MEMO_NAME_OPARG */
        Py_ssize_t index;   /* MEMO_LABEL */
    };
} MemoEntry;

typedef struct {
    MemoEntry *entries;     /* `first`, until it is more than half full */
    size_t mask, used;
    MemoEntry first[MEMO_FIRST_SIZE];
} Memo;

static void
memo_init(Memo *m)
{
    memset(m->first, 0, sizeof(m->first));
    m->entries = m->first;
    m->mask = MEMO_FIRST_SIZE - 1;
    m->used = 0;
}

static void
memo_free(Memo *m)
{
    for (size_t i = 0; i <= m->mask; i++) {
        Py_XDECREF(m->entries[i].object);
    }
    if (m->entries != m->first) {
        PyMem_Free(m->entries);
    }
}

static size_t
memo_slot(const MemoEntry *entries, size_t mask, PyObject *object, int64_t number, int kind)
{
    uint64_t hash = ((uint64_t)(uintptr_t)object >> 4) * 0x9E3779B97F4A7C15ull
                    ^ ((uint64_t)number + (uint64_t)kind) * 0xC2B2AE3D27D4EB4Full;
    for (size_t i = (size_t)(hash ^ (hash >> 29)) & mask;; i = (i + 1) & mask) {
        const MemoEntry *entry = &entries[i];
        if (entry->kind == MEMO_EMPTY
            || (entry->kind == kind && entry->object == object && entry->number == number)) {
            return i;
        }
    }
}

/* The entry of (object, number, kind), or NULL if there is none.  (Valid
 * until the next memo_add.) */
static MemoEntry *
memo_find(const Memo *m, PyObject *object, int64_t number, int kind)
{
    MemoEntry *entry = &m->entries[memo_slot(m->entries, m->mask, object, number, kind)];
    return entry->kind == MEMO_EMPTY ? NULL : entry;
}

/* The entry of (object, number, kind), made (holding `object`) if there is
 * none, for the caller to fill; NULL with a MemoryError.  (Valid until the
 * next memo_add.) */
static MemoEntry *
memo_add(Memo *m, PyObject *object, int64_t number, int kind)
{
    if (2 * (m->used + 1) > m->mask + 1) {   /* at most half full */
        size_t size = 2 * (m->mask + 1);
        MemoEntry *bigger = PyMem_Calloc(size, sizeof(MemoEntry));
        if (bigger == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (size_t i = 0; i <= m->mask; i++) {
            const MemoEntry *entry = &m->entries[i];
            if (entry->kind != MEMO_EMPTY) {
                bigger[memo_slot(bigger, size - 1, entry->object, entry->number,
                                 entry->kind)] = *entry;
            }
        }
        if (m->entries != m->first) {
            PyMem_Free(m->entries);
        }
        m->entries = bigger;
        m->mask = size - 1;
    }
    MemoEntry *entry = &m->entries[memo_slot(m->entries, m->mask, object, number, kind)];
    if (entry->kind == MEMO_EMPTY) {
        entry->object = Py_XNewRef(object);
        entry->number = number;
        entry->kind = kind;
        m->used++;
    }
    return entry;
}

/* ---- the walk's state ---- */

/* Exit step actions told apart by their str's address (cpjit/unbox.py
 * interns them: a handful of objects), the set asked once for each. */
enum { ACTIONS_KEPT = 8 };

typedef struct {
    /* from the caller */
    PyObject *uops;                 /* tuple of instances of exactly `type` */
    PyTypeObject *type;
    Py_ssize_t offsets[F_COUNT];    /* its fields' slots */
    PyObject *oparg_free_steps;     /* dict: name -> steps, or None: ask `steps` */
    PyObject *steps;                /* dict: (name, oparg) -> steps */
    PyObject *entry_depths;         /* dict: resume offset -> the interpreter's depth; or NULL */
    PyObject *pushing;              /* set: the exit step actions that push an item */
    PyObject *error;                /* the exception class of a broken trace */
    int64_t limit;                  /* co_stacksize */
    Py_ssize_t n;
    /* the walk */
    int64_t *depths;                /* per uop: its depth, or UNREACHED (one block with:) */
    Py_ssize_t *pending;            /* where runs start: a min-heap of indices */
    Py_ssize_t npending;
    char *is_label;                 /* per uop */
    char *walked;                   /* per label: a run went through it */
    Memo memo;
    /* side exits: uops come in runs that share their resume offset or steps */
    int64_t last_resume;            /* the last resume offset looked up, */
    int last_found;                 /* whether entry_depths has it (-1: none looked up yet), */
    int64_t last_expected;          /* and the depth there (INT64_MIN: no int64) */
    PyObject *last_steps;           /* the exit steps counted last (held), */
    int64_t last_pushed;            /* and how many items they push */
    PyObject *actions[ACTIONS_KEPT];   /* held */
    char action_pushes[ACTIONS_KEPT];
    int nactions;
    /* the first wrong side exit by index (wrong_index -1: none yet) */
    Py_ssize_t wrong_index;
    int64_t wrong_real, wrong_resume;
} Walk;

/* The per-uop arrays, in one block.  0, or -1 with a MemoryError. */
static int
walk_init(Walk *w)
{
    size_t n = (size_t)w->n;
    char *block = PyMem_Malloc(n * sizeof(int64_t) + (n + 1) * sizeof(Py_ssize_t) + 2 * n);
    if (block == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->depths = (int64_t *)block;
    w->pending = (Py_ssize_t *)(block + n * sizeof(int64_t));
    w->is_label = (char *)(w->pending + n + 1);
    w->walked = w->is_label + n;
    memset(w->is_label, 0, 2 * n);
    for (size_t i = 0; i < n; i++) {
        w->depths[i] = UNREACHED;
    }
    return 0;
}

static void
walk_free(Walk *w)
{
    PyMem_Free(w->depths);
    memo_free(&w->memo);
    Py_XDECREF(w->last_steps);
    for (int i = 0; i < w->nactions; i++) {
        Py_DECREF(w->actions[i]);
    }
}

/* (Each index is queued at most once: when its depth is first set.) */
static void
push_pending(Walk *w, Py_ssize_t index)
{
    cpjit_heap_push(w->pending, &w->npending, index);
}

static Py_ssize_t
pop_pending(Walk *w)
{
    return cpjit_heap_pop(w->pending, &w->npending);
}

/* ---- reading the uops ---- */

static int
is_label_name(PyObject *name, PyObject *label)
{
    return name == label || (PyUnicode_GET_LENGTH(name) == PyUnicode_GET_LENGTH(label)
                             && PyUnicode_Compare(name, label) == 0);
}

/* The name of uop `index` (borrowed): an exact str. */
static PyObject *
name_of(const Walk *w, PyObject *uop, Py_ssize_t index)
{
    PyObject *name = cpjit_uop_field(w->offsets, uop, index, F_NAME);
    if (name != NULL && !PyUnicode_CheckExact(name)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: its name must be a str, not %.100s",
                     index, Py_TYPE(name)->tp_name);
        return NULL;
    }
    return name;
}

/* Before the walk: every uop is of the uop type with a name, and each label
 * is found by the offset it marks (its oparg). */
static int
find_labels(Walk *w, PyObject *label)
{
    for (Py_ssize_t index = 0; index < w->n; index++) {
        PyObject *uop = PyTuple_GET_ITEM(w->uops, index);
        if (!Py_IS_TYPE(uop, w->type)) {
            PyErr_Format(PyExc_TypeError, "cpjit: uop %zd is a %.100s, not a %.100s", index,
                         Py_TYPE(uop)->tp_name, w->type->tp_name);
            return -1;
        }
        PyObject *name = name_of(w, uop, index);
        if (name == NULL) {
            return -1;
        }
        if (is_label_name(name, label)) {
            int64_t offset;
            MemoEntry *entry;
            if (cpjit_uop_int_field(w->offsets, uop, index, F_OPARG, &offset) < 0
                || (entry = memo_add(&w->memo, NULL, offset, MEMO_LABEL)) == NULL) {
                return -1;
            }
            entry->index = index;
            w->is_label[index] = 1;
        }
    }
    return 0;
}

/* mapping[key] as a new reference: straight from the dict when it is there,
 * else through the mapping protocol (a dict subclass's __missing__ works the
 * value out and keeps it; Python code runs). */
static PyObject *
lookup(PyObject *mapping, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(mapping, key);
    if (value != NULL) {
        return Py_NewRef(value);
    }
    return PyErr_Occurred() ? NULL : PyObject_GetItem(mapping, key);
}

/* Item `i` of a steps tuple: an int in [0, high]. */
static int
step_word(PyObject *steps, Py_ssize_t i, int32_t high, PyObject *name, int32_t *out)
{
    PyObject *item = PyTuple_GET_ITEM(steps, i);
    int overflow = 0;
    if (!PyLong_Check(item)) {
        PyErr_Format(PyExc_TypeError, "cpjit: the stack steps of uop %U must be ints, not %.100s",
                     name, Py_TYPE(item)->tp_name);
        return -1;
    }
    long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || value < 0 || value > high) {
        PyErr_Format(PyExc_ValueError, "cpjit: stack step %zd of uop %U out of range", i, name);
        return -1;
    }
    *out = (int32_t)value;
    return 0;
}

/* The steps of a uop: a tuple (pops, pushes, flags, jump_pops) of ints. */
static int
parse_step(PyObject *steps, PyObject *name, Step *step)
{
    if (!PyTuple_Check(steps) || PyTuple_GET_SIZE(steps) != 4) {
        PyErr_Format(PyExc_TypeError, "cpjit: the stack steps of uop %U must be a tuple of 4 "
                     "ints, not %.100s", name, Py_TYPE(steps)->tp_name);
        return -1;
    }
    return step_word(steps, 0, STEP_LIMIT, name, &step->pops) < 0
           || step_word(steps, 1, STEP_LIMIT, name, &step->pushes) < 0
           || step_word(steps, 2, STEP_ALL, name, &step->flags) < 0
           || step_word(steps, 3, STEP_LIMIT, name, &step->jump_pops) < 0 ? -1 : 0;
}

/* The steps of `name` from the oparg-free steps (flags BY_OPARG for None). */
static int
read_name_steps(const Walk *w, PyObject *name, Step *step)
{
    PyObject *steps = lookup(w->oparg_free_steps, name);
    if (steps == NULL) {
        return -1;
    }
    int err = 0;
    if (steps == Py_None) {
        step->flags = BY_OPARG;
    }
    else {
        err = parse_step(steps, name, step);
    }
    Py_DECREF(steps);
    return err;
}

/* The steps of (name, oparg `value`, the int `oparg`). */
static int
read_oparg_steps(const Walk *w, PyObject *name, PyObject *oparg, int64_t value, Step *step)
{
    /* (An exact int in the key, so that hashing it runs no Python code.) */
    oparg = PyLong_CheckExact(oparg) ? Py_NewRef(oparg) : PyLong_FromLongLong(value);
    PyObject *key = oparg == NULL ? NULL : PyTuple_Pack(2, name, oparg);
    Py_XDECREF(oparg);
    if (key == NULL) {
        return -1;
    }
    PyObject *steps = lookup(w->steps, key);
    Py_DECREF(key);
    if (steps == NULL) {
        return -1;
    }
    int err = parse_step(steps, name, step);
    Py_DECREF(steps);
    return err;
}

/* The steps of uop `index` (not a label): by its name, or by (name, oparg). */
static int
step_of(Walk *w, PyObject *uop, Py_ssize_t index, Step *step)
{
    PyObject *name = name_of(w, uop, index);
    if (name == NULL) {
        return -1;
    }
    MemoEntry *known = memo_find(&w->memo, name, 0, MEMO_NAME);
    if (known == NULL) {
        Step found;
        Py_INCREF(name);   /* (Python code may run: the uop could drop it) */
        int err = read_name_steps(w, name, &found) < 0
                  || (known = memo_add(&w->memo, name, 0, MEMO_NAME)) == NULL;
        Py_DECREF(name);   /* (the memo holds it) */
        if (err) {
            return -1;
        }
        known->step = found;
    }
    if (known->step.flags != BY_OPARG) {
        *step = known->step;
        return 0;
    }
    int64_t value;
    if (cpjit_uop_int_field(w->offsets, uop, index, F_OPARG, &value) < 0) {
        return -1;
    }
    known = memo_find(&w->memo, name, value, MEMO_NAME_OPARG);
    if (known == NULL) {
        Step found;
        PyObject *oparg = cpjit_uop_field(w->offsets, uop, index, F_OPARG);
        Py_INCREF(name);
        int err = read_oparg_steps(w, name, oparg, value, &found) < 0
                  || (known = memo_add(&w->memo, name, value, MEMO_NAME_OPARG)) == NULL;
        Py_DECREF(name);
        if (err) {
            return -1;
        }
        known->step = found;
    }
    *step = known->step;
    return 0;
}

/* ---- the errors of a broken trace ---- */

/* Raise w->error with "uop <index> <the uop's describe()>" and the message
 * `format` makes of the other arguments. */
static int
fail_uop(const Walk *w, PyObject *uop, Py_ssize_t index, const char *format, ...)
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
        PyObject *full = PyUnicode_FromFormat("uop %zd %S%U", index, description, message);
        if (full != NULL) {
            PyErr_SetObject(w->error, full);
            Py_DECREF(full);
        }
        Py_DECREF(message);
    }
    Py_DECREF(description);
    return -1;
}

static int
fail_overflow(const Walk *w, PyObject *uop, Py_ssize_t index, int64_t depth, int64_t pops,
              int64_t after)
{
    if (pops > depth) {
        return fail_uop(w, uop, index, " pops %lld of %lld items", (long long)pops,
                        (long long)depth);
    }
    return fail_uop(w, uop, index, " leaves %lld items (the frame has room for %lld)",
                    (long long)after, (long long)w->limit);
}

/* Two paths reach uop `index` with different depths. */
static int
fail_depths(const Walk *w, int64_t depth, int64_t known, Py_ssize_t index)
{
    PyObject *message = PyUnicode_FromFormat("stack depth %lld or %lld at uop %zd",
                                             (long long)depth, (long long)known, index);
    if (message != NULL) {
        PyErr_SetObject(w->error, message);
        Py_DECREF(message);
    }
    return -1;
}

/* The first wrong side exit by index, with what the interpreter expects
 * there: entry_depths[resume], as analysis.check_stack has always said it. */
static int
fail_exit(const Walk *w)
{
    PyObject *uop = PyTuple_GET_ITEM(w->uops, w->wrong_index);
    PyObject *resume = PyLong_FromLongLong(w->wrong_resume), *expected = NULL, *at = NULL;
    if (resume != NULL && (at = PyNumber_Add(resume, resume)) != NULL   /* a byte offset */
        && (expected = PyObject_GetItem(w->entry_depths, resume)) != NULL) {
        fail_uop(w, uop, w->wrong_index,
                 " side-exits to @%S with %lld stack items; the interpreter expects %S", at,
                 (long long)w->wrong_real, expected);
    }
    Py_XDECREF(resume);
    Py_XDECREF(at);
    Py_XDECREF(expected);
    return -1;
}

/* ---- side exits ---- */

/* Whether exit step action `action` (an exact str) pushes an item. */
static int
action_pushes(Walk *w, PyObject *action)
{
    for (int i = 0; i < w->nactions; i++) {
        if (w->actions[i] == action) {
            return w->action_pushes[i];
        }
    }
    int found = PySet_Contains(w->pushing, action);   /* (an exact str: no Python code) */
    if (found >= 0 && w->nactions < ACTIONS_KEPT) {
        w->actions[w->nactions] = Py_NewRef(action);
        w->action_pushes[w->nactions++] = (char)found;
    }
    return found;
}

/* How many items exit `steps` push (a tuple of ExitSteps: their action first). */
static int
exit_pushes(Walk *w, PyObject *steps, Py_ssize_t index, int64_t *pushes)
{
    if (steps == w->last_steps) {
        *pushes = w->last_pushed;
        return 0;
    }
    int64_t count = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(steps); i++) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        PyObject *action = PyTuple_Check(step) && PyTuple_GET_SIZE(step) > 0
                           ? PyTuple_GET_ITEM(step, 0) : NULL;
        if (action == NULL || !PyUnicode_CheckExact(action)) {
            PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: exit step %zd is not an exit step",
                         index, i);
            return -1;
        }
        int found = action_pushes(w, action);
        if (found < 0) {
            return -1;
        }
        count += found;
    }
    Py_INCREF(steps);
    Py_XSETREF(w->last_steps, steps);
    w->last_pushed = *pushes = count;
    return 0;
}

/* What entry_depths says of resume offset `resume` (field `resume_field`
 * of uop `index`, an int): in w->last_found and w->last_expected. */
static int
entry_depth(Walk *w, PyObject *uop, Py_ssize_t index, int resume_field, int64_t resume)
{
    if (w->last_found >= 0 && resume == w->last_resume) {
        return 0;
    }
    /* (An exact int key: the lookup runs no Python code.) */
    PyObject *key = cpjit_uop_field(w->offsets, uop, index, resume_field);
    key = PyLong_CheckExact(key) ? Py_NewRef(key) : PyLong_FromLongLong(resume);
    if (key == NULL) {
        return -1;
    }
    PyObject *expected = PyDict_GetItemWithError(w->entry_depths, key);   /* borrowed */
    Py_DECREF(key);
    if (expected == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (expected != NULL && !PyLong_Check(expected)) {
        PyErr_Format(PyExc_TypeError, "cpjit: the entry depth at %lld must be an int, not %.100s",
                     (long long)resume, Py_TYPE(expected)->tp_name);
        return -1;
    }
    int overflow = 0;
    w->last_resume = resume;
    w->last_found = expected != NULL;
    w->last_expected = expected == NULL ? 0 : PyLong_AsLongLongAndOverflow(expected, &overflow);
    if (overflow) {
        w->last_expected = INT64_MIN;   /* (no depth is) */
    }
    return 0;
}

/* One side exit of uop `index`, with `depth` items on the stack before its
 * exit steps push theirs: the exit to resume field `resume_field` with steps
 * field `steps_field`.  Remembered if it is the first wrong one by index. */
static int
check_exit(Walk *w, PyObject *uop, Py_ssize_t index, int resume_field, int steps_field,
           int64_t depth)
{
    PyObject *steps = cpjit_uop_field(w->offsets, uop, index, steps_field);
    if (steps == NULL) {
        return -1;
    }
    if (!PyTuple_Check(steps)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: %s must be a tuple, not %.100s", index,
                     cpjit_uop_field_names[steps_field], Py_TYPE(steps)->tp_name);
        return -1;
    }
    int64_t real = depth, pushes, resume;
    if (PyTuple_GET_SIZE(steps) > 0) {
        if (exit_pushes(w, steps, index, &pushes) < 0) {
            return -1;
        }
        real += pushes;
    }
    if (cpjit_uop_int_field(w->offsets, uop, index, resume_field, &resume) < 0
        || entry_depth(w, uop, index, resume_field, resume) < 0) {
        return -1;
    }
    if (w->last_found && w->last_expected != real
        && (w->wrong_index < 0 || index < w->wrong_index)) {
        w->wrong_index = index;
        w->wrong_real = real;
        w->wrong_resume = resume;
    }
    return 0;
}

/* ---- the walk ---- */

/* A branch of uop `index` to the label of its jump_to, with `depth` items. */
static int
branch(Walk *w, PyObject *uop, Py_ssize_t index, int64_t depth)
{
    int64_t offset;
    if (cpjit_uop_int_field(w->offsets, uop, index, F_JUMP_TO, &offset) < 0) {
        return -1;
    }
    MemoEntry *label = memo_find(&w->memo, NULL, offset, MEMO_LABEL);
    if (label == NULL) {
        return fail_uop(w, uop, index, ": no label");
    }
    Py_ssize_t target = label->index;
    int64_t known = w->depths[target];
    if (known == UNREACHED) {
        w->depths[target] = depth;
        push_pending(w, target);
    }
    else if (known != depth) {
        return fail_depths(w, depth, known, target);
    }
    return 0;
}

/* The run of uops from `start` (the entry or a label), `depth` items deep:
 * up to a uop that does not fall through, a label walked already or the end. */
static int
walk_run(Walk *w, Py_ssize_t start, int64_t depth)
{
    for (Py_ssize_t index = start; index < w->n; index++) {
        if (w->is_label[index]) {
            if (index != start) {   /* falling through into it */
                int64_t known = w->depths[index];
                if (known == UNREACHED) {
                    w->depths[index] = depth;
                }
                else if (known != depth) {
                    return fail_depths(w, depth, known, index);
                }
                if (w->walked[index]) {
                    return 0;
                }
            }
            w->walked[index] = 1;
            continue;
        }
        w->depths[index] = depth;
        PyObject *uop = PyTuple_GET_ITEM(w->uops, index);
        Step step;
        if (step_of(w, uop, index, &step) < 0) {
            return -1;
        }
        int64_t after = depth - step.pops + step.pushes;
        if (step.pops > depth || after > w->limit) {
            return fail_overflow(w, uop, index, depth, step.pops, after);
        }
        if (w->entry_depths != NULL
            && ((step.flags & STEP_EXIT
                 && check_exit(w, uop, index, F_EXIT_TO, F_EXIT_STEPS, depth) < 0)
                || (step.flags & STEP_EXIT_AFTER
                    && check_exit(w, uop, index, F_EXIT_AFTER, F_EXIT_AFTER_STEPS, after) < 0))) {
            return -1;
        }
        if (step.flags & STEP_JUMPS
            && branch(w, uop, index,
                      step.flags & STEP_JUMP_POPS ? depth - step.jump_pops : after) < 0) {
            return -1;
        }
        if (!(step.flags & STEP_FALLS_THROUGH)) {
            return 0;
        }
        depth = after;
    }
    return 0;
}

static int
walk(Walk *w)
{
    w->depths[0] = 0;
    push_pending(w, 0);
    while (w->npending > 0) {
        Py_ssize_t start = pop_pending(w);
        if (w->walked[start]) {
            continue;   /* (a run before it fell through into it) */
        }
        if (walk_run(w, start, w->depths[start]) < 0) {
            return -1;
        }
    }
    return w->wrong_index >= 0 ? fail_exit(w) : 0;
}

/* ---- what the walk returns ---- */

/* The depths as a list: an int per uop, None where no path reaches it. */
static PyObject *
depths_list(const Walk *w)
{
    PyObject *list = PyList_New(w->n);
    for (Py_ssize_t i = 0; list != NULL && i < w->n; i++) {
        PyObject *depth = w->depths[i] == UNREACHED ? Py_NewRef(Py_None)
                          : PyLong_FromLongLong(w->depths[i]);
        if (depth == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, depth);
    }
    return list;
}

/* An instruction's offset and start, and where it is in the list. */
typedef struct {
    int64_t offset, start;
    Py_ssize_t position;
} Start;

static int
compare_starts(const void *a, const void *b)
{
    const Start *x = a, *y = b;
    if (x->offset != y->offset) {
        return x->offset < y->offset ? -1 : 1;
    }
    return (x->position > y->position) - (x->position < y->position);
}

/* Each instruction's offset and start, from `instructions` (a list of
 * Instructions: tuples of offset, start, ...), sorted by offset (they
 * mostly are already), then position.  0, or -1 with an error. */
static int
read_starts(PyObject *instructions, Start *starts)
{
    int sorted = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(instructions); i++) {
        PyObject *ins = PyList_GET_ITEM(instructions, i);
        if (!PyTuple_Check(ins) || PyTuple_GET_SIZE(ins) < 2
            || !PyLong_Check(PyTuple_GET_ITEM(ins, 0)) || !PyLong_Check(PyTuple_GET_ITEM(ins, 1))) {
            PyErr_Format(PyExc_TypeError, "cpjit: instruction %zd is not an Instruction", i);
            return -1;
        }
        Start *s = &starts[i];
        s->position = i;
        if (((s->offset = PyLong_AsLongLong(PyTuple_GET_ITEM(ins, 0))) == -1
             || (s->start = PyLong_AsLongLong(PyTuple_GET_ITEM(ins, 1))) == -1)
            && PyErr_Occurred()) {
            return -1;
        }
        sorted = sorted && (i == 0 || starts[i - 1].offset < s->offset);
    }
    if (!sorted) {
        qsort(starts, (size_t)PyList_GET_SIZE(instructions), sizeof(Start), compare_starts);
    }
    return 0;
}

/* The start of the instruction at `offset` (the last in the list with that
 * offset, as a dict of them built in order has it), or NULL.  Uops come in
 * the order of their instructions: the one after the last found (`*last`)
 * is the usual answer, else a binary search finds it. */
static const Start *
start_at(const Start *starts, Py_ssize_t count, int64_t offset, Py_ssize_t *last)
{
    Py_ssize_t next = *last + 1;
    if (next < count && starts[next].offset == offset
        && (next + 1 == count || starts[next + 1].offset != offset)) {
        *last = next;
        return &starts[next];
    }
    Py_ssize_t low = 0, high = count;   /* the first one past `offset` is in [low, high] */
    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (starts[middle].offset <= offset) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    if (low > 0 && starts[low - 1].offset == offset) {
        *last = low - 1;
        return &starts[low - 1];
    }
    return NULL;
}

/* The depth at the start of each instruction, by its start (see
 * analysis.instruction_depths): the depth before its first reachable uop.
 * (Only the first uop of each run of uops of one instruction is looked up.) */
static PyObject *
instruction_depths(const Walk *w, PyObject *instructions)
{
    Py_ssize_t count = PyList_GET_SIZE(instructions);
    Start *starts = PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof(Start));
    /* (Sized for them all at once: growing it cost more than the walk.) */
    PyObject *result = starts == NULL ? PyErr_NoMemory() : _PyDict_NewPresized(count);
    if (result == NULL || read_starts(instructions, starts) < 0) {
        goto error;
    }
    int64_t previous = 0;
    int has_previous = 0;
    Py_ssize_t last = -1;
    for (Py_ssize_t index = 0; index < w->n; index++) {
        if (w->depths[index] == UNREACHED || w->is_label[index]) {
            continue;
        }
        int64_t offset;
        PyObject *uop = PyTuple_GET_ITEM(w->uops, index);
        if (cpjit_uop_int_field(w->offsets, uop, index, F_OFFSET, &offset) < 0) {
            goto error;
        }
        const Start *start = has_previous && offset == previous
                             ? NULL : start_at(starts, count, offset, &last);
        previous = offset;
        has_previous = 1;
        if (start == NULL) {
            continue;
        }
        PyObject *key = PyLong_FromLongLong(start->start);
        PyObject *depth = key == NULL ? NULL : PyLong_FromLongLong(w->depths[index]);
        /* (Exact int keys: no Python code runs.) */
        int err = depth == NULL || PyDict_SetDefault(result, key, depth) == NULL;
        Py_XDECREF(key);
        Py_XDECREF(depth);
        if (err) {
            goto error;
        }
    }
    PyMem_Free(starts);
    return result;
error:
    PyMem_Free(starts);
    Py_XDECREF(result);
    return NULL;
}

/* stack_walk(uops, uop_type, label, oparg_free_steps, steps, stacksize,
 *            entry_depths, pushing_actions, error, instructions=None)
 *
 * uops: a tuple of uop_type instances (exactly that type: cpjit.ir.UOp),
 * label pseudo-uops (named `label`) included; oparg_free_steps and steps:
 * dicts (see the top of this file); stacksize: the frame's co_stacksize;
 * entry_depths: None, or the interpreter's depth by resume offset, to check
 * the side exits against; pushing_actions: the set of exit step actions
 * that push an item; error: the exception class to raise for a broken trace.
 *
 * Returns the depth before each uop (None: unreachable), or with
 * `instructions` (the trace's list of Instructions) the depth at the start
 * of each instruction by its start (analysis.instruction_depths). */
PyObject *
cpjit_stack_walk(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type, *label, *oparg_free_steps, *steps, *entry_depths, *pushing,
             *error, *instructions = Py_None;
    Py_ssize_t stacksize;
    if (!PyArg_ParseTuple(args, "O!OUO!O!nOOO|O:stack_walk", &PyTuple_Type, &uops, &uop_type,
                          &label, &PyDict_Type, &oparg_free_steps, &PyDict_Type, &steps,
                          &stacksize, &entry_depths, &pushing, &error, &instructions)) {
        return NULL;
    }
    if (entry_depths != Py_None && !PyDict_Check(entry_depths)) {
        PyErr_SetString(PyExc_TypeError, "stack_walk: entry_depths must be a dict or None");
        return NULL;
    }
    if (!PyAnySet_Check(pushing)) {
        PyErr_SetString(PyExc_TypeError, "stack_walk: pushing_actions must be a set");
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "stack_walk: error must be an exception class");
        return NULL;
    }
    if (instructions != Py_None && !PyList_Check(instructions)) {
        PyErr_SetString(PyExc_TypeError, "stack_walk: instructions must be a list or None");
        return NULL;
    }
    if (stacksize < 0 || stacksize > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "stack_walk: bad stacksize");
        return NULL;
    }
    if (PyTuple_GET_SIZE(uops) > UOPS_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "stack_walk: too many uops");
        return NULL;
    }
    Walk w = {
        .uops = uops, .oparg_free_steps = oparg_free_steps, .steps = steps,
        .entry_depths = entry_depths == Py_None ? NULL : entry_depths, .pushing = pushing,
        .error = error, .limit = stacksize, .n = PyTuple_GET_SIZE(uops), .last_found = -1,
        .wrong_index = -1,
    };
    if (w.n == 0) {
        return instructions == Py_None ? PyList_New(0) : PyDict_New();
    }
    if (cpjit_find_uop_fields(uop_type, w.offsets) < 0) {
        return NULL;
    }
    w.type = (PyTypeObject *)uop_type;
    PyObject *result = NULL;
    memo_init(&w.memo);
    if (walk_init(&w) == 0 && find_labels(&w, label) == 0 && walk(&w) == 0) {
        /* (No Python code runs from here on.) */
        result = instructions == Py_None ? depths_list(&w) : instruction_depths(&w, instructions);
    }
    walk_free(&w);
    return result;
}

/* The STEP_* flags, as module constants.  0, or -1 with an error. */
int
cpjit_add_step_flags(PyObject *module)
{
    return PyModule_AddIntConstant(module, "STEP_FALLS_THROUGH", STEP_FALLS_THROUGH) < 0
           || PyModule_AddIntConstant(module, "STEP_JUMPS", STEP_JUMPS) < 0
           || PyModule_AddIntConstant(module, "STEP_JUMP_POPS", STEP_JUMP_POPS) < 0
           || PyModule_AddIntConstant(module, "STEP_EXIT", STEP_EXIT) < 0
           || PyModule_AddIntConstant(module, "STEP_EXIT_AFTER", STEP_EXIT_AFTER) < 0 ? -1 : 0;
}
