/* layout.c: one function's code laid out, its bytes copied, its holes resolved.
 *
 * The body of cpjit/emit.py's emit().  emit_trace() walks the trace's uops
 * once, reading the UOp objects' fields straight from their slots, and
 * describes each in U_WORDS words (U_* below): its stencil, its jump target,
 * the exit and error stubs it needs (shared by the uops that resume at the
 * same instruction with the same exit steps, or raise at the same
 * instruction), its oparg and operands.  Python is called back only for
 * operands that are not ints and exit step values that are not ints.  Then
 * this file places the shim, the uops, the side-exit stubs and the error
 * stubs, then their cold parts, the stencils' read-only data, the exit
 * records and the GOT:
 *
 *     [shim][uops][exit stubs][error stubs][cold code][data][exit records][GOT]
 *
 * copies the bytes and resolves every hole (resolve.c) into the patch records
 * jitcode.c applies.  Everything that comes from Python is checked: the uops'
 * types and fields, stencil and stub numbers, bases, sizes (the code may not
 * exceed CODE_LIMIT bytes).
 */
#include "cpjit.h"

#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cpjit writes little-endian exit records"
#endif

/* A placement of the shim or a uop, as the walk describes it: its stencil,
 * the placement its jump goes to, its exit, exit-after and error stubs (their
 * numbers among the exit / error stubs), its oparg, its operands (base and
 * value) and the offset of its instruction in code units (code_unit() makes
 * it the address); -1 for what it has not. */
enum {
    U_STENCIL, U_JUMP, U_EXIT, U_EXIT_AFTER, U_ERROR, U_OPARG, U_BASE0, U_VALUE0, U_BASE1,
    U_VALUE1, U_INSTR, U_WORDS,
};
/* An operand base only emit._encode_operand gives: a cache word (emit.BASE_CACHE), an
 * index among the trace's cache words, which start after the exit counters. */
enum { BASE_CACHE = 3, CACHE_WORDS_LIMIT = 1 << 24 };
/* The read-write word of exit stub 0 (csrc/runtime.h: word CPJIT_RW_EXITS
 * counts every exit, the stubs' own counters follow; emit.COUNTERS). */
enum { RW_COUNTERS = CPJIT_RW_EXITS + 1 };
enum { CODE_LIMIT = 1 << 30, PLACEMENT_LIMIT = 1 << 22, STEP_LIMIT = 1 << 16 };

typedef struct {
    /* from the walk */
    int64_t *uops;              /* U_WORDS for each of the `count` main placements */
    Py_ssize_t count, nexits, nerrors, n;
    int64_t *records;           /* the exit records, one after the other */
    Py_ssize_t *record_start;   /* where exit record k starts in `records` (k = nexits: end) */
    int64_t *error_offsets;     /* the instruction of error stub k */
    int64_t units;
    /* the layout */
    int64_t *p;                 /* CPJIT_PLACEMENT_WORDS for each of the n placements */
    int64_t *data_at;           /* per stencil: its data's offset, or -1 */
    int64_t *data_order;        /* the stencils with data, in placement order */
    Py_ssize_t ndata;
    int64_t *got_at;            /* per symbol: its GOT entry's offset, or -1 */
    int64_t *got_order;         /* the symbols in the GOT, in first-use order */
    Py_ssize_t ngot;
    int64_t *record_at;         /* offset of exit record k */
    int64_t data_start, got_offset, size;
} Layout;

static void
layout_free(Layout *l)
{
    PyMem_Free(l->uops);
    PyMem_Free(l->records);
    PyMem_Free(l->record_start);
    PyMem_Free(l->error_offsets);
    PyMem_Free(l->p);
    PyMem_Free(l->data_at);
    PyMem_Free(l->data_order);
    PyMem_Free(l->got_at);
    PyMem_Free(l->got_order);
    PyMem_Free(l->record_at);
}

static int64_t *
new_words(Py_ssize_t count)
{
    int64_t *words = PyMem_Calloc((size_t)(count > 0 ? count : 1), sizeof(int64_t));
    if (words == NULL) {
        PyErr_NoMemory();
    }
    return words;
}

/* An int as an int64.  Only ints: converting anything else could run Python
 * code (__index__) while we hold borrowed references. */
static int
as_int64(PyObject *object, int64_t *out)
{
    if (!PyLong_Check(object)) {
        PyErr_Format(PyExc_TypeError, "cpjit: expected an int, not %.100s",
                     Py_TYPE(object)->tp_name);
        return -1;
    }
    *out = PyLong_AsLongLong(object);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* ---- the walk over the trace's uops ---- */

/* A small hash map from a pair of int64 to a value >= 0 (-1: an empty
 * entry), sized once for everything the walk can put in it: it never grows,
 * so a pointer to a value stays valid while Python code runs. */
typedef struct {
    int64_t a, b, value;
} MapEntry;

typedef struct {
    MapEntry *entries;
    size_t mask;
} Map;

static int
map_init(Map *m, Py_ssize_t most)
{
    size_t capacity = 8;
    while (capacity < 2 * (size_t)most) {
        capacity *= 2;
    }
    m->entries = PyMem_Malloc(capacity * sizeof(MapEntry));
    if (m->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < capacity; i++) {
        m->entries[i].value = -1;
    }
    m->mask = capacity - 1;
    return 0;
}

/* The value of (a, b): found, or a new entry's (-1: the caller sets it).
 * The map has room: at most `most` keys go in (map_init). */
static int64_t *
map_value(Map *m, int64_t a, int64_t b)
{
    uint64_t hash = ((uint64_t)a * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)b * 0xC2B2AE3D27D4EB4Full);
    for (size_t i = (size_t)(hash ^ (hash >> 31)) & m->mask;; i = (i + 1) & m->mask) {
        MapEntry *entry = &m->entries[i];
        if (entry->value < 0) {
            entry->a = a;
            entry->b = b;
            return &entry->value;
        }
        if (entry->a == a && entry->b == b) {
            return &entry->value;
        }
    }
}

