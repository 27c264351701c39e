/* resolve.c: the registered stencils, and every hole of placed stencils
 * resolved into patch records.
 *
 * cpjit/emit.py registers each stencil (its code, cold code, data and holes)
 * once per stencil table; layout.c places them and describes each placement
 * with the values its holes may need (CPJIT_P_* words); this file walks the
 * holes and writes one patch record per hole, in the format jitcode.c
 * applies (with its own range checks).  emit._patch_all is the same
 * resolution in Python, used to explain patches in dumps and to test this file.
 */
#include "cpjit.h"

#include <string.h>

/* A hole as emit.py packs it (struct "<iBBBxi4xq" there, emit.HOLE): offset,
 * patch kind, value code (CPJIT_HOLE_*), part (0 hot, 1 cold), symbol, addend. */
enum { HOLE_BYTES = 24 };
/* Bounds on what a stencil table may hold (far above any real stencil). */
enum { STENCIL_BYTES_LIMIT = 1 << 24, DATA_ALIGN_LIMIT = 1 << 16, VARIANT_OPARG_LIMIT = 256 };
/* An oparg variant as emit.py packs it: int64 stencil, oparg, variant. */
enum { VARIANT_BYTES = 24 };

static cpjit_stencil *registry;
static Py_ssize_t registry_size;
static int64_t *symbol_addresses;
static Py_ssize_t nsymbols;
static int64_t shim = -1, exit_stub = -1, error_stub = -1;
/* name -> stencil id (an int), for emit_trace's walk over the uops. */
static PyObject *stencil_ids;
/* Counts registrations: emit_trace checks the stencils did not change under it. */
static uint64_t generation;

static void
clear_stencil(cpjit_stencil *stencil)
{
    Py_CLEAR(stencil->name);
    Py_CLEAR(stencil->code);
    Py_CLEAR(stencil->cold);
    Py_CLEAR(stencil->data);
    PyMem_Free(stencil->holes);
    PyMem_Free(stencil->data_holes);
    PyMem_Free(stencil->got);
    PyMem_Free(stencil->variants);
    stencil->holes = stencil->data_holes = NULL;
    stencil->got = NULL;
    stencil->variants = NULL;
    stencil->nvariants = 0;
}

static void
clear_registry(void)
{
    for (Py_ssize_t i = 0; i < registry_size; i++) {
        clear_stencil(&registry[i]);
    }
    PyMem_Free(registry);
    PyMem_Free(symbol_addresses);
    registry = NULL;
    symbol_addresses = NULL;
    registry_size = nsymbols = 0;
    shim = exit_stub = error_stub = -1;
    Py_CLEAR(stencil_ids);
}

const cpjit_stencil *
cpjit_stencil_at(int64_t id)
{
    if (id < 0 || id >= registry_size) {
        PyErr_Format(PyExc_ValueError, "cpjit: unknown stencil %lld", (long long)id);
        return NULL;
    }
    return &registry[id];
}

int64_t cpjit_shim_stencil(void) { return shim; }
uint64_t cpjit_registry_generation(void) { return generation; }
int64_t cpjit_exit_stub_stencil(void) { return exit_stub; }
int64_t cpjit_error_stub_stencil(void) { return error_stub; }
Py_ssize_t cpjit_symbol_count(void) { return nsymbols; }
Py_ssize_t cpjit_stencil_count(void) { return registry_size; }

int64_t
cpjit_symbol_address(int32_t symbol)
{
    return symbol >= 0 && symbol < nsymbols ? symbol_addresses[symbol] : 0;
}

