/* wrapper.c: JitFunction, the callable that @cpjit.jit returns.
 *
 * It stands in for a Python function: same call signature, binds as a method
 * (and is a method descriptor, so obj.meth(...) builds no bound method), has
 * the function's __name__, __qualname__, __doc__, __module__, __wrapped__
 * (set by cpjit/_api.py with functools.update_wrapper), forwards __code__,
 * __defaults__ and friends to the function, pickles by reference and copies
 * as itself.  It adds no Python frame: its call runs the function's own frame
 * in machine code (entry.c) or, before compilation and after a fallback, calls
 * the function.
 */
#include "cpjit.h"

#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Python functions of cpjit/_api.py used by the `stats` and `dump` members. */
static PyObject *stats_function, *dump_function;

static PyObject *
call_plain(JitFunction *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (cpjit_check_c_stack() < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(self->func, args, nargsf, kwnames);
}

static int
compile_now(JitFunction *self)
{
    self->state = CPJIT_STATE_COMPILING;
    PyObject *result = PyObject_CallOneArg(self->compiler, (PyObject *)self);
    if (result == NULL) {
        /* strict=True (JitError), or KeyboardInterrupt and the like during
         * compilation: try again at the next call. */
        if (self->state == CPJIT_STATE_COMPILING) {
            self->state = CPJIT_STATE_WARMING;
        }
        return -1;
    }
    Py_DECREF(result);
    if (self->state == CPJIT_STATE_COMPILING) {
        self->state = CPJIT_STATE_FALLBACK;   /* the compiler installed nothing */
    }
    return 0;
}

/* The compiler is Python code: under sys.settrace / sys.setprofile it would
 * show up in the events, so compiling waits until they are off. */
static int
compiling_is_visible(void)
{
#if CPJIT_SUPPORTED
    return CPJIT_TRACING(_PyThreadState_GET());
#else
    return 0;
#endif
}

int
cpjit_recompile(JitFunction *self)
{
    self->recompile_at = 0;
    PyObject *result = PyObject_CallOneArg(self->compiler, (PyObject *)self);
    if (result == NULL) {
        return -1;   /* strict=True, or KeyboardInterrupt and the like */
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *
jitfunction_vectorcall(JitFunction *self, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames)
{
    if (self->state == CPJIT_STATE_COMPILED) {
        JitCode *code = (JitCode *)self->code;
        if (UNLIKELY(cpjit_wants_recompile(self, code)) && !compiling_is_visible()) {
            if (cpjit_recompile(self) < 0) {
                return NULL;
            }
            if (self->state != CPJIT_STATE_COMPILED) {
                return call_plain(self, args, nargsf, kwnames);
            }
            /* The recompilation may have replaced (and freed) `code`. */
            code = (JitCode *)self->code;
            if (code->rwdata[CPJIT_RW_EXITS] >= CPJIT_EXIT_STORM) {
                code->rwdata[CPJIT_RW_EXITS] = INT64_MIN / 2;  /* nothing changed: stop asking */
            }
        }
        if (((PyFunctionObject *)self->func)->func_code == code->co) {
            return cpjit_call_jitted(self->func, code, args, nargsf, kwnames);
        }
        /* Someone assigned the function's __code__: compile again. */
        Py_CLEAR(self->code);
        self->state = CPJIT_STATE_WARMING;
        self->calls = 0;
    }
    if (self->state == CPJIT_STATE_WARMING && self->compile_at > 0
        && ++self->calls >= self->compile_at && !compiling_is_visible()) {
        if (compile_now(self) < 0) {
            return NULL;
        }
        if (self->state == CPJIT_STATE_COMPILED) {
            return cpjit_call_jitted(self->func, (JitCode *)self->code, args, nargsf, kwnames);
        }
    }
    return call_plain(self, args, nargsf, kwnames);
}

static PyObject *
jitfunction_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"func", "compiler", "compile_at", "strict", NULL};
    PyObject *func, *compiler;
    Py_ssize_t compile_at;
    int strict;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!Onp:JitFunction", keywords,
                                     &PyFunction_Type, &func, &compiler, &compile_at, &strict)) {
        return NULL;
    }
    if (compile_at < 0) {
        PyErr_SetString(PyExc_ValueError, "compile_at must be >= 0");
        return NULL;
    }
    JitFunction *self = (JitFunction *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)jitfunction_vectorcall;
    self->func = Py_NewRef(func);
    self->compiler = Py_NewRef(compiler);
    self->info = Py_NewRef(Py_None);
    self->compile_at = compile_at;
    self->strict = strict;
    self->state = compile_at > 0 ? CPJIT_STATE_WARMING : CPJIT_STATE_FALLBACK;
    return (PyObject *)self;
}