/* What the walk keeps track of besides the layout's words. */
typedef struct {
    PyTypeObject *type;             /* the uop type (exactly) */
    Py_ssize_t offsets[F_COUNT];    /* its fields' slots */
    PyObject *label;                /* the name of label pseudo-uops */
    PyObject *units;                /* int: the address of the code units */
    PyObject *encode;               /* encode_operand(operand, units, keepalive) */
    PyObject *keepalive;            /* list: objects the code holds the address of */
    Map labels;                     /* instruction offset -> placement after the label */
    Map step_tokens;                /* address of an exit steps tuple -> its token */
    Map exit_numbers;               /* (resume offset, token) -> exit stub number */
    PyObject *held;                 /* list: the tuples in step_tokens (addresses stay theirs) */
    PyObject *tokens;               /* dict: steps -> token: equal steps, one token */
    PyObject *token_steps;          /* list: the first steps of each token */
    int64_t *exit_resume;           /* per exit stub: its resume offset */
    int64_t *exit_token;            /* per exit stub: the token of its steps */
    int64_t *jump_to;               /* per main placement: the instruction it jumps to, or -1 */
    char *raises;                   /* per main placement: whether it needs an error stub */
} Walk;

static int
walk_init(Walk *w, Py_ssize_t nuops)
{
    Py_ssize_t most = nuops + 1;
    if (map_init(&w->labels, most) < 0 || map_init(&w->step_tokens, 2 * most) < 0
        || map_init(&w->exit_numbers, 2 * most) < 0
        || (w->held = PyList_New(0)) == NULL || (w->tokens = PyDict_New()) == NULL
        || (w->token_steps = PyList_New(0)) == NULL
        || (w->exit_resume = new_words(2 * most)) == NULL
        || (w->exit_token = new_words(2 * most)) == NULL
        || (w->jump_to = new_words(most)) == NULL) {
        return -1;
    }
    if ((w->raises = PyMem_Calloc((size_t)most, 1)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
walk_free(Walk *w)
{
    PyMem_Free(w->labels.entries);
    PyMem_Free(w->step_tokens.entries);
    PyMem_Free(w->exit_numbers.entries);
    Py_XDECREF(w->held);
    Py_XDECREF(w->tokens);
    Py_XDECREF(w->token_steps);
    PyMem_Free(w->exit_resume);
    PyMem_Free(w->exit_token);
    PyMem_Free(w->jump_to);
    PyMem_Free(w->raises);
}

/* Field `f` of uop `index` (borrowed), or NULL with a TypeError if unset. */
static PyObject *
field(const Walk *w, PyObject *uop, Py_ssize_t index, int f)
{
    return cpjit_uop_field(w->offsets, uop, index, f);
}

/* Int field `f` of uop `index` as an int64 (see cpjit_uop_int_field). */
static int
int_field(const Walk *w, PyObject *uop, Py_ssize_t index, int f, int64_t *out)
{
    return cpjit_uop_int_field(w->offsets, uop, index, f, out);
}

/* The token of an exit steps tuple: tuples equal to one seen before share
 * its token.  Uops share their steps tuples, and hashing one per uop would
 * cost more than the rest of the walk: each tuple is hashed once (that may
 * run Python code: the steps hold Obj values). */
static int
steps_token(Walk *w, PyObject *steps, Py_ssize_t index, int64_t *token)
{
    if (!PyTuple_Check(steps)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: exit steps must be a tuple, not %.100s",
                     index, Py_TYPE(steps)->tp_name);
        return -1;
    }
    int64_t *known = map_value(&w->step_tokens, (int64_t)(intptr_t)steps, 0);
    if (*known >= 0) {
        *token = *known;
        return 0;
    }
    if (PyList_Append(w->held, steps) < 0) {
        return -1;
    }
    PyObject *fresh = PyLong_FromSsize_t(PyList_GET_SIZE(w->token_steps));
    if (fresh == NULL) {
        return -1;
    }
    PyObject *found = PyDict_SetDefault(w->tokens, steps, fresh);   /* borrowed */
    int err = found == NULL || (found == fresh && PyList_Append(w->token_steps, steps) < 0)
              || as_int64(found, token) < 0;
    Py_DECREF(fresh);
    if (err) {
        return -1;
    }
    *known = *token;
    return 0;
}

/* The number of the exit stub for (resume, steps): a new one for a new pair. */
static int
exit_stub(Walk *w, Layout *l, int64_t resume, PyObject *steps, Py_ssize_t index,
          int64_t *number)
{
    int64_t token;
    if (steps_token(w, steps, index, &token) < 0) {
        return -1;
    }
    int64_t *known = map_value(&w->exit_numbers, resume, token);
    if (*known < 0) {
        *known = l->nexits;
        w->exit_resume[l->nexits] = resume;
        w->exit_token[l->nexits] = token;
        l->nexits++;
    }
    *number = *known;
    return 0;
}

/* (base, value) of an operand: an int is itself (modulo 2**64: any 64-bit
 * pattern); anything else is what encode_operand(operand, units, keepalive)
 * makes of it. */
static int
encode_operand(Walk *w, PyObject *operand, int64_t *base, int64_t *value)
{
    if (PyLong_CheckExact(operand)) {
        *base = CPJIT_BASE_ABSOLUTE;
        *value = (int64_t)PyLong_AsUnsignedLongLongMask(operand);
        return *value == -1 && PyErr_Occurred() ? -1 : 0;
    }
    PyObject *call[3] = {operand, w->units, w->keepalive};
    PyObject *pair = PyObject_Vectorcall(w->encode, call, 3, NULL);
    if (pair == NULL) {
        return -1;
    }
    int err = 0;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
        || !PyLong_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_SetString(PyExc_TypeError, "cpjit: encode_operand must return (base, value) ints");
        err = -1;
    }
    else if (as_int64(PyTuple_GET_ITEM(pair, 0), base) < 0) {
        err = -1;
    }
    else {
        *value = (int64_t)PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(pair, 1));
        err = *value == -1 && PyErr_Occurred() ? -1 : 0;
    }
    Py_DECREF(pair);
    return err;
}

