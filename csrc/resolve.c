/* resolve.c: every hole of laid-out stencils, resolved into patch records.
 *
 * This is the inner loop of cpjit/emit.py (_patch_all there is the same
 * logic in Python, used to explain patches in dumps and to test this file):
 * emit.py registers each stencil's holes once, lays out a function and
 * describes each placed stencil with the values its holes may need; this
 * file walks the holes and writes one patch record per hole, in the format
 * jitcode.c applies (with its own range checks).  It writes no code itself.
 */
#include "cpjit.h"

#include <string.h>

/* A registered hole (struct "<iBBBxiiq" in emit.py): offset, patch kind,
 * value code (CPJIT_HOLE_*), part (0 hot, 1 cold), symbol index, addend. */
enum { HOLE_SIZE = 24 };
/* A placement (struct "<17q" in emit.py), by word; -1 for a target it has not. */
enum {
    P_STENCIL, P_HOT, P_HOT_SIZE, P_COLD, P_COLD_SIZE, P_CONTINUE, P_JUMP, P_EXIT,
    P_EXIT_AFTER, P_ERROR, P_OPARG, P_OPERAND0_BASE, P_OPERAND0, P_OPERAND1_BASE, P_OPERAND1,
    P_INSTR, P_DATA, PLACEMENT_WORDS,
};
enum { PATCH_RECORD_BYTES = 16 };
enum { BASE_ABSOLUTE = 0, BASE_CODE = 1 };

typedef struct {
    Py_ssize_t nholes;
    unsigned char *holes;
} Registered;

static Registered *registry;
static Py_ssize_t registry_size;
static int64_t *symbol_addresses;
static Py_ssize_t nsymbols;

static void
clear_registry(void)
{
    for (Py_ssize_t i = 0; i < registry_size; i++) {
        PyMem_Free(registry[i].holes);
    }
    PyMem_Free(registry);
    PyMem_Free(symbol_addresses);
    registry = NULL;
    symbol_addresses = NULL;
    registry_size = nsymbols = 0;
}