int
cpjit_uop_stencil(PyObject *name, int64_t *id)
{
    if (stencil_ids == NULL) {
        PyErr_SetString(PyExc_ValueError, "cpjit: no stencils registered");
        return -1;
    }
    /* (An exact str key: the lookup runs no Python code.) */
    PyObject *found = PyDict_GetItemWithError(stencil_ids, name);
    if (found == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    *id = PyLong_AsLongLong(found);
    /* A variant is only placed for its oparg (cpjit_oparg_variant), never by
     * its name: its code is only right for that oparg. */
    return registry[*id].is_variant ? 0 : 1;
}

int64_t
cpjit_oparg_variant(int64_t id, int64_t oparg)
{
    if (id < 0 || id >= registry_size) {
        return id;   /* (cpjit_stencil_at refuses it) */
    }
    const cpjit_stencil *stencil = &registry[id];
    if (oparg >= 0 && oparg < stencil->nvariants && stencil->variants[oparg] >= 0) {
        return stencil->variants[oparg];
    }
    return id;
}

/* Decode packed holes (bytes), each checked to lie inside its part of
 * `part_sizes[part]` bytes; 0 or -1. */
static int
decode_holes(PyObject *name, PyObject *bytes, const Py_ssize_t *part_sizes, int parts,
             cpjit_hole **holes, Py_ssize_t *count)
{
    const char *packed = PyBytes_AS_STRING(bytes);
    Py_ssize_t size = PyBytes_GET_SIZE(bytes);
    if (size % HOLE_BYTES != 0) {
        PyErr_Format(PyExc_ValueError, "cpjit: bad holes of stencil %U", name);
        return -1;
    }
    *count = size / HOLE_BYTES;
    *holes = PyMem_Calloc((size_t)(*count ? *count : 1), sizeof(cpjit_hole));
    if (*holes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t h = 0; h < *count; h++) {
        const char *at = packed + h * HOLE_BYTES;
        cpjit_hole *hole = &(*holes)[h];
        memcpy(&hole->offset, at, 4);
        hole->kind = (uint8_t)at[4];
        hole->value = (uint8_t)at[5];
        hole->part = (uint8_t)at[6];
        memcpy(&hole->symbol, at + 8, 4);
        memcpy(&hole->addend, at + 16, 8);
        int width = hole->kind == CPJIT_PATCH_ABS64 ? 8 : 4;
        int named = hole->value == CPJIT_HOLE_GOT || hole->value == CPJIT_HOLE_SYMBOL;
        if (hole->kind >= CPJIT_PATCH_KINDS || hole->value >= CPJIT_HOLE_VALUES
            || hole->part >= parts || hole->offset < 0
            || (int64_t)hole->offset + width > part_sizes[hole->part]
            || (named ? hole->symbol < 0 || hole->symbol >= nsymbols : hole->symbol != -1)) {
            PyErr_Format(PyExc_ValueError, "cpjit: bad hole %zd of stencil %U", h, name);
            return -1;
        }
    }
    return 0;
}

/* The symbols a stencil's holes reach through the GOT, in first-use order,
 * and what its holes need of the layout (continues, needs). */
static int
summarize(cpjit_stencil *stencil)
{
    stencil->got = PyMem_Malloc(sizeof(int32_t) * (size_t)(stencil->nholes + 1));
    if (stencil->got == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    stencil->ngot = 0;
    for (Py_ssize_t h = 0; h < stencil->nholes; h++) {
        const cpjit_hole *hole = &stencil->holes[h];
        if (hole->value == CPJIT_HOLE_CONTINUE) {
            stencil->continues = 1;
        }
        stencil->needs |= hole->value == CPJIT_HOLE_EXIT ? CPJIT_NEEDS_EXIT
                          : hole->value == CPJIT_HOLE_EXIT_AFTER ? CPJIT_NEEDS_EXIT_AFTER
                          : hole->value == CPJIT_HOLE_ERROR ? CPJIT_NEEDS_ERROR : 0;
        if (hole->value != CPJIT_HOLE_GOT) {
            continue;
        }
        Py_ssize_t k = 0;
        while (k < stencil->ngot && stencil->got[k] != hole->symbol) {
            k++;
        }
        if (k == stencil->ngot) {
            stencil->got[stencil->ngot++] = hole->symbol;
        }
    }
    return 0;
}

/* One stencil from its tuple (name, code, body_size, cold, data, data_align,
 * holes, data_holes); 0 or -1. */
static int
register_one(cpjit_stencil *stencil, PyObject *item)
{
    PyObject *name, *code, *cold, *data, *holes, *data_holes;
    Py_ssize_t body_size, data_align;
    if (!PyTuple_Check(item)
        || !PyArg_ParseTuple(item, "UO!nO!O!nO!O!:register_stencils", &name, &PyBytes_Type,
                             &code, &body_size, &PyBytes_Type, &cold, &PyBytes_Type, &data,
                             &data_align, &PyBytes_Type, &holes, &PyBytes_Type, &data_holes)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "cpjit: a stencil must be a tuple");
        }
        return -1;
    }
    stencil->name = Py_NewRef(name);
    stencil->code = Py_NewRef(code);
    stencil->cold = Py_NewRef(cold);
    stencil->data = Py_NewRef(data);
    Py_ssize_t sizes[2] = {PyBytes_GET_SIZE(code), PyBytes_GET_SIZE(cold)};
    Py_ssize_t data_size = PyBytes_GET_SIZE(data);
    if (sizes[0] > STENCIL_BYTES_LIMIT || sizes[1] > STENCIL_BYTES_LIMIT
        || data_size > STENCIL_BYTES_LIMIT || body_size < 0 || body_size > sizes[0]
        || data_align < 1 || data_align > DATA_ALIGN_LIMIT) {
        PyErr_Format(PyExc_ValueError, "cpjit: bad sizes of stencil %U", name);
        return -1;
    }
    stencil->body_size = body_size;
    stencil->data_align = data_align;
    if (decode_holes(name, holes, sizes, 2, &stencil->holes, &stencil->nholes) < 0
        || decode_holes(name, data_holes, &data_size, 1, &stencil->data_holes,
                        &stencil->ndata_holes) < 0) {
        return -1;
    }
    return summarize(stencil);
}

