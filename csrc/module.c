/* module.c: the cpjit._runtime extension module. */
#include "cpjit.h"

#include <dlfcn.h>
#include <string.h>

PyObject *cpjit_set_python_hooks(PyObject *module, PyObject *args);

/* The runtime's own symbols that machine code may refer to (runtime.h). */
static const struct {
    const char *name;
    void *address;
} runtime_symbols[] = {
#if CPJIT_SUPPORTED
#define CPJIT_SYMBOL_ENTRY(name) {#name, (void *)&name},
    CPJIT_RUNTIME_SYMBOLS(CPJIT_SYMBOL_ENTRY)
#undef CPJIT_SYMBOL_ENTRY
#endif
    {NULL, NULL},
};

PyObject *
cpjit_lookup_symbol(const char *name)
{
    for (size_t i = 0; runtime_symbols[i].name != NULL; i++) {
        if (strcmp(runtime_symbols[i].name, name) == 0) {
            return PyLong_FromVoidPtr(runtime_symbols[i].address);
        }
    }
    if (strncmp(name, "cpjit_", 6) == 0) {
        PyErr_Format(PyExc_LookupError, "cpjit: %s is not in CPJIT_RUNTIME_SYMBOLS", name);
        return NULL;
    }
    void *address = dlsym(RTLD_DEFAULT, name);
    if (address == NULL) {
        PyErr_Format(PyExc_LookupError, "cpjit: the interpreter exports no symbol %s", name);
        return NULL;
    }
    return PyLong_FromVoidPtr(address);
}

static PyObject *
lookup_symbol(PyObject *Py_UNUSED(module), PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "symbol name must be a str");
        return NULL;
    }
    const char *utf8 = PyUnicode_AsUTF8(name);
    return utf8 == NULL ? NULL : cpjit_lookup_symbol(utf8);
}

static PyObject *
code_units_address(PyObject *Py_UNUSED(module), PyObject *co)
{
    if (!PyCode_Check(co)) {
        PyErr_SetString(PyExc_TypeError, "expected a code object");
        return NULL;
    }
#if CPJIT_SUPPORTED
    return PyLong_FromVoidPtr(CPJIT_CODE_UNITS((PyCodeObject *)co));
#else
    PyErr_SetString(PyExc_NotImplementedError, "unsupported CPython version");
    return NULL;
#endif
}

static PyObject *
counters(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{sKsKsKsKsKsK}",
                         "entries", cpjit_stats.entries, "deopts", cpjit_stats.deopts,
                         "errors", cpjit_stats.errors, "not_entered", cpjit_stats.not_entered,
                         "code_bytes", cpjit_stats.code_bytes,
                         "pooled_bytes", cpjit_stats.pooled_bytes);
}