/* The words of uop `index`, placement l->count (not a label), whose uop has
 * stencil `stencil`: the stencil placed is its variant for the uop's oparg
 * if it has one.  Its operands and exit steps are held while Python code may
 * run (it could change the uop). */
static int
describe_uop(Walk *w, Layout *l, PyObject *uop, Py_ssize_t index, int64_t stencil,
             int64_t *last_resume, PyObject **last_steps, int64_t *last_exit)
{
    int64_t *u = l->uops + l->count * U_WORDS;
    u[U_JUMP] = u[U_EXIT] = u[U_EXIT_AFTER] = u[U_ERROR] = -1;
    if (int_field(w, uop, index, F_OPARG, &u[U_OPARG]) < 0) {
        return -1;
    }
    u[U_STENCIL] = cpjit_oparg_variant(stencil, u[U_OPARG]);
    const cpjit_stencil *placed = cpjit_stencil_at(u[U_STENCIL]);
    if (placed == NULL) {
        return -1;
    }
    int needs = placed->needs;   /* (a variant's: the same exits as its uop's stencil) */
    int64_t exit_to = -1, exit_after = -1;
    PyObject *operand0, *operand1, *steps = NULL, *after_steps = NULL;
    if (int_field(w, uop, index, F_OFFSET, &u[U_INSTR]) < 0
        || int_field(w, uop, index, F_JUMP_TO, &w->jump_to[l->count]) < 0
        || (needs & CPJIT_NEEDS_EXIT
            && (int_field(w, uop, index, F_EXIT_TO, &exit_to) < 0
                || (steps = field(w, uop, index, F_EXIT_STEPS)) == NULL))
        || (needs & CPJIT_NEEDS_EXIT_AFTER
            && (int_field(w, uop, index, F_EXIT_AFTER, &exit_after) < 0
                || (after_steps = field(w, uop, index, F_EXIT_AFTER_STEPS)) == NULL))
        || (operand0 = field(w, uop, index, F_OPERAND0)) == NULL
        || (operand1 = field(w, uop, index, F_OPERAND1)) == NULL) {
        return -1;
    }
    Py_INCREF(operand0);
    Py_INCREF(operand1);
    Py_XINCREF(steps);
    Py_XINCREF(after_steps);
    int err = 0;
    if (needs & CPJIT_NEEDS_EXIT) {
        /* (Often the previous uop's exit stub: the uops of one instruction.) */
        if (exit_to != *last_resume || steps != *last_steps) {
            err = exit_stub(w, l, exit_to, steps, index, last_exit);
            *last_resume = exit_to;
            *last_steps = steps;   /* (w->held keeps it alive) */
        }
        u[U_EXIT] = *last_exit;
    }
    if (!err && needs & CPJIT_NEEDS_EXIT_AFTER) {
        err = exit_stub(w, l, exit_after, after_steps, index, &u[U_EXIT_AFTER]);
    }
    w->raises[l->count] = (needs & CPJIT_NEEDS_ERROR) != 0;
    err = err || encode_operand(w, operand0, &u[U_BASE0], &u[U_VALUE0]) < 0
          || encode_operand(w, operand1, &u[U_BASE1], &u[U_VALUE1]) < 0;
    Py_DECREF(operand0);
    Py_DECREF(operand1);
    Py_XDECREF(steps);
    Py_XDECREF(after_steps);
    return err ? -1 : 0;
}

/* The shim's words: it jumps, exits and raises nowhere. */
static void
describe_shim(Layout *l)
{
    int64_t *u = l->uops;
    for (int k = 0; k < U_WORDS; k++) {
        u[k] = -1;
    }
    u[U_STENCIL] = cpjit_shim_stencil();
    u[U_OPARG] = u[U_BASE0] = u[U_VALUE0] = u[U_BASE1] = u[U_VALUE1] = u[U_INSTR] = 0;
}

/* A ValueError naming the labels with no uop after them. */
static int
fail_labels_at_end(const Walk *w, const Layout *l)
{
    PyObject *offsets = PyList_New(0);
    for (size_t i = 0; offsets != NULL && i <= w->labels.mask; i++) {
        const MapEntry *entry = &w->labels.entries[i];
        if (entry->value == l->count) {
            PyObject *offset = PyLong_FromLongLong(entry->a);
            if (offset == NULL || PyList_Append(offsets, offset) < 0) {
                Py_CLEAR(offsets);
            }
            Py_XDECREF(offset);
        }
    }
    if (offsets != NULL && PyList_Sort(offsets) == 0) {
        PyErr_Format(PyExc_ValueError, "cpjit: labels %R at the end of the trace", offsets);
    }
    Py_XDECREF(offsets);
    return -1;
}