/* The oparg variants, packed int64 triples (stencil, oparg, variant), into
 * each stencil's `variants` (all stencils registered); 0 or -1.  Each id is
 * checked, and that a variant is no stencil's variant twice, has none itself,
 * is not the stencil it stands for and is its only one for that oparg. */
static int
register_variants(PyObject *packed)
{
    const char *at = PyBytes_AS_STRING(packed);
    Py_ssize_t n = PyBytes_GET_SIZE(packed) / VARIANT_BYTES;
    if (PyBytes_GET_SIZE(packed) % VARIANT_BYTES != 0) {
        PyErr_SetString(PyExc_ValueError, "cpjit: bad oparg variants");
        return -1;
    }
    /* Check every triple, and size each stencil's table by its largest oparg. */
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t v[3];
        memcpy(v, at + k * VARIANT_BYTES, sizeof v);
        if (v[0] < 0 || v[0] >= registry_size || v[2] < 0 || v[2] >= registry_size
            || v[0] == v[2] || v[1] < 0 || v[1] >= VARIANT_OPARG_LIMIT
            || registry[v[2]].is_variant) {
            PyErr_Format(PyExc_ValueError, "cpjit: bad oparg variant %zd", k);
            return -1;
        }
        registry[v[2]].is_variant = 1;
        if (registry[v[0]].nvariants <= v[1]) {
            registry[v[0]].nvariants = v[1] + 1;
        }
    }
    for (Py_ssize_t i = 0; i < registry_size; i++) {
        cpjit_stencil *stencil = &registry[i];
        if (stencil->nvariants == 0) {
            continue;
        }
        if (stencil->is_variant) {
            PyErr_Format(PyExc_ValueError, "cpjit: variant %U has variants", stencil->name);
            return -1;
        }
        stencil->variants = PyMem_Malloc(sizeof(int64_t) * (size_t)stencil->nvariants);
        if (stencil->variants == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t oparg = 0; oparg < stencil->nvariants; oparg++) {
            stencil->variants[oparg] = -1;
        }
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t v[3];
        memcpy(v, at + k * VARIANT_BYTES, sizeof v);
        int64_t *slot = &registry[v[0]].variants[v[1]];
        if (*slot >= 0) {
            PyErr_Format(PyExc_ValueError, "cpjit: two variants of %U for oparg %lld",
                         registry[v[0]].name, (long long)v[1]);
            return -1;
        }
        *slot = v[2];
    }
    return 0;
}

