/* jitcode.c: executable memory for one compiled function.
 *
 * The emitter (csrc/layout.c) gets memory mapped read+write from
 * cpjit_jitcode_alloc and writes the laid-out machine code there (JitCode()
 * copies the code it is given); cpjit_jitcode_seal then writes every patch
 * after checking that it lands inside the code and fits its width, and only
 * then makes the memory read+exec.  Memory is never writable and executable
 * at once.
 *
 * Freed mappings are kept in a small pool, read+write (no longer executable),
 * for the next compiled function that fits: compiling a function again (with
 * its profile, after side exits) then costs no mmap, no page faults on fresh
 * pages and no munmap.  The pool only ever hands out memory that is not
 * executable, and the unused tail of a reused mapping is zeroed, as a fresh
 * one is.  Everything here runs with the GIL held.
 */
#include "cpjit.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One patch, as packed by cpjit/emit.py (struct format "<IBBxxq"). */
enum { PATCH_RECORD_SIZE = 16 };
enum { PATCH_ABS64 = 0, PATCH_REL32 = 1, PATCH_ABS32S = 2, PATCH_ABS32 = 3 };
enum { BASE_ABSOLUTE = 0, BASE_CODE = 1, BASE_RWDATA = 2 };

static int
patch_abs64(unsigned char *location, uint64_t value)
{
    memcpy(location, &value, sizeof(value));
    return 0;
}

static int
patch_rel32(unsigned char *location, uint64_t target, size_t offset)
{
    int64_t delta = (int64_t)(target - (uint64_t)(uintptr_t)location);
    if (delta < INT32_MIN || delta > INT32_MAX) {
        PyErr_Format(PyExc_OverflowError,
                     "cpjit: 32-bit relative patch at offset %zu out of range (%lld)",
                     offset, (long long)delta);
        return -1;
    }
    int32_t value = (int32_t)delta;
    memcpy(location, &value, sizeof(value));
    return 0;
}

/* A 32-bit absolute value (a displacement or immediate): it must fit. */
static int
patch_abs32(unsigned char *location, uint64_t target, int is_signed, size_t offset)
{
    int fits = is_signed ? (int64_t)target >= INT32_MIN && (int64_t)target <= INT32_MAX
                         : target <= UINT32_MAX;
    if (!fits) {
        PyErr_Format(PyExc_OverflowError,
                     "cpjit: 32-bit absolute patch at offset %zu out of range (%llu)",
                     offset, (unsigned long long)target);
        return -1;
    }
    uint32_t value = (uint32_t)target;
    memcpy(location, &value, sizeof(value));
    return 0;
}

/* The pool of freed mappings (read+write): at most POOL_SLOTS of them, at most
 * POOL_BYTES in all; a mapping is reused for code that needs at least half of it. */
enum { POOL_SLOTS = 8 };
#define POOL_BYTES ((size_t)4 << 20)
static struct {
    unsigned char *memory;
    size_t size;
} pool[POOL_SLOTS];
static int pool_count;   /* (their bytes: cpjit_stats.pooled_bytes) */

/* Read+write memory for `needed` bytes (page-rounded: `needed`), from the pool
 * or a fresh mapping; its size in *mapped.  NULL with an OSError. */
static unsigned char *
code_memory(size_t needed, size_t *mapped)
{
    int best = -1;
    for (int k = 0; k < pool_count; k++) {
        if (pool[k].size >= needed && pool[k].size / 2 <= needed
            && (best < 0 || pool[k].size < pool[best].size)) {
            best = k;
        }
    }
    if (best >= 0) {
        unsigned char *memory = pool[best].memory;
        *mapped = pool[best].size;
        cpjit_stats.pooled_bytes -= pool[best].size;
        pool[best] = pool[--pool_count];
        cpjit_stats.code_bytes += *mapped;
        return memory;
    }
    void *memory = mmap(NULL, needed, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    *mapped = needed;
    cpjit_stats.code_bytes += needed;
    return memory;
}

/* Give back memory from code_memory(), in any state: it goes back to the pool
 * only once it is read+write again (not executable), else it is unmapped. */
static void
release_code_memory(unsigned char *memory, size_t size)
{
    cpjit_stats.code_bytes -= size;
    if (pool_count < POOL_SLOTS && cpjit_stats.pooled_bytes + size <= POOL_BYTES
        && mprotect(memory, size, PROT_READ | PROT_WRITE) == 0) {
        pool[pool_count].memory = memory;
        pool[pool_count].size = size;
        pool_count++;
        cpjit_stats.pooled_bytes += size;
        return;
    }
    munmap(memory, size);
}

static int
apply_patches(JitCode *self, const unsigned char *patches, Py_ssize_t count)
{
    uint64_t bases[3] = {
        0,
        (uint64_t)(uintptr_t)self->memory,
        (uint64_t)(uintptr_t)self->rwdata,
    };
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *record = patches + i * PATCH_RECORD_SIZE;
        uint32_t offset;
        int64_t value;
        memcpy(&offset, record, 4);
        unsigned kind = record[4], base = record[5];
        memcpy(&value, record + 8, 8);
        size_t width = kind == PATCH_ABS64 ? 8 : 4;
        if (kind > PATCH_ABS32 || base > BASE_RWDATA) {
            PyErr_Format(PyExc_ValueError, "cpjit: bad patch record %zd", i);
            return -1;
        }
        if ((size_t)offset + width > self->code_size) {
            PyErr_Format(PyExc_ValueError,
                         "cpjit: patch at offset %u (+%zu) outside the code (%zu bytes)",
                         offset, width, self->code_size);
            return -1;
        }
        uint64_t target = bases[base] + (uint64_t)value;
        unsigned char *location = self->memory + offset;
        int err = kind == PATCH_ABS64 ? patch_abs64(location, target)
                  : kind == PATCH_REL32 ? patch_rel32(location, target, offset)
                  : patch_abs32(location, target, kind == PATCH_ABS32S, offset);
        if (err) {
            return -1;
        }
    }
    return 0;
}