static int
compare_words(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* After the walk: each jump's target placement (-1 if no label is there)
 * and each error stub, one per instruction that can raise, in order of
 * instruction offsets. */
static int
resolve_jumps_and_errors(Walk *w, Layout *l)
{
    if ((l->error_offsets = new_words(l->count)) == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 1; i < l->count; i++) {
        if (w->jump_to[i] >= 0) {
            int64_t *label = map_value(&w->labels, w->jump_to[i], 0);
            l->uops[i * U_WORDS + U_JUMP] = *label;   /* (-1: none, a probe's empty entry) */
        }
        if (w->raises[i]) {
            l->error_offsets[l->nerrors++] = l->uops[i * U_WORDS + U_INSTR];
        }
    }
    qsort(l->error_offsets, (size_t)l->nerrors, sizeof(int64_t), compare_words);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t k = 0; k < l->nerrors; k++) {
        if (distinct == 0 || l->error_offsets[distinct - 1] != l->error_offsets[k]) {
            l->error_offsets[distinct++] = l->error_offsets[k];
        }
    }
    l->nerrors = distinct;
    for (Py_ssize_t i = 1; i < l->count; i++) {
        if (w->raises[i]) {
            int64_t offset = l->uops[i * U_WORDS + U_INSTR];
            int64_t *at = bsearch(&offset, l->error_offsets, (size_t)l->nerrors,
                                  sizeof(int64_t), compare_words);
            l->uops[i * U_WORDS + U_ERROR] = at - l->error_offsets;
        }
    }
    return 0;
}

/* The walk: the words of the shim and of each uop, labels taken out; the
 * exit stubs' keys (resume offset, steps) in *exits. */
static int
walk(Walk *w, Layout *l, PyObject *uops, PyObject **exits)
{
    Py_ssize_t nuops = PyTuple_GET_SIZE(uops);
    if (nuops >= PLACEMENT_LIMIT / 4) {   /* (the stubs come on top: 2 exits a uop at most) */
        PyErr_SetString(PyExc_ValueError, "cpjit: too many uops");
        return -1;
    }
    if (walk_init(w, nuops) < 0 || (l->uops = new_words((nuops + 1) * U_WORDS)) == NULL) {
        return -1;
    }
    describe_shim(l);
    l->count = 1;
    int64_t last_resume = -1, last_exit = -1;
    PyObject *last_steps = NULL;
    for (Py_ssize_t index = 0; index < nuops; index++) {
        PyObject *uop = PyTuple_GET_ITEM(uops, index);
        if (!Py_IS_TYPE(uop, w->type)) {
            PyErr_Format(PyExc_TypeError, "cpjit: uop %zd is a %.100s, not a %.100s", index,
                         Py_TYPE(uop)->tp_name, w->type->tp_name);
            return -1;
        }
        PyObject *name = field(w, uop, index, F_NAME);
        if (name == NULL) {
            return -1;
        }
        if (!PyUnicode_CheckExact(name)) {
            PyErr_Format(PyExc_TypeError, "cpjit: uop %zd: its name must be a str", index);
            return -1;
        }
        if (name == w->label || PyUnicode_Compare(name, w->label) == 0) {
            int64_t offset;
            if (int_field(w, uop, index, F_OPARG, &offset) < 0) {
                return -1;
            }
            *map_value(&w->labels, offset, 0) = l->count;   /* the next uop's placement */
            continue;
        }
        int64_t stencil;
        int found = cpjit_uop_stencil(name, &stencil);
        if (found <= 0) {
            if (found == 0) {
                PyErr_Format(PyExc_ValueError, "cpjit: no stencil for uop %U", name);
            }
            return -1;
        }
        if (describe_uop(w, l, uop, index, stencil, &last_resume, &last_steps,
                         &last_exit) < 0) {
            return -1;
        }
        l->count++;
    }
    for (size_t i = 0; i <= w->labels.mask; i++) {
        if (w->labels.entries[i].value == l->count) {
            return fail_labels_at_end(w, l);
        }
    }
    if (resolve_jumps_and_errors(w, l) < 0 || (*exits = PyTuple_New(l->nexits)) == NULL) {
        return -1;
    }
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        PyObject *resume = PyLong_FromLongLong((long long)w->exit_resume[k]);
        PyObject *key = resume == NULL ? NULL : PyTuple_Pack(
            2, resume, PyList_GET_ITEM(w->token_steps, w->exit_token[k]));
        Py_XDECREF(resume);
        if (key == NULL) {
            return -1;
        }
        PyTuple_SET_ITEM(*exits, k, key);
    }
    return 0;
}

/* The words of one exit step (action, argument, value): the value is an int
 * or what step_value(value, keepalive) makes of it (an object's address; then
 * *called is set). */
static int
read_step(PyObject *step, PyObject *actions, PyObject *step_value, PyObject *keepalive,
          int64_t *out, int *called)
{
    if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) < 3) {
        PyErr_SetString(PyExc_ValueError, "cpjit: an exit step must be a 3-tuple");
        return -1;
    }
    PyObject *action = PyDict_GetItemWithError(actions, PyTuple_GET_ITEM(step, 0));
    if (action == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "cpjit: unknown exit action %R",
                         PyTuple_GET_ITEM(step, 0));
        }
        return -1;
    }
    if (as_int64(action, &out[0]) < 0 || as_int64(PyTuple_GET_ITEM(step, 1), &out[1]) < 0) {
        return -1;
    }
    PyObject *value = PyTuple_GET_ITEM(step, 2);
    if (PyLong_Check(value)) {
        return as_int64(value, &out[2]);
    }
    *called = 1;
    PyObject *call[2] = {value, keepalive};
    PyObject *address = PyObject_Vectorcall(step_value, call, 2, NULL);
    if (address == NULL) {
        return -1;
    }
    int err = as_int64(address, &out[2]);
    Py_DECREF(address);
    return err;
}

/* The exit records (csrc/runtime.h, cpjit_side_exit) of the exit stubs the
 * walk made: counter word, resume offset, steps, 3 words a step.  Exit stubs
 * with the same steps (the same token) copy the words of the first one's,
 * unless it called step_value (to add the objects to keepalive again). */
