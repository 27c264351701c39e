/* layout.c: one function's code laid out, its bytes copied, its holes resolved.
 *
 * The body of cpjit/emit.py's emit(), which walks the trace once and
 * describes each uop in U_WORDS words (U_* below).  This file places the
 * shim, the uops, the side-exit stubs and the error stubs, then their cold
 * parts, the stencils' read-only data, the exit records and the GOT:
 *
 *     [shim][uops][exit stubs][error stubs][cold code][data][exit records][GOT]
 *
 * copies the bytes and resolves every hole (resolve.c) into the patch records
 * jitcode.c applies.  Everything that comes from Python is checked: stencil
 * and stub numbers, bases, sizes (the code may not exceed CODE_LIMIT bytes).
 */
#include "cpjit.h"

#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cpjit writes little-endian exit records"
#endif

/* A placement of the shim or a uop, as emit.py describes it: its stencil,
 * the placement its jump goes to, its exit, exit-after and error stubs (their
 * numbers among the exit / error stubs), its oparg, its operands (base and
 * value) and the offset of its instruction in code units (code_unit() makes
 * it the address); -1 for what it has not. */
enum {
    U_STENCIL, U_JUMP, U_EXIT, U_EXIT_AFTER, U_ERROR, U_OPARG, U_BASE0, U_VALUE0, U_BASE1,
    U_VALUE1, U_INSTR, U_WORDS,
};
/* An operand base only emit.py hands in: a cache word (emit.BASE_CACHE), an
 * index among the trace's cache words, which start after the exit counters. */
enum { BASE_CACHE = 3, CACHE_WORDS_LIMIT = 1 << 24 };
/* The read-write word of exit stub 0 (csrc/runtime.h: word CPJIT_RW_EXITS
 * counts every exit, the stubs' own counters follow; emit.COUNTERS). */
enum { RW_COUNTERS = CPJIT_RW_EXITS + 1 };
enum { CODE_LIMIT = 1 << 30, PLACEMENT_LIMIT = 1 << 22, STEP_LIMIT = 1 << 16 };