static int
jitfunction_traverse(JitFunction *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->code);
    Py_VISIT(self->compiler);
    Py_VISIT(self->info);
    Py_VISIT(self->fallback_reason);
    Py_VISIT(self->dict);
    return 0;
}

static int
jitfunction_clear(JitFunction *self)
{
    Py_CLEAR(self->code);
    Py_CLEAR(self->compiler);
    Py_CLEAR(self->info);
    Py_CLEAR(self->fallback_reason);
    Py_CLEAR(self->dict);
    if (self->state == CPJIT_STATE_COMPILED) {
        self->state = CPJIT_STATE_FALLBACK;
    }
    return 0;
}

static void
jitfunction_dealloc(JitFunction *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    jitfunction_clear(self);
    Py_CLEAR(self->func);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
jitfunction_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
jitfunction_repr(JitFunction *self)
{
    PyObject *qualname = PyObject_GetAttrString(self->func, "__qualname__");
    if (qualname == NULL) {
        return NULL;
    }
    PyObject *result = PyUnicode_FromFormat("<cpjit.jit function %S at %p>", qualname, self);
    Py_DECREF(qualname);
    return result;
}

/* ---- methods used by cpjit/_api.py ---- */

static PyObject *
jitfunction_install(JitFunction *self, PyObject *args)
{
    PyObject *code, *info;
    Py_ssize_t recompile_after = 0;
    if (!PyArg_ParseTuple(args, "O!O|n:_install", &JitCode_Type, &code, &info, &recompile_after)) {
        return NULL;
    }
    if (((JitCode *)code)->co != ((PyFunctionObject *)self->func)->func_code) {
        PyErr_SetString(PyExc_ValueError, "cpjit: code compiled for another code object");
        return NULL;
    }
    Py_XSETREF(self->code, Py_NewRef(code));
    Py_XSETREF(self->info, Py_NewRef(info));
    Py_CLEAR(self->fallback_reason);
    self->state = CPJIT_STATE_COMPILED;
    /* Compile again after that many more calls (0: not planned). */
    self->recompile_at = recompile_after > 0 ? self->calls + recompile_after : 0;
    Py_RETURN_NONE;
}

static PyObject *
jitfunction_fallback(JitFunction *self, PyObject *args)
{
    PyObject *reason, *info = Py_None;
    if (!PyArg_ParseTuple(args, "U|O:_fallback", &reason, &info)) {
        return NULL;
    }
    Py_CLEAR(self->code);
    Py_XSETREF(self->fallback_reason, Py_NewRef(reason));
    Py_XSETREF(self->info, Py_NewRef(info));
    self->state = CPJIT_STATE_FALLBACK;
    Py_RETURN_NONE;
}

static PyObject *
jitfunction_recompile(JitFunction *self, PyObject *Py_UNUSED(ignored))
{
    /* Drop the code and compile again at the next call. */
    Py_CLEAR(self->code);
    Py_CLEAR(self->fallback_reason);
    self->state = CPJIT_STATE_WARMING;
    self->calls = 0;
    if (self->compile_at <= 0) {
        self->compile_at = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *
jitfunction_dump(JitFunction *self, PyObject *args, PyObject *kwargs)
{
    if (dump_function == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cpjit: dump is not available");
        return NULL;
    }
    PyObject *call_args = PyTuple_Pack(1, (PyObject *)self);
    if (call_args == NULL) {
        return NULL;
    }
    if (args != NULL && PyTuple_GET_SIZE(args) > 0) {
        Py_SETREF(call_args, PySequence_Concat(call_args, args));
        if (call_args == NULL) {
            return NULL;
        }
    }
    PyObject *result = PyObject_Call(dump_function, call_args, kwargs);
    Py_DECREF(call_args);
    return result;
}

static PyObject *
jitfunction_reduce(JitFunction *self, PyObject *Py_UNUSED(ignored))
{
    /* Pickle by reference, like a function: module.qualname must be us. */
    return PyObject_GetAttrString((PyObject *)self, "__qualname__");
}

static PyMethodDef jitfunction_methods[] = {
    {"_install", (PyCFunction)jitfunction_install, METH_VARARGS, NULL},
    {"_fallback", (PyCFunction)jitfunction_fallback, METH_VARARGS, NULL},
    {"recompile", (PyCFunction)jitfunction_recompile, METH_NOARGS,
     "recompile()\n--\n\nDrop the machine code; compile again at the next call."},
    {"dump", (PyCFunction)(void (*)(void))jitfunction_dump, METH_VARARGS | METH_KEYWORDS,
     "dump(**options)\n--\n\nThe dump of this function's compilation, as text."},
    {"__reduce__", (PyCFunction)jitfunction_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- attributes ---- */

static PyObject *
get_compiled(JitFunction *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->state == CPJIT_STATE_COMPILED);
}

static PyObject *
get_fallback_reason(JitFunction *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->fallback_reason ? self->fallback_reason : Py_None);
}

static PyObject *
get_stats(JitFunction *self, void *Py_UNUSED(closure))
{
    if (stats_function == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cpjit: stats are not available");
        return NULL;
    }
    return PyObject_CallOneArg(stats_function, (PyObject *)self);
}

static PyObject *
get_info(JitFunction *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->info ? self->info : Py_None);
}

static PyObject *
get_code(JitFunction *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->code ? self->code : Py_None);
}

static PyObject *
get_calls(JitFunction *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->calls);
}