static int
read_exits(Layout *l, const Walk *w, PyObject *actions, PyObject *step_value,
           PyObject *keepalive)
{
    Py_ssize_t ntokens = PyList_GET_SIZE(w->token_steps);
    l->record_start = PyMem_Calloc((size_t)l->nexits + 1, sizeof(Py_ssize_t));
    int64_t *first = new_words(ntokens);   /* per token: an exit to copy its steps from */
    if (l->record_start == NULL || first == NULL) {
        PyMem_Free(first);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t words = 0;
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        PyObject *steps = PyList_GET_ITEM(w->token_steps, w->exit_token[k]);
        if (PyTuple_GET_SIZE(steps) > STEP_LIMIT) {
            PyErr_Format(PyExc_ValueError, "cpjit: exit %zd: too many steps", k);
            goto error;
        }
        l->record_start[k] = words;
        words += 3 + 3 * PyTuple_GET_SIZE(steps);
        if (words > CODE_LIMIT / 8) {
            PyErr_SetString(PyExc_ValueError, "cpjit: exit records too large");
            goto error;
        }
    }
    l->record_start[l->nexits] = words;
    if ((l->records = new_words(words)) == NULL) {
        goto error;
    }
    for (Py_ssize_t t = 0; t < ntokens; t++) {
        first[t] = -1;
    }
    /* The walk's token_steps and its tuples cannot change while step_value runs. */
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        int64_t token = w->exit_token[k];
        PyObject *steps = PyList_GET_ITEM(w->token_steps, token);
        int64_t *record = l->records + l->record_start[k];
        record[0] = RW_COUNTERS + k;
        record[1] = w->exit_resume[k];
        record[2] = PyTuple_GET_SIZE(steps);
        if (record[1] < 0) {
            PyErr_Format(PyExc_ValueError,
                         "cpjit: a uop can side-exit but has no resume offset (exit %zd)", k);
            goto error;
        }
        if (first[token] >= 0) {
            memcpy(record + 3, l->records + l->record_start[first[token]] + 3,
                   (size_t)record[2] * 3 * sizeof(int64_t));
            continue;
        }
        int called = 0;
        for (Py_ssize_t s = 0; s < record[2]; s++) {
            if (read_step(PyTuple_GET_ITEM(steps, s), actions, step_value, keepalive,
                          record + 3 + 3 * s, &called) < 0) {
                goto error;
            }
        }
        if (!called) {
            first[token] = k;
        }
    }
    PyMem_Free(first);
    return 0;
error:
    PyMem_Free(first);
    return -1;
}

static const cpjit_stencil *
stencil_of(const Layout *l, Py_ssize_t i)
{
    return cpjit_stencil_at(l->p[i * CPJIT_PLACEMENT_WORDS + CPJIT_P_STENCIL]);
}

/* `position` advanced by `size` bytes (first aligned to `align`); -1 past CODE_LIMIT. */
static int
advance(int64_t *position, int64_t size, int64_t align)
{
    *position += (align - *position % align) % align;
    *position += size;
    if (*position > CODE_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "cpjit: the code is too large");
        return -1;
    }
    return 0;
}

/* Where every part goes: hot code (a trailing jump to the next placement is
 * dropped), cold code, each stencil's data once, exit records, GOT. */
static int
place(Layout *l)
{
    int64_t position = 0;
    for (Py_ssize_t i = 0; i < l->n; i++) {
        int64_t *row = l->p + i * CPJIT_PLACEMENT_WORDS;
        const cpjit_stencil *stencil = stencil_of(l, i);
        if (stencil == NULL) {
            return -1;
        }
        /* The shim and every uop but the last run on into the next placement. */
        int falls_through = i == 0 || i < l->count - 1;
        if (!falls_through && stencil->continues) {
            PyErr_Format(PyExc_ValueError,
                         "cpjit: placement %zd (%U) falls off the end of the code", i,
                         stencil->name);
            return -1;
        }
        row[CPJIT_P_HOT] = position;
        row[CPJIT_P_HOT_SIZE] = falls_through ? stencil->body_size
                                              : PyBytes_GET_SIZE(stencil->code);
        if (advance(&position, row[CPJIT_P_HOT_SIZE], 1) < 0) {
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < l->n; i++) {
        int64_t *row = l->p + i * CPJIT_PLACEMENT_WORDS;
        Py_ssize_t size = PyBytes_GET_SIZE(stencil_of(l, i)->cold);
        row[CPJIT_P_COLD] = size ? position : -1;
        row[CPJIT_P_COLD_SIZE] = size;
        if (advance(&position, size, 1) < 0) {
            return -1;
        }
    }
    l->data_start = position;
    for (Py_ssize_t i = 0; i < l->n; i++) {
        int64_t id = l->p[i * CPJIT_PLACEMENT_WORDS + CPJIT_P_STENCIL];
        const cpjit_stencil *stencil = stencil_of(l, i);
        Py_ssize_t size = PyBytes_GET_SIZE(stencil->data);
        if (size && l->data_at[id] < 0) {
            if (advance(&position, 0, stencil->data_align) < 0) {
                return -1;
            }
            l->data_at[id] = position;
            l->data_order[l->ndata++] = id;
            if (advance(&position, size, 1) < 0) {
                return -1;
            }
        }
        for (Py_ssize_t g = 0; g < stencil->ngot; g++) {
            int32_t symbol = stencil->got[g];
            if (l->got_at[symbol] == -1) {
                l->got_at[symbol] = -2;   /* in the GOT; its offset comes below */
                l->got_order[l->ngot++] = symbol;
            }
        }
    }
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        if (advance(&position, 0, 8) < 0) {
            return -1;
        }
        l->record_at[k] = position;
        if (advance(&position, 8 * (l->record_start[k + 1] - l->record_start[k]), 1) < 0) {
            return -1;
        }
    }
    if (advance(&position, 0, 8) < 0) {
        return -1;
    }
    l->got_offset = position;
    for (Py_ssize_t g = 0; g < l->ngot; g++) {
        l->got_at[l->got_order[g]] = position;
        if (advance(&position, 8, 1) < 0) {
            return -1;
        }
    }
    l->size = position;
    return 0;
}

