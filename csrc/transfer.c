/* transfer.c: _runtime.LoadFastTransfer, the type analysis' transfer function
 * of _LOAD_FAST in C.
 *
 * The analysis (analyze.c) calls a uop's transfer function at every visit;
 * _LOAD_FAST is the commonest uop, and as a Python function its transfer took
 * some 4,800 instructions a call (a frame, two tuples, a named tuple made
 * through tuple.__new__), a fiftieth of a compilation.  It pushes the item
 * its local is known as, one shared item per (the local's type or ANY, the
 * local), and changes nothing else:
 *
 *     local = state.locals[uop.oparg]
 *     key = (local if isinstance(local, type) else ANY, uop.oparg)
 *     item = items.get(key) or items.setdefault(key, Item(*key, None))
 *     return (State(state.stack + (item,), state.locals), None)
 *
 * An instance holds the State and Item types (tuple subclasses of 2 and 3
 * items), the dict of items (the specializer's, shared by every instance)
 * and ANY.  What is not a state (a tuple of two tuples) is a TypeError; a
 * local out of range an IndexError, as the tuple index was.
 */
#include "cpjit.h"

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *state_type;
    PyTypeObject *item_type;
    PyObject *items;    /* dict: (type or ANY, local) -> Item */
    PyObject *any;
} LoadFastObject;

/* A new instance of the tuple subclass `type` holding `n` new references. */
static PyObject *
new_named(PyTypeObject *type, PyObject **values, Py_ssize_t n)
{
    PyObject *made = type->tp_alloc(type, n);
    if (made == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_DECREF(values[i]);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(made, i, values[i]);
    }
    return made;
}

/* The shared item for `key` ((type or ANY, local)): borrowed, or NULL with an error. */
static PyObject *
item_for(LoadFastObject *self, PyObject *key)
{
    PyObject *item = PyDict_GetItemWithError(self->items, key);
    if (item != NULL || PyErr_Occurred()) {
        return item;
    }
    PyObject *values[3] = {Py_NewRef(PyTuple_GET_ITEM(key, 0)),
                           Py_NewRef(PyTuple_GET_ITEM(key, 1)), Py_NewRef(Py_None)};
    PyObject *made = new_named(self->item_type, values, 3);
    if (made == NULL) {
        return NULL;
    }
    item = PyDict_SetDefault(self->items, key, made);
    Py_DECREF(made);   /* (the dict holds the one it keeps) */
    return item;
}

static PyObject *
load_fast_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                     PyObject *kwnames)
{
    LoadFastObject *self = (LoadFastObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "LoadFastTransfer takes (uop, state)");
        return NULL;
    }
    PyObject *uop = args[0], *state = args[1];
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 2
        || !PyTuple_Check(PyTuple_GET_ITEM(state, 0))
        || !PyTuple_Check(PyTuple_GET_ITEM(state, 1))) {
        PyErr_Format(PyExc_TypeError, "LoadFastTransfer: the state must be a tuple of two "
                     "tuples (stack, locals), not %.100s", Py_TYPE(state)->tp_name);
        return NULL;
    }
    PyObject *stack = PyTuple_GET_ITEM(state, 0), *locals = PyTuple_GET_ITEM(state, 1);
    PyObject *oparg = PyObject_GetAttrString(uop, "oparg");
    if (oparg == NULL) {
        return NULL;
    }
    Py_ssize_t local = PyLong_Check(oparg) ? PyLong_AsSsize_t(oparg) : -1;
    if (local < 0) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "LoadFastTransfer: the uop's oparg must be an int "
                         "from 0, not %R", oparg);
        }
        Py_DECREF(oparg);
        return NULL;
    }
    PyObject *fact = PyTuple_GetItem(locals, local);   /* (IndexError out of range) */
    if (fact == NULL) {
        Py_DECREF(oparg);
        return NULL;
    }
    PyObject *key = PyTuple_Pack(2, PyType_Check(fact) ? fact : self->any, oparg);
    Py_DECREF(oparg);
    PyObject *item = key == NULL ? NULL : item_for(self, key);
    Py_XDECREF(key);
    if (item == NULL) {
        return NULL;
    }
    Py_ssize_t depth = PyTuple_GET_SIZE(stack);
    PyObject *pushed = PyTuple_New(depth + 1);
    if (pushed == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyTuple_SET_ITEM(pushed, i, Py_NewRef(PyTuple_GET_ITEM(stack, i)));
    }
    PyTuple_SET_ITEM(pushed, depth, Py_NewRef(item));
    PyObject *values[2] = {pushed, Py_NewRef(locals)};
    PyObject *after = new_named(self->state_type, values, 2);
    if (after == NULL) {
        return NULL;
    }
    PyObject *outcome = PyTuple_Pack(2, after, Py_None);
    Py_DECREF(after);
    return outcome;
}

/* A tuple subclass whose instances are made by tp_alloc with `n` items. */
static int
check_named(PyObject *type, const char *what)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)
        || ((PyTypeObject *)type)->tp_alloc == NULL) {
        PyErr_Format(PyExc_TypeError, "LoadFastTransfer: %s must be a tuple subclass", what);
        return -1;
    }
    return 0;
}

static PyObject *
load_fast_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"state_type", "item_type", "items", "any", NULL};
    PyObject *state_type, *item_type, *items, *any;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!O:LoadFastTransfer", keywords,
                                     &state_type, &item_type, &PyDict_Type, &items, &any)
        || check_named(state_type, "state_type") < 0 || check_named(item_type, "item_type") < 0) {
        return NULL;
    }
    LoadFastObject *self = (LoadFastObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = load_fast_vectorcall;
    self->state_type = (PyTypeObject *)Py_NewRef(state_type);
    self->item_type = (PyTypeObject *)Py_NewRef(item_type);
    self->items = Py_NewRef(items);
    self->any = Py_NewRef(any);
    return (PyObject *)self;
}

static int
load_fast_traverse(LoadFastObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->state_type);
    Py_VISIT(self->item_type);
    Py_VISIT(self->items);
    Py_VISIT(self->any);
    return 0;
}

static int
load_fast_clear(LoadFastObject *self)
{
    Py_CLEAR(self->state_type);
    Py_CLEAR(self->item_type);
    Py_CLEAR(self->items);
    Py_CLEAR(self->any);
    return 0;
}

static void
load_fast_dealloc(LoadFastObject *self)
{
    PyObject_GC_UnTrack(self);
    load_fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject LoadFast_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.LoadFastTransfer",
    .tp_doc = "LoadFastTransfer(state_type, item_type, items, any)\n--\n\n"
              "The type analysis' transfer function of _LOAD_FAST: called with (uop, "
              "state), returns (the state with the local's item pushed, None).",
    .tp_basicsize = sizeof(LoadFastObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = load_fast_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LoadFastObject, vectorcall),
    .tp_dealloc = (destructor)load_fast_dealloc,
    .tp_traverse = (traverseproc)load_fast_traverse,
    .tp_clear = (inquiry)load_fast_clear,
};

int
cpjit_transfer_types_init(PyObject *module)
{
    if (PyType_Ready(&LoadFast_Type) < 0) {
        return -1;
    }
    return PyModule_AddType(module, &LoadFast_Type);
}