JitCode *
cpjit_jitcode_alloc(Py_ssize_t code_size, Py_ssize_t rwdata_words, Py_ssize_t nslots,
                    PyObject *co, PyObject *keepalive)
{
    if (code_size <= 0 || code_size > ((Py_ssize_t)1 << 30) || rwdata_words < 0
        || rwdata_words > (1 << 24) || nslots < 0 || nslots > (1 << 16) || !PyCode_Check(co)
        || !PyTuple_Check(keepalive)) {
        PyErr_SetString(PyExc_ValueError, "cpjit: invalid JitCode arguments");
        return NULL;
    }
    JitCode *self = (JitCode *)JitCode_Type.tp_alloc(&JitCode_Type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->code_size = (size_t)code_size;
    self->nslots = nslots;
    self->rwdata_words = rwdata_words;
    self->co = Py_NewRef(co);
    {
        PyCodeObject *c = (PyCodeObject *)co;
        int simple = !(c->co_flags & (CO_VARARGS | CO_VARKEYWORDS)) && c->co_kwonlyargcount == 0;
        self->fast_argcount = simple ? c->co_argcount : -1;
        self->raw_locals = Py_MIN(c->co_nlocalsplus, nslots / 2);
    }
    self->keepalive = Py_NewRef(keepalive);
    self->rwdata = PyMem_Calloc((size_t)(rwdata_words ? rwdata_words : 1), sizeof(int64_t));
    if (self->rwdata == NULL) {
        PyErr_NoMemory();
        Py_DECREF(self);
        return NULL;
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t needed = ((size_t)code_size + (size_t)page - 1) & ~((size_t)page - 1);
    size_t mapped;
    unsigned char *memory = code_memory(needed, &mapped);
    if (memory == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->memory = memory;
    self->mapped_size = mapped;
    /* (A pooled mapping holds old code: the whole mapping is zeroed, as a fresh one is.) */
    memset(memory, 0, mapped);
    return self;
}

int
cpjit_jitcode_seal(JitCode *self, const unsigned char *patches, Py_ssize_t count)
{
    if (apply_patches(self, patches, count) < 0) {
        return -1;
    }
    /* Do NOT ever leave the memory writable: from here on it is read+exec. */
    if (mprotect(self->memory, self->mapped_size, PROT_READ | PROT_EXEC) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    __builtin___clear_cache((char *)self->memory, (char *)self->memory + self->mapped_size);
    return 0;
}

static PyObject *
jitcode_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"code", "patches", "entry", "rwdata_words", "nslots",
                               "co", "keepalive", NULL};
    Py_buffer code, patches;
    Py_ssize_t entry, rwdata_words, nslots;
    PyObject *co, *keepalive;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*nnnO!O!:JitCode", keywords,
                                     &code, &patches, &entry, &rwdata_words, &nslots,
                                     &PyCode_Type, &co, &PyTuple_Type, &keepalive)) {
        return NULL;
    }
    JitCode *self = NULL;
    if (patches.len % PATCH_RECORD_SIZE != 0 || entry < 0 || entry >= code.len) {
        PyErr_SetString(PyExc_ValueError, "cpjit: invalid JitCode arguments");
        goto done;
    }
    self = cpjit_jitcode_alloc(code.len, rwdata_words, nslots, co, keepalive);
    if (self == NULL) {
        goto done;
    }
    self->entry_offset = (size_t)entry;
    memcpy(self->memory, code.buf, (size_t)code.len);
    if (cpjit_jitcode_seal(self, patches.buf, patches.len / PATCH_RECORD_SIZE) < 0) {
        Py_CLEAR(self);
    }
done:
    PyBuffer_Release(&code);
    PyBuffer_Release(&patches);
    return (PyObject *)self;
}