/* The hot offset of placement `first + number` (number < limit), or -1 for
 * number -1. */
static int
target_of(const Layout *l, Py_ssize_t i, int64_t number, Py_ssize_t first, Py_ssize_t limit,
          const char *what, int64_t *target)
{
    if (number == -1) {
        *target = -1;
        return 0;
    }
    if (number < 0 || number >= limit) {
        PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: no %s %lld", i, what,
                     (long long)number);
        return -1;
    }
    *target = l->p[(first + number) * CPJIT_PLACEMENT_WORDS + CPJIT_P_HOT];
    return 0;
}

static int
operand(const Layout *l, Py_ssize_t i, int64_t base, int64_t value, int64_t *out_base,
        int64_t *out_value)
{
    if (base == BASE_CACHE) {
        if (value < 0 || value >= CACHE_WORDS_LIMIT) {
            PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: bad cache word %lld", i,
                         (long long)value);
            return -1;
        }
        *out_base = CPJIT_BASE_RWDATA;
        *out_value = 8 * (RW_COUNTERS + l->nexits + value);
        return 0;
    }
    if (base < CPJIT_BASE_ABSOLUTE || base > CPJIT_BASE_RWDATA) {
        PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: bad operand base %lld", i,
                     (long long)base);
        return -1;
    }
    *out_base = base;
    *out_value = value;
    return 0;
}

/* The address of code unit `index` (wrapping like any 64-bit operand). */
static int64_t
code_unit(const Layout *l, int64_t index)
{
    return (int64_t)((uint64_t)l->units + 2 * (uint64_t)index);
}

/* The values the holes of each placement may need (CPJIT_P_* words). */
static int
describe(Layout *l)
{
    Py_ssize_t first_exit = l->count, first_error = l->count + l->nexits;
    for (Py_ssize_t i = 0; i < l->n; i++) {
        int64_t *row = l->p + i * CPJIT_PLACEMENT_WORDS;
        row[CPJIT_P_CONTINUE] = i + 1 < l->n ? row[CPJIT_PLACEMENT_WORDS + CPJIT_P_HOT] : -1;
        row[CPJIT_P_DATA] = l->data_at[row[CPJIT_P_STENCIL]];
        row[CPJIT_P_JUMP] = row[CPJIT_P_EXIT] = row[CPJIT_P_EXIT_AFTER] = row[CPJIT_P_ERROR] = -1;
        row[CPJIT_P_OPARG] = 0;
        row[CPJIT_P_OPERAND0_BASE] = row[CPJIT_P_OPERAND1_BASE] = CPJIT_BASE_ABSOLUTE;
        row[CPJIT_P_OPERAND0] = row[CPJIT_P_OPERAND1] = 0;
        if (i < l->count) {
            const int64_t *u = l->uops + i * U_WORDS;
            if (target_of(l, i, u[U_JUMP], 0, l->count, "jump target", &row[CPJIT_P_JUMP]) < 0
                || target_of(l, i, u[U_EXIT], first_exit, l->nexits, "exit stub",
                             &row[CPJIT_P_EXIT]) < 0
                || target_of(l, i, u[U_EXIT_AFTER], first_exit, l->nexits, "exit stub",
                             &row[CPJIT_P_EXIT_AFTER]) < 0
                || target_of(l, i, u[U_ERROR], first_error, l->nerrors, "error stub",
                             &row[CPJIT_P_ERROR]) < 0
                || operand(l, i, u[U_BASE0], u[U_VALUE0], &row[CPJIT_P_OPERAND0_BASE],
                           &row[CPJIT_P_OPERAND0]) < 0
                || operand(l, i, u[U_BASE1], u[U_VALUE1], &row[CPJIT_P_OPERAND1_BASE],
                           &row[CPJIT_P_OPERAND1]) < 0) {
                return -1;
            }
            row[CPJIT_P_OPARG] = u[U_OPARG];
            row[CPJIT_P_INSTR] = code_unit(l, u[U_INSTR]);
        }
        else if (i < first_error) {   /* an exit stub: its operand is its exit record */
            int64_t k = i - first_exit;
            row[CPJIT_P_OPERAND0_BASE] = CPJIT_BASE_CODE;
            row[CPJIT_P_OPERAND0] = l->record_at[k];
            row[CPJIT_P_INSTR] = code_unit(l, l->records[l->record_start[k] + 1]);
        }
        else {   /* an error stub: its operand is the instruction it reports */
            row[CPJIT_P_OPERAND0] = row[CPJIT_P_INSTR] =
                code_unit(l, l->error_offsets[i - first_error]);
        }
    }
    return 0;
}

/* The code's bytes, at `out` (zeroed, l->size bytes). */
static void
write_code(const Layout *l, unsigned char *out)
{
    for (Py_ssize_t i = 0; i < l->n; i++) {
        const int64_t *row = l->p + i * CPJIT_PLACEMENT_WORDS;
        const cpjit_stencil *stencil = stencil_of(l, i);
        memcpy(out + row[CPJIT_P_HOT], PyBytes_AS_STRING(stencil->code),
               (size_t)row[CPJIT_P_HOT_SIZE]);
        if (row[CPJIT_P_COLD_SIZE] > 0) {
            memcpy(out + row[CPJIT_P_COLD], PyBytes_AS_STRING(stencil->cold),
                   (size_t)row[CPJIT_P_COLD_SIZE]);
        }
    }
    for (Py_ssize_t d = 0; d < l->ndata; d++) {
        const cpjit_stencil *stencil = cpjit_stencil_at(l->data_order[d]);
        memcpy(out + l->data_at[l->data_order[d]], PyBytes_AS_STRING(stencil->data),
               (size_t)PyBytes_GET_SIZE(stencil->data));
    }
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        memcpy(out + l->record_at[k], l->records + l->record_start[k],
               8 * (size_t)(l->record_start[k + 1] - l->record_start[k]));
    }
}