static PyObject *
attach_code(PyObject *Py_UNUSED(module), PyObject *code)
{
    if (!JitCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "attach_code() expects a JitCode");
        return NULL;
    }
    if (cpjit_attach_code((JitCode *)code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
attached_code(PyObject *Py_UNUSED(module), PyObject *co)
{
    if (!PyCode_Check(co)) {
        PyErr_SetString(PyExc_TypeError, "attached_code() expects a code object");
        return NULL;
    }
    JitCode *code = cpjit_attached_code(co);
    if (code == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(code);
    return (PyObject *)code;
}

static PyMethodDef module_methods[] = {
    {"attach_code", attach_code, METH_O,
     "attach_code(jitcode)\n--\n\nRun `jitcode` for every call from machine code of a "
     "function with its code object (a comprehension's), until the JitCode dies."},
    {"attached_code", attached_code, METH_O,
     "attached_code(co)\n--\n\nThe JitCode attached to code object `co`, or None."},
    {"lookup_symbol", lookup_symbol, METH_O,
     "lookup_symbol(name)\n--\n\nAddress of a C symbol machine code may call: the "
     "runtime's own (CPJIT_RUNTIME_SYMBOLS) or the interpreter's (dlsym)."},
    {"code_units_address", code_units_address, METH_O,
     "code_units_address(co)\n--\n\nAddress of the first code unit a frame of `co` runs."},
    {"counters", counters, METH_NOARGS,
     "counters()\n--\n\nProcess-wide entry, side exit and error counts, and the bytes "
     "of code memory live and kept for reuse."},
    {"set_python_hooks", cpjit_set_python_hooks, METH_VARARGS, NULL},
    {"register_stencils", cpjit_register_stencils, METH_VARARGS,
     "register_stencils(stencils, symbol_addresses, variants, shim, exit_stub, error_stub)"
     "\n--\n\n"
     "Every stencil (name, code, body_size, cold, data, data_align, holes, data_holes), the "
     "addresses of the symbols their holes name, the oparg variants (int64 triples: stencil, "
     "oparg, variant) and the shim and stub stencils, for emit_trace()."},
    {"emit_trace", cpjit_emit_trace, METH_VARARGS,
     "emit_trace(uops, uop_type, label, co, units, cache_words, nslots, slots_offset, "
     "exit_actions, encode_operand, step_value, keepalive)\n--\n\nLay out a trace's "
     "stencils, copy their bytes, resolve their holes and make the JitCode (see "
     "csrc/layout.c and cpjit/emit.py)."},
    {"stack_walk", cpjit_stack_walk, METH_VARARGS,
     "stack_walk(uops, uop_type, label, oparg_free_steps, steps, stacksize, entry_depths, "
     "pushing_actions, error, instructions=None)\n--\n\nThe stack depth before each uop of "
     "a trace (None: unreachable), checked on the way; with entry_depths, its side exits "
     "too; with instructions, the depth at each instruction's start instead (see "
     "csrc/stackwalk.c and cpjit/analysis.py)."},
    {"analyze", cpjit_analyze, METH_VARARGS,
     "analyze(uops, uop_type, label, transfers, effects, entry, state_type, join, unknown, "
     "error)\n--\n\nThe type analysis of a trace: (list(uops), the state before each uop "
     "(None: unreachable), altered), found with the transfer functions by uop name (see "
     "csrc/analyze.c and cpjit/analysis.py)."},
    {"generic_transfer", cpjit_generic_transfer, METH_VARARGS,
     "generic_transfer(uop, state, uop_type, effects, state_type, unknown, error)\n--\n\n"
     "What analyze() makes of a uop without a transfer function: analysis.generic_transfer, "
     "in C."},
    {"uop_names", cpjit_uop_names, METH_VARARGS,
     "uop_names(uops, uop_type)\n--\n\nThe name of each uop of the list `uops`, in order "
     "(see csrc/uopscan.c and cpjit/ir.py)."},
    {"uop_positions", cpjit_uop_positions, METH_VARARGS,
     "uop_positions(uops, uop_type, names)\n--\n\nThe indexes of the uops named one of "
     "`names`, in order."},
    {"uop_jumps_into", cpjit_uop_jumps_into, METH_VARARGS,
     "uop_jumps_into(uops, uop_type, targets, label)\n--\n\nThe indexes of the uops whose "
     "jump_to is one of `targets`, but for those named `label`, in order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef runtime_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cpjit._runtime",
    .m_doc = "cpjit's C runtime: the wrapper type, frame entry, executable memory.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__runtime(void)
{
    if (PyType_Ready(&JitCode_Type) < 0 || PyType_Ready(&JitFunction_Type) < 0
        || cpjit_code_extra_init() < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&runtime_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddType(module, &JitCode_Type) < 0
        || PyModule_AddType(module, &JitFunction_Type) < 0
        || PyModule_AddIntConstant(module, "SUPPORTED", CPJIT_SUPPORTED) < 0
        || PyModule_AddStringConstant(module, "VERSION_NAME", CPJIT_VERSION_NAME) < 0
        || cpjit_add_step_flags(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#if CPJIT_SUPPORTED
    /* Where raw-value slots start in a JitState (the emitter patches slot offsets). */
    if (PyModule_AddIntConstant(module, "SLOTS_OFFSET", (long)offsetof(JitState, slots)) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    if (cpjit_uop_type_init(module) < 0          /* _runtime.UOpBase (uop.c) */
        || cpjit_transfer_types_init(module) < 0     /* LoadFastTransfer (transfer.c) */
        || cpjit_walk_type_init(module) < 0) {       /* WalkCore (unboxwalk.c) */
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