static int
jitcode_traverse(JitCode *self, visitproc visit, void *arg)
{
    Py_VISIT(self->co);
    Py_VISIT(self->keepalive);
    return 0;
}

static int
jitcode_clear(JitCode *self)
{
    Py_CLEAR(self->keepalive);
    return 0;
}

static void
jitcode_dealloc(JitCode *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->memory != NULL) {
        release_code_memory(self->memory, self->mapped_size);
    }
    PyMem_Free(self->rwdata);
    if (self->co != NULL) {
        cpjit_detach_code(self);   /* (before its code object may go) */
    }
    Py_CLEAR(self->co);
    Py_CLEAR(self->keepalive);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
jitcode_read(JitCode *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize((const char *)self->memory, (Py_ssize_t)self->code_size);
}

static PyObject *
jitcode_rwdata(JitCode *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = PyTuple_New(self->rwdata_words);
    for (Py_ssize_t i = 0; result != NULL && i < self->rwdata_words; i++) {
        PyObject *value = PyLong_FromLongLong(self->rwdata[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, i, value);
    }
    return result;
}

static PyObject *
jitcode_reset_rwdata(JitCode *self, PyObject *Py_UNUSED(ignored))
{
    memset(self->rwdata, 0, (size_t)self->rwdata_words * sizeof(int64_t));
    Py_RETURN_NONE;
}

static PyObject *
jitcode_quiet_exits(JitCode *self, PyObject *Py_UNUSED(ignored))
{
    /* Side exits that a recompilation cannot avoid: stop counting towards a storm. */
    self->rwdata[CPJIT_RW_EXITS] = INT64_MIN / 2;
    Py_RETURN_NONE;
}

static PyObject *
jitcode_get_address(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(self->memory);
}

static PyObject *
jitcode_get_entry(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(self->memory + self->entry_offset);
}

static PyObject *
jitcode_get_rwdata_address(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(self->rwdata);
}

static PyObject *
jitcode_get_size(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->code_size);
}

static PyObject *
jitcode_get_co(JitCode *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->co);
}

static PyObject *
jitcode_get_nslots(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->nslots);
}

static PyMethodDef jitcode_methods[] = {
    {"read", (PyCFunction)jitcode_read, METH_NOARGS,
     "read()\n--\n\nThe machine code and read-only data as they are in memory (patched)."},
    {"rwdata", (PyCFunction)jitcode_rwdata, METH_NOARGS,
     "rwdata()\n--\n\nThe read-write words of the code (exit counters first)."},
    {"reset_rwdata", (PyCFunction)jitcode_reset_rwdata, METH_NOARGS,
     "reset_rwdata()\n--\n\nZero the read-write words."},
    {"quiet_exits", (PyCFunction)jitcode_quiet_exits, METH_NOARGS,
     "quiet_exits()\n--\n\nNo more recompilation requests for side exits of this code."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
jitcode_get_active(JitCode *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->active);
}

static PyGetSetDef jitcode_getset[] = {
    {"address", (getter)jitcode_get_address, NULL, "Start of the mapping.", NULL},
    {"entry", (getter)jitcode_get_entry, NULL, "Address of the entry shim.", NULL},
    {"rwdata_address", (getter)jitcode_get_rwdata_address, NULL, "Address of the read-write words.", NULL},
    {"size", (getter)jitcode_get_size, NULL, "Bytes of code and read-only data.", NULL},
    {"co", (getter)jitcode_get_co, NULL, "The code object compiled.", NULL},
    {"nslots", (getter)jitcode_get_nslots, NULL, "Frame-side slots the code needs.", NULL},
    {"active", (getter)jitcode_get_active, NULL, "Frames running the code right now.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject JitCode_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.JitCode",
    .tp_doc = "JitCode(code, patches, entry, rwdata_words, nslots, co, keepalive)\n--\n\n"
              "Patched machine code of one function, in read+exec memory.",
    .tp_basicsize = sizeof(JitCode),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = jitcode_new,
    .tp_dealloc = (destructor)jitcode_dealloc,
    .tp_traverse = (traverseproc)jitcode_traverse,
    .tp_clear = (inquiry)jitcode_clear,
    .tp_weaklistoffset = offsetof(JitCode, weakreflist),
    .tp_methods = jitcode_methods,
    .tp_getset = jitcode_getset,
};