PyObject *
cpjit_register_stencils(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *stencils, *variants;
    Py_buffer symbols;
    long long shim_id, exit_id, error_id;
    if (!PyArg_ParseTuple(args, "O!y*O!LLL:register_stencils", &PyList_Type, &stencils,
                          &symbols, &PyBytes_Type, &variants, &shim_id, &exit_id, &error_id)) {
        return NULL;
    }
    clear_registry();
    generation++;
    Py_ssize_t count = PyList_GET_SIZE(stencils);
    registry = PyMem_Calloc((size_t)(count ? count : 1), sizeof(cpjit_stencil));
    symbol_addresses = PyMem_Malloc((size_t)symbols.len + 8);
    if (registry == NULL || symbol_addresses == NULL || symbols.len % 8 != 0) {
        PyBuffer_Release(&symbols);
        clear_registry();
        return symbols.len % 8 ? PyErr_Format(PyExc_ValueError, "cpjit: bad symbol table")
                               : PyErr_NoMemory();
    }
    memcpy(symbol_addresses, symbols.buf, (size_t)symbols.len);
    nsymbols = symbols.len / 8;
    PyBuffer_Release(&symbols);
    registry_size = count;
    if ((stencil_ids = PyDict_New()) == NULL) {
        clear_registry();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        /* The list cannot change under us: register_one runs no Python code,
         * nor does adding an exact str key to stencil_ids. */
        PyObject *id = NULL;
        if (register_one(&registry[i], PyList_GET_ITEM(stencils, i)) < 0
            || !PyUnicode_CheckExact(registry[i].name)
            || (id = PyLong_FromSsize_t(i)) == NULL
            || PyDict_SetItem(stencil_ids, registry[i].name, id) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "cpjit: a stencil's name must be a str");
            }
            Py_XDECREF(id);
            clear_registry();
            return NULL;
        }
        Py_DECREF(id);
    }
    if (PyDict_GET_SIZE(stencil_ids) != count) {
        clear_registry();
        return PyErr_Format(PyExc_ValueError, "cpjit: two stencils have the same name");
    }
    if (register_variants(variants) < 0) {
        clear_registry();
        return NULL;
    }
    if (shim_id < 0 || shim_id >= count || exit_id < 0 || exit_id >= count || error_id < 0
        || error_id >= count) {
        clear_registry();
        return PyErr_Format(PyExc_ValueError, "cpjit: unknown shim or stub stencils");
    }
    shim = shim_id;
    exit_stub = exit_id;
    error_stub = error_id;
    Py_RETURN_NONE;
}

void
cpjit_write_patch(unsigned char *out, int64_t offset, int kind, int base, int64_t value)
{
    uint32_t at = (uint32_t)offset;
    memset(out, 0, CPJIT_PATCH_RECORD_BYTES);
    memcpy(out, &at, 4);
    out[4] = (unsigned char)kind;
    out[5] = (unsigned char)base;
    memcpy(out + 8, &value, 8);
}

static int
fail(Py_ssize_t placement, const char *what)
{
    PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: a hole needs %s", placement, what);
    return -1;
}