/* The JitCode of the laid-out code: its memory written, patched, made executable. */
static PyObject *
make_code(const Layout *l, PyObject *patches, Py_ssize_t cache_words, Py_ssize_t nslots,
          PyObject *co, PyObject *keepalive)
{
    if (cache_words < 0 || cache_words > CACHE_WORDS_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "cpjit: bad number of cache words");
        return NULL;
    }
    PyObject *kept = PyList_AsTuple(keepalive);
    if (kept == NULL) {
        return NULL;
    }
    JitCode *code = cpjit_jitcode_alloc(l->size, RW_COUNTERS + l->nexits + cache_words, nslots,
                                        co, kept);
    Py_DECREF(kept);
    if (code == NULL) {
        return NULL;
    }
    write_code(l, code->memory);
    if (cpjit_jitcode_seal(code, (const unsigned char *)PyBytes_AS_STRING(patches),
                           PyBytes_GET_SIZE(patches) / CPJIT_PATCH_RECORD_BYTES) < 0) {
        Py_DECREF(code);
        return NULL;
    }
    return (PyObject *)code;
}

static int
fail_data(const cpjit_stencil *stencil, Py_ssize_t h, const char *what)
{
    PyErr_Format(PyExc_ValueError, "cpjit: data hole %zd of %U: %s", h, stencil->name, what);
    return -1;
}

/* Every patch: the placements' holes, the holes of the stencils' data (a
 * symbol's address or the data's own), then the GOT entries. */
static PyObject *
write_patches(const Layout *l, int64_t slots_offset)
{
    Py_ssize_t most = cpjit_patch_capacity(l->p, l->n);
    if (most < 0) {
        return NULL;
    }
    for (Py_ssize_t d = 0; d < l->ndata; d++) {
        most += cpjit_stencil_at(l->data_order[d])->ndata_holes;
    }
    most += l->ngot;
    PyObject *patches = PyBytes_FromStringAndSize(NULL, most * CPJIT_PATCH_RECORD_BYTES);
    if (patches == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(patches);
    Py_ssize_t written = 0;
    if (cpjit_resolve_holes(l->p, l->n, l->got_at, cpjit_symbol_count(), slots_offset, out,
                            &written) < 0) {
        goto error;
    }
    for (Py_ssize_t d = 0; d < l->ndata; d++) {
        const cpjit_stencil *stencil = cpjit_stencil_at(l->data_order[d]);
        int64_t start = l->data_at[l->data_order[d]];
        for (Py_ssize_t h = 0; h < stencil->ndata_holes; h++) {
            const cpjit_hole *hole = &stencil->data_holes[h];
            int base;
            int64_t target;
            if (hole->value == CPJIT_HOLE_SYMBOL && hole->kind == CPJIT_PATCH_ABS64) {
                base = CPJIT_BASE_ABSOLUTE;
                target = cpjit_symbol_address(hole->symbol);
                if (target == 0) {
                    fail_data(stencil, h, "a symbol the interpreter does not export");
                    goto error;
                }
            }
            else if (hole->value == CPJIT_HOLE_DATA) {
                base = CPJIT_BASE_CODE;
                target = start;
            }
            else {
                fail_data(stencil, h, "not supported");
                goto error;
            }
            cpjit_write_patch(out + written++ * CPJIT_PATCH_RECORD_BYTES, start + hole->offset,
                              hole->kind, base,
                              (int64_t)((uint64_t)target + (uint64_t)hole->addend));
        }
    }
    for (Py_ssize_t g = 0; g < l->ngot; g++) {
        int64_t address = cpjit_symbol_address((int32_t)l->got_order[g]);
        if (address == 0) {
            PyErr_SetString(PyExc_ValueError,
                            "cpjit: the GOT needs a symbol the interpreter does not export");
            goto error;
        }
        cpjit_write_patch(out + written++ * CPJIT_PATCH_RECORD_BYTES,
                          l->got_at[l->got_order[g]], CPJIT_PATCH_ABS64, CPJIT_BASE_ABSOLUTE,
                          address);
    }
    if (_PyBytes_Resize(&patches, written * CPJIT_PATCH_RECORD_BYTES) < 0) {
        return NULL;
    }
    return patches;
error:
    Py_DECREF(patches);
    return NULL;
}

/* Bytes of int64 words: `count` rows of `width` words from `words` (stride `stride`). */
static PyObject *
words_bytes(const int64_t *words, Py_ssize_t count, Py_ssize_t width, Py_ssize_t stride)
{
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, count * width * 8);
    if (bytes != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(PyBytes_AS_STRING(bytes) + i * width * 8, words + i * stride,
                   (size_t)width * 8);
        }
    }
    return bytes;
}

/* Bytes of (key, at[key]) int64 pairs for the `count` keys in `order`. */
static PyObject *
pairs_bytes(const int64_t *order, Py_ssize_t count, const int64_t *at)
{
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, count * 16);
    if (bytes != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            int64_t pair[2] = {order[i], at[order[i]]};
            memcpy(PyBytes_AS_STRING(bytes) + i * 16, pair, 16);
        }
    }
    return bytes;
}

/* A tuple of the int64 `words`. */
static PyObject *
words_tuple(const int64_t *words, Py_ssize_t count)
{
    PyObject *tuple = PyTuple_New(count);
    for (Py_ssize_t i = 0; tuple != NULL && i < count; i++) {
        PyObject *word = PyLong_FromLongLong(words[i]);
        if (word == NULL) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, word);
    }
    return tuple;
}