typedef struct {
    /* from Python */
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

/* The main placements' words.  Operand values are taken modulo 2**64 (an
 * operand is any 64-bit pattern); every other word must fit an int64. */
static int
read_uops(Layout *l, PyObject *uops)
{
    Py_ssize_t size = PyList_GET_SIZE(uops);
    l->count = size / U_WORDS;
    if (size % U_WORDS != 0 || l->count < 1 || l->count > PLACEMENT_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "cpjit: bad uop records");
        return -1;
    }
    if ((l->uops = new_words(size)) == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = PyList_GET_ITEM(uops, i);
        Py_ssize_t word = i % U_WORDS;
        if ((word == U_VALUE0 || word == U_VALUE1) && PyLong_Check(item)) {
            l->uops[i] = (int64_t)PyLong_AsUnsignedLongLongMask(item);
            if (l->uops[i] == -1 && PyErr_Occurred()) {
                return -1;
            }
        }
        else if (as_int64(item, &l->uops[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The words of one exit step (action, argument, value): the value is an int
 * or what step_value(value) makes of it (an object's address). */
static int
read_step(PyObject *step, PyObject *actions, PyObject *step_value, int64_t *out)
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
    PyObject *address = PyObject_CallOneArg(step_value, value);
    if (address == NULL) {
        return -1;
    }
    int err = as_int64(address, &out[2]);
    Py_DECREF(address);
    return err;
}

/* The exit records (csrc/runtime.h, cpjit_side_exit) of the exit stubs, from
 * their keys (resume offset, steps): counter word, resume, steps, 3 words a step. */
static int
read_exits(Layout *l, PyObject *exits, PyObject *actions, PyObject *step_value)
{
    l->nexits = PyTuple_GET_SIZE(exits);
    if (l->nexits > PLACEMENT_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "cpjit: too many exit stubs");
        return -1;
    }
    l->record_start = PyMem_Calloc((size_t)l->nexits + 1, sizeof(Py_ssize_t));
    if (l->record_start == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t words = 0;
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        PyObject *key = PyTuple_GET_ITEM(exits, k);
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2
            || !PyTuple_Check(PyTuple_GET_ITEM(key, 1))
            || PyTuple_GET_SIZE(PyTuple_GET_ITEM(key, 1)) > STEP_LIMIT) {
            PyErr_Format(PyExc_ValueError, "cpjit: exit %zd: bad key", k);
            return -1;
        }
        l->record_start[k] = words;
        words += 3 + 3 * PyTuple_GET_SIZE(PyTuple_GET_ITEM(key, 1));
        if (words > CODE_LIMIT / 8) {
            PyErr_SetString(PyExc_ValueError, "cpjit: exit records too large");
            return -1;
        }
    }
    l->record_start[l->nexits] = words;
    if ((l->records = new_words(words)) == NULL) {
        return -1;
    }
    /* The exits tuple and its tuples cannot change while step_value runs. */
    for (Py_ssize_t k = 0; k < l->nexits; k++) {
        PyObject *key = PyTuple_GET_ITEM(exits, k);
        PyObject *steps = PyTuple_GET_ITEM(key, 1);
        int64_t *record = l->records + l->record_start[k];
        record[0] = RW_COUNTERS + k;
        if (as_int64(PyTuple_GET_ITEM(key, 0), &record[1]) < 0) {
            return -1;
        }
        if (record[1] < 0) {
            PyErr_Format(PyExc_ValueError,
                         "cpjit: a uop can side-exit but has no resume offset (exit %zd)", k);
            return -1;
        }
        record[2] = PyTuple_GET_SIZE(steps);
        for (Py_ssize_t s = 0; s < record[2]; s++) {
            if (read_step(PyTuple_GET_ITEM(steps, s), actions, step_value,
                          record + 3 + 3 * s) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int
read_errors(Layout *l, PyObject *errors)
{
    l->nerrors = PyTuple_GET_SIZE(errors);
    if (l->nerrors > PLACEMENT_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "cpjit: too many error stubs");
        return -1;
    }
    if ((l->error_offsets = new_words(l->nerrors)) == NULL) {
        return -1;
    }
    for (Py_ssize_t k = 0; k < l->nerrors; k++) {
        if (as_int64(PyTuple_GET_ITEM(errors, k), &l->error_offsets[k]) < 0) {
            return -1;
        }
    }
    return 0;
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

static PyObject *
write_code(const Layout *l)
{
    PyObject *code = PyBytes_FromStringAndSize(NULL, l->size);
    if (code == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(code);
    memset(out, 0, (size_t)l->size);
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
    return code;
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

/* emit_code(uops, exits, errors, units, slots_offset, exit_actions, step_value)
 *
 * uops: U_WORDS ints for the shim and each uop; exits: the exit stubs' keys
 * (resume offset, steps); errors: the instruction offset of each error stub;
 * units: the address of the code units; exit_actions: action name -> code;
 * step_value(value): the word of a step value that is not an int.
 *
 * Returns (code, patches, geometry, exit_records, data, got, data_start,
 * got_offset): the code bytes and patch records; then int64 words: per
 * placement its hot offset and size and cold offset (-1: none) and size; the
 * offset of each exit record; (stencil, offset) of each stencil's data;
 * (symbol, offset) of each GOT entry. */
PyObject *
cpjit_emit_code(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *exits, *errors, *actions, *step_value;
    long long units, slots_offset;
    if (!PyArg_ParseTuple(args, "O!O!O!LLO!O:emit_code", &PyList_Type, &uops, &PyTuple_Type,
                          &exits, &PyTuple_Type, &errors, &units, &slots_offset, &PyDict_Type,
                          &actions, &step_value)) {
        return NULL;
    }
    Layout l = {.units = units};
    PyObject *result = NULL, *code = NULL, *patches = NULL, *geometry = NULL, *records = NULL,
             *data = NULL, *got = NULL;
    if (read_uops(&l, uops) < 0 || read_exits(&l, exits, actions, step_value) < 0
        || read_errors(&l, errors) < 0) {
        goto done;
    }
    /* No Python code runs from here on (step_value did, above): the registry
     * read below stays as it is until the end. */
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
    if (place(&l) < 0 || describe(&l) < 0 || (code = write_code(&l)) == NULL
        || (patches = write_patches(&l, slots_offset)) == NULL
        || (geometry = words_bytes(l.p + CPJIT_P_HOT, l.n, 4, CPJIT_PLACEMENT_WORDS)) == NULL
        || (records = words_bytes(l.record_at, l.nexits, 1, 1)) == NULL
        || (data = pairs_bytes(l.data_order, l.ndata, l.data_at)) == NULL
        || (got = pairs_bytes(l.got_order, l.ngot, l.got_at)) == NULL) {
        goto done;
    }
    result = Py_BuildValue("(OOOOOOLL)", code, patches, geometry, records, data, got,
                           (long long)l.data_start, (long long)l.got_offset);
done:
    Py_XDECREF(code);
    Py_XDECREF(patches);
    Py_XDECREF(geometry);
    Py_XDECREF(records);
    Py_XDECREF(data);
    Py_XDECREF(got);
    layout_free(&l);
    return result;
}