/* (base, target) of one hole of placement `p`; 0 or -1 with an error. */
static int
hole_target(const int64_t *p, Py_ssize_t index, int value, int32_t symbol,
            const int64_t *got, Py_ssize_t ngot, int64_t slots_offset,
            int *base, int64_t *target)
{
    *base = CPJIT_BASE_CODE;
    int64_t t;
    switch (value) {
    case CPJIT_HOLE_CONTINUE: t = p[CPJIT_P_CONTINUE]; break;
    case CPJIT_HOLE_JUMP: t = p[CPJIT_P_JUMP]; break;
    case CPJIT_HOLE_EXIT: t = p[CPJIT_P_EXIT]; break;
    case CPJIT_HOLE_EXIT_AFTER: t = p[CPJIT_P_EXIT_AFTER]; break;
    case CPJIT_HOLE_ERROR: t = p[CPJIT_P_ERROR]; break;
    case CPJIT_HOLE_CODE: t = p[CPJIT_P_HOT]; break;
    case CPJIT_HOLE_COLD: t = p[CPJIT_P_COLD]; break;
    case CPJIT_HOLE_DATA: t = p[CPJIT_P_DATA]; break;
    case CPJIT_HOLE_OPARG:
        *base = CPJIT_BASE_ABSOLUTE;
        *target = p[CPJIT_P_OPARG];
        return 0;
    case CPJIT_HOLE_OPERAND0:
        *base = (int)p[CPJIT_P_OPERAND0_BASE];
        *target = p[CPJIT_P_OPERAND0];
        return 0;
    case CPJIT_HOLE_OPERAND1:
        *base = (int)p[CPJIT_P_OPERAND1_BASE];
        *target = p[CPJIT_P_OPERAND1];
        return 0;
    case CPJIT_HOLE_INSTR:
        *base = CPJIT_BASE_ABSOLUTE;
        *target = p[CPJIT_P_INSTR];
        return 0;
    case CPJIT_HOLE_OPARG_SLOT:
    case CPJIT_HOLE_OPERAND0_SLOT:
    case CPJIT_HOLE_OPERAND1_SLOT: {
        int64_t number = value == CPJIT_HOLE_OPARG_SLOT ? p[CPJIT_P_OPARG]
                         : value == CPJIT_HOLE_OPERAND0_SLOT ? p[CPJIT_P_OPERAND0]
                         : p[CPJIT_P_OPERAND1];
        int64_t from = value == CPJIT_HOLE_OPARG_SLOT ? CPJIT_BASE_ABSOLUTE
                       : value == CPJIT_HOLE_OPERAND0_SLOT ? p[CPJIT_P_OPERAND0_BASE]
                       : p[CPJIT_P_OPERAND1_BASE];
        if (from != CPJIT_BASE_ABSOLUTE || number < 0 || number >= (1 << 16)) {
            return fail(index, "a slot number");
        }
        *base = CPJIT_BASE_ABSOLUTE;
        *target = slots_offset + 16 * number;
        return 0;
    }
    case CPJIT_HOLE_GOT:
        if (symbol < 0 || symbol >= ngot || got[symbol] < 0) {
            return fail(index, "a GOT entry");
        }
        t = got[symbol];
        break;
    case CPJIT_HOLE_SYMBOL:
        if (cpjit_symbol_address(symbol) == 0) {
            return fail(index, "a symbol the interpreter exports");
        }
        *base = CPJIT_BASE_ABSOLUTE;
        *target = cpjit_symbol_address(symbol);
        return 0;
    default:
        return fail(index, "a known value code");
    }
    if (t < 0) {
        return fail(index, "a target it was not given");
    }
    *target = t;
    return 0;
}

Py_ssize_t
cpjit_patch_capacity(const int64_t *placements, Py_ssize_t count)
{
    Py_ssize_t most = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const cpjit_stencil *stencil = cpjit_stencil_at(placements[i * CPJIT_PLACEMENT_WORDS]);
        if (stencil == NULL) {
            PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: unknown stencil %lld", i,
                         (long long)placements[i * CPJIT_PLACEMENT_WORDS]);
            return -1;
        }
        most += stencil->nholes;
    }
    return most;
}

int
cpjit_resolve_holes(const int64_t *placements, Py_ssize_t count, const int64_t *got,
                    Py_ssize_t ngot, int64_t slots_offset, unsigned char *out,
                    Py_ssize_t *written)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t *p = placements + i * CPJIT_PLACEMENT_WORDS;
        const cpjit_stencil *stencil = cpjit_stencil_at(p[CPJIT_P_STENCIL]);
        if (stencil == NULL) {
            return -1;
        }
        for (Py_ssize_t h = 0; h < stencil->nholes; h++) {
            const cpjit_hole *hole = &stencil->holes[h];
            int64_t start = hole->part ? p[CPJIT_P_COLD] : p[CPJIT_P_HOT];
            int64_t size = hole->part ? p[CPJIT_P_COLD_SIZE] : p[CPJIT_P_HOT_SIZE];
            if (hole->offset + (hole->kind == CPJIT_PATCH_ABS64 ? 8 : 4) > size) {
                continue;   /* the dropped trailing jump */
            }
            int base;
            int64_t target;
            if (hole_target(p, i, hole->value, hole->symbol, got, ngot, slots_offset, &base,
                            &target) < 0) {
                return -1;
            }
            int64_t patched = (int64_t)((uint64_t)target + (uint64_t)hole->addend);
            cpjit_write_patch(out + *written * CPJIT_PATCH_RECORD_BYTES, start + hole->offset,
                              hole->kind, base, patched);
            (*written)++;
        }
    }
    return 0;
}