/* emit_trace(uops, uop_type, label, co, units, cache_words, nslots, slots_offset,
 *            exit_actions, encode_operand, step_value, keepalive)
 *
 * uops: a tuple of uop_type instances (exactly that type: cpjit.ir.UOp),
 * label pseudo-uops (named `label`) included; co: the code object compiled;
 * units: the address of its code units; cache_words, nslots: the read-write
 * cache words and the JitState slots the uops use; exit_actions: exit step
 * action name -> code;
 * encode_operand(operand, units, keepalive): (base, value) of an operand that
 * is not an int; step_value(value, keepalive): the word of an exit step
 * value that is not an int.  Both add to keepalive the objects whose
 * addresses they give.
 *
 * Returns (code, patches, words, exits, errors, geometry, exit_records,
 * data, got, data_start, got_offset): the JitCode and its patch records; the
 * U_WORDS int64 words of the shim and each uop; the exit stubs' keys
 * (resume offset, steps); the error stubs' instruction offsets; then int64
 * words: per placement its hot offset and size and cold offset (-1: none)
 * and size; the offset of each exit record; (stencil, offset) of each
 * stencil's data; (symbol, offset) of each GOT entry. */
PyObject *
cpjit_emit_trace(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type, *label, *co, *units, *actions, *encode, *step_value, *keepalive;
    Py_ssize_t cache_words, nslots;
    long long slots_offset;
    if (!PyArg_ParseTuple(args, "O!OUO!O!nnLO!OOO!:emit_trace", &PyTuple_Type, &uops, &uop_type,
                          &label, &PyCode_Type, &co, &PyLong_Type, &units, &cache_words,
                          &nslots, &slots_offset, &PyDict_Type, &actions, &encode, &step_value,
                          &PyList_Type, &keepalive)) {
        return NULL;
    }
    Layout l = {0};
    Walk w = {.label = label, .units = units, .encode = encode, .keepalive = keepalive};
    PyObject *result = NULL, *exits = NULL, *errors = NULL, *words = NULL, *code = NULL,
             *patches = NULL, *geometry = NULL, *records = NULL, *data = NULL, *got = NULL;
    uint64_t generation = cpjit_registry_generation();
    l.units = PyLong_AsLongLong(units);
    if ((l.units == -1 && PyErr_Occurred()) || cpjit_find_uop_fields(uop_type, w.offsets) < 0) {
        goto done;
    }
    w.type = (PyTypeObject *)uop_type;
    if (walk(&w, &l, uops, &exits) < 0
        || read_exits(&l, &w, actions, step_value, keepalive) < 0) {
        goto done;
    }
    /* No Python code runs from here on (encode_operand and step_value did,
     * above: they must not have registered other stencils meanwhile). */
    if (cpjit_registry_generation() != generation) {
        PyErr_SetString(PyExc_ValueError, "cpjit: the stencils changed while emitting");
        goto done;
    }
    l.n = l.count + l.nexits + l.nerrors;
    Py_ssize_t nstencils = cpjit_stencil_count(), nsymbols = cpjit_symbol_count();
    if ((l.p = new_words(l.n * CPJIT_PLACEMENT_WORDS)) == NULL
        || (l.data_at = new_words(nstencils)) == NULL
        || (l.data_order = new_words(nstencils)) == NULL
        || (l.got_at = new_words(nsymbols)) == NULL
        || (l.got_order = new_words(nsymbols)) == NULL
        || (l.record_at = new_words(l.nexits)) == NULL) {
        goto done;
    }
    for (Py_ssize_t s = 0; s < nstencils; s++) {
        l.data_at[s] = -1;
    }
    for (Py_ssize_t s = 0; s < nsymbols; s++) {
        l.got_at[s] = -1;
    }
    int64_t exit_stub = cpjit_exit_stub_stencil(), error_stub = cpjit_error_stub_stencil();
    for (Py_ssize_t i = 0; i < l.n; i++) {
        l.p[i * CPJIT_PLACEMENT_WORDS + CPJIT_P_STENCIL] =
            i < l.count ? l.uops[i * U_WORDS + U_STENCIL]
            : i < l.count + l.nexits ? exit_stub : error_stub;
    }
    if (place(&l) < 0 || describe(&l) < 0
        || (patches = write_patches(&l, slots_offset)) == NULL
        || (code = make_code(&l, patches, cache_words, nslots, co, keepalive)) == NULL
        || (words = words_bytes(l.uops, l.count, U_WORDS, U_WORDS)) == NULL
        || (errors = words_tuple(l.error_offsets, l.nerrors)) == NULL
        || (geometry = words_bytes(l.p + CPJIT_P_HOT, l.n, 4, CPJIT_PLACEMENT_WORDS)) == NULL
        || (records = words_bytes(l.record_at, l.nexits, 1, 1)) == NULL
        || (data = pairs_bytes(l.data_order, l.ndata, l.data_at)) == NULL
        || (got = pairs_bytes(l.got_order, l.ngot, l.got_at)) == NULL) {
        goto done;
    }
    result = Py_BuildValue("(OOOOOOOOOLL)", code, patches, words, exits, errors, geometry,
                           records, data, got, (long long)l.data_start,
                           (long long)l.got_offset);
done:
    Py_XDECREF(exits);
    Py_XDECREF(errors);
    Py_XDECREF(words);
    Py_XDECREF(code);
    Py_XDECREF(patches);
    Py_XDECREF(geometry);
    Py_XDECREF(records);
    Py_XDECREF(data);
    Py_XDECREF(got);
    walk_free(&w);
    layout_free(&l);
    return result;
}