PyObject *
cpjit_register_stencils(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *holes_list;
    Py_buffer symbols;
    if (!PyArg_ParseTuple(args, "O!y*:register_stencils", &PyList_Type, &holes_list, &symbols)) {
        return NULL;
    }
    clear_registry();
    Py_ssize_t count = PyList_GET_SIZE(holes_list);
    registry = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Registered));
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
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *holes = PyList_GET_ITEM(holes_list, i);
        if (!PyBytes_Check(holes) || PyBytes_GET_SIZE(holes) % HOLE_SIZE != 0) {
            clear_registry();
            return PyErr_Format(PyExc_ValueError, "cpjit: bad holes of stencil %zd", i);
        }
        Py_ssize_t size = PyBytes_GET_SIZE(holes);
        registry[i].holes = PyMem_Malloc((size_t)size + 1);
        if (registry[i].holes == NULL) {
            clear_registry();
            return PyErr_NoMemory();
        }
        memcpy(registry[i].holes, PyBytes_AS_STRING(holes), (size_t)size);
        registry[i].nholes = size / HOLE_SIZE;
    }
    Py_RETURN_NONE;
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
    *base = BASE_CODE;
    int64_t t;
    switch (value) {
    case CPJIT_HOLE_CONTINUE: t = p[P_CONTINUE]; break;
    case CPJIT_HOLE_JUMP: t = p[P_JUMP]; break;
    case CPJIT_HOLE_EXIT: t = p[P_EXIT]; break;
    case CPJIT_HOLE_EXIT_AFTER: t = p[P_EXIT_AFTER]; break;
    case CPJIT_HOLE_ERROR: t = p[P_ERROR]; break;
    case CPJIT_HOLE_CODE: t = p[P_HOT]; break;
    case CPJIT_HOLE_COLD: t = p[P_COLD]; break;
    case CPJIT_HOLE_DATA: t = p[P_DATA]; break;
    case CPJIT_HOLE_OPARG:
        *base = BASE_ABSOLUTE;
        *target = p[P_OPARG];
        return 0;
    case CPJIT_HOLE_OPERAND0:
        *base = (int)p[P_OPERAND0_BASE];
        *target = p[P_OPERAND0];
        return 0;
    case CPJIT_HOLE_OPERAND1:
        *base = (int)p[P_OPERAND1_BASE];
        *target = p[P_OPERAND1];
        return 0;
    case CPJIT_HOLE_INSTR:
        *base = BASE_ABSOLUTE;
        *target = p[P_INSTR];
        return 0;
    case CPJIT_HOLE_OPARG_SLOT:
    case CPJIT_HOLE_OPERAND0_SLOT:
    case CPJIT_HOLE_OPERAND1_SLOT: {
        int64_t number = value == CPJIT_HOLE_OPARG_SLOT ? p[P_OPARG]
                         : value == CPJIT_HOLE_OPERAND0_SLOT ? p[P_OPERAND0] : p[P_OPERAND1];
        int64_t from = value == CPJIT_HOLE_OPARG_SLOT ? BASE_ABSOLUTE
                       : value == CPJIT_HOLE_OPERAND0_SLOT ? p[P_OPERAND0_BASE]
                       : p[P_OPERAND1_BASE];
        if (from != BASE_ABSOLUTE || number < 0 || number >= (1 << 16)) {
            return fail(index, "a slot number");
        }
        *base = BASE_ABSOLUTE;
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
        if (symbol < 0 || symbol >= nsymbols || symbol_addresses[symbol] == 0) {
            return fail(index, "a symbol the interpreter exports");
        }
        *base = BASE_ABSOLUTE;
        *target = symbol_addresses[symbol];
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

PyObject *
cpjit_resolve_patches(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer placements, got_buffer;
    long long slots_offset;
    if (!PyArg_ParseTuple(args, "y*y*L:resolve_patches", &placements, &got_buffer,
                          &slots_offset)) {
        return NULL;
    }
    PyObject *result = NULL;
    const int64_t *words = placements.buf;
    const int64_t *got = got_buffer.buf;
    Py_ssize_t ngot = got_buffer.len / 8;
    Py_ssize_t count = placements.len / (PLACEMENT_WORDS * 8);
    if (placements.len % (PLACEMENT_WORDS * 8) != 0 || got_buffer.len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "cpjit: bad placement records");
        goto done;
    }
    Py_ssize_t most = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t stencil = words[i * PLACEMENT_WORDS + P_STENCIL];
        if (stencil < 0 || stencil >= registry_size) {
            PyErr_Format(PyExc_ValueError, "cpjit: placement %zd: unknown stencil %lld", i,
                         (long long)stencil);
            goto done;
        }
        most += registry[stencil].nholes;
    }
    result = PyBytes_FromStringAndSize(NULL, most * PATCH_RECORD_BYTES);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t written = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t *p = words + i * PLACEMENT_WORDS;
        const Registered *stencil = &registry[p[P_STENCIL]];
        for (Py_ssize_t h = 0; h < stencil->nholes; h++) {
            const unsigned char *hole = stencil->holes + h * HOLE_SIZE;
            int32_t offset, symbol;
            int64_t addend;
            memcpy(&offset, hole, 4);
            unsigned kind = hole[4], value = hole[5], part = hole[6];
            memcpy(&symbol, hole + 8, 4);
            memcpy(&addend, hole + 16, 8);
            int64_t start = part ? p[P_COLD] : p[P_HOT];
            int64_t size = part ? p[P_COLD_SIZE] : p[P_HOT_SIZE];
            if (offset + (kind == 0 ? 8 : 4) > size) {
                continue;   /* the dropped trailing jump */
            }
            int base;
            int64_t target;
            if (hole_target(p, i, (int)value, symbol, got, ngot, slots_offset, &base,
                            &target) < 0) {
                Py_CLEAR(result);
                goto done;
            }
            uint32_t at = (uint32_t)(start + offset);
            int64_t patched = (int64_t)((uint64_t)target + (uint64_t)addend);
            unsigned char *record = out + written * PATCH_RECORD_BYTES;
            memset(record, 0, PATCH_RECORD_BYTES);
            memcpy(record, &at, 4);
            record[4] = (unsigned char)kind;
            record[5] = (unsigned char)base;
            memcpy(record + 8, &patched, 8);
            written++;
        }
    }
    if (_PyBytes_Resize(&result, written * PATCH_RECORD_BYTES) < 0) {
        result = NULL;
    }
done:
    PyBuffer_Release(&placements);
    PyBuffer_Release(&got_buffer);
    return result;
}