static PyObject *
get_strict(JitFunction *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->strict);
}

static PyObject *
get_wrapped(JitFunction *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->func);
}

/* Function attributes that live on the function, read and written through. */
static PyObject *
get_forwarded(JitFunction *self, void *name)
{
    return PyObject_GetAttrString(self->func, (const char *)name);
}

static int
set_forwarded(JitFunction *self, PyObject *value, void *name)
{
    if (value == NULL) {
        return PyObject_DelAttrString(self->func, (const char *)name);
    }
    return PyObject_SetAttrString(self->func, (const char *)name, value);
}

static PyGetSetDef jitfunction_getset[] = {
    {"compiled", (getter)get_compiled, NULL, "True while machine code runs this function.", NULL},
    {"fallback_reason", (getter)get_fallback_reason, NULL,
     "None, or why this function runs in the interpreter.", NULL},
    {"stats", (getter)get_stats, NULL,
     "Compilation and run statistics (uops, code bytes, compile time, side exits).", NULL},
    {"_info", (getter)get_info, NULL, NULL, NULL},
    {"_code", (getter)get_code, NULL, NULL, NULL},
    {"_calls", (getter)get_calls, NULL, NULL, NULL},
    {"strict", (getter)get_strict, NULL, "Whether a fallback raises cpjit.JitError.", NULL},
    {"__wrapped__", (getter)get_wrapped, NULL, "The Python function.", NULL},
    {"__code__", (getter)get_forwarded, (setter)set_forwarded, NULL, "__code__"},
    {"__defaults__", (getter)get_forwarded, (setter)set_forwarded, NULL, "__defaults__"},
    {"__kwdefaults__", (getter)get_forwarded, (setter)set_forwarded, NULL, "__kwdefaults__"},
    {"__globals__", (getter)get_forwarded, NULL, NULL, "__globals__"},
    {"__closure__", (getter)get_forwarded, NULL, NULL, "__closure__"},
    {"__builtins__", (getter)get_forwarded, NULL, NULL, "__builtins__"},
    {"__annotations__", (getter)get_forwarded, (setter)set_forwarded, NULL, "__annotations__"},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject JitFunction_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.JitFunction",
    .tp_doc = "A function compiled to machine code by cpjit (see cpjit.jit).",
    .tp_basicsize = sizeof(JitFunction),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = jitfunction_new,
    .tp_dealloc = (destructor)jitfunction_dealloc,
    .tp_traverse = (traverseproc)jitfunction_traverse,
    .tp_clear = (inquiry)jitfunction_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(JitFunction, vectorcall),
    .tp_descr_get = jitfunction_descr_get,
    .tp_repr = (reprfunc)jitfunction_repr,
    .tp_dictoffset = offsetof(JitFunction, dict),
    .tp_weaklistoffset = offsetof(JitFunction, weakreflist),
    .tp_methods = jitfunction_methods,
    .tp_getset = jitfunction_getset,
};

/* Registered by cpjit/_api.py at import. */
PyObject *
cpjit_set_python_hooks(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *stats, *dump;
    if (!PyArg_ParseTuple(args, "OO:set_python_hooks", &stats, &dump)) {
        return NULL;
    }
    Py_XSETREF(stats_function, Py_NewRef(stats));
    Py_XSETREF(dump_function, Py_NewRef(dump));
    Py_RETURN_NONE;
}
