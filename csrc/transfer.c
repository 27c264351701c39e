/* transfer.c: transfer functions of the type analysis in C:
 * _runtime.LoadFastTransfer (_LOAD_FAST's) and _runtime.StateTransfer
 * (_STORE_FAST's, _GUARD_TYPE's and _GUARD_LOCAL_TYPE's: see below).
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

#include <string.h>

/* A transfer function object (both types of this file): the State and Item
 * types it makes, and two objects more. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *state_type;
    PyTypeObject *item_type;
    union {
        PyObject *items;        /* LoadFastTransfer: dict (type or ANY, local) -> Item */
        PyObject *unbound;      /* StateTransfer: analysis.UNBOUND */
    };
    union {
        PyObject *any;          /* LoadFastTransfer: analysis.ANY */
        PyObject *error;        /* StateTransfer: analysis.AnalysisError */
    };
    int which;                  /* StateTransfer: the uop's (T_* below) */
} TransferObject;

/* A new transfer function object of `type` holding these (borrowed). */
static PyObject *
transfer_new(PyTypeObject *type, vectorcallfunc call, PyObject *state_type,
             PyObject *item_type, PyObject *first, PyObject *second, int which)
{
    TransferObject *self = (TransferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = call;
    self->state_type = (PyTypeObject *)Py_NewRef(state_type);
    self->item_type = (PyTypeObject *)Py_NewRef(item_type);
    self->items = Py_NewRef(first);
    self->any = Py_NewRef(second);
    self->which = which;
    return (PyObject *)self;
}

static int
transfer_traverse(TransferObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->state_type);
    Py_VISIT(self->item_type);
    Py_VISIT(self->items);
    Py_VISIT(self->any);
    return 0;
}

static int
transfer_clear(TransferObject *self)
{
    Py_CLEAR(self->state_type);
    Py_CLEAR(self->item_type);
    Py_CLEAR(self->items);
    Py_CLEAR(self->any);
    return 0;
}

static void
transfer_dealloc(TransferObject *self)
{
    PyObject_GC_UnTrack(self);
    transfer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

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

/* The stack and locals of `state` (borrowed), or -1 with a TypeError. */
static int
state_parts(const char *who, PyObject *state, PyObject **stack, PyObject **locals)
{
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 2
        || !PyTuple_Check(PyTuple_GET_ITEM(state, 0))
        || !PyTuple_Check(PyTuple_GET_ITEM(state, 1))) {
        PyErr_Format(PyExc_TypeError, "%s: the state must be a tuple of two tuples (stack, "
                     "locals), not %.100s", who, Py_TYPE(state)->tp_name);
        return -1;
    }
    *stack = PyTuple_GET_ITEM(state, 0);
    *locals = PyTuple_GET_ITEM(state, 1);
    return 0;
}

/* The shared item for `key` ((type or ANY, local)): borrowed, or NULL with an error. */
static PyObject *
item_for(TransferObject *self, PyObject *key)
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
    TransferObject *self = (TransferObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "LoadFastTransfer takes (uop, state)");
        return NULL;
    }
    PyObject *uop = args[0], *state = args[1], *stack, *locals;
    if (state_parts("LoadFastTransfer", state, &stack, &locals) < 0) {
        return NULL;
    }
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
    return transfer_new(type, load_fast_vectorcall, state_type, item_type, items, any, 0);
}

static PyTypeObject LoadFast_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.LoadFastTransfer",
    .tp_doc = "LoadFastTransfer(state_type, item_type, items, any)\n--\n\n"
              "The type analysis' transfer function of _LOAD_FAST: called with (uop, "
              "state), returns (the state with the local's item pushed, None).",
    .tp_basicsize = sizeof(TransferObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = load_fast_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TransferObject, vectorcall),
    .tp_dealloc = (destructor)transfer_dealloc,
    .tp_traverse = (traverseproc)transfer_traverse,
    .tp_clear = (inquiry)transfer_clear,
};

/* ---- StateTransfer: _STORE_FAST, _GUARD_TYPE and _GUARD_LOCAL_TYPE ----
 *
 * After specialization the analysis visits mostly typed uops; when a pass
 * inserts uops (guard_loop_entries) it analyzes the trace again, and the
 * transfers of these three, as Python, were some 40 % of that analysis (a
 * frame each, and State.store or State.refine under it):
 *
 *   _STORE_FAST        state.store(uop.oparg, state.stack[-1].type, pops=1)
 *   _GUARD_TYPE        the item uop.oparg from the top proven to be
 *                      uop.operand0.value: state.refine(its local) if it was
 *                      loaded from a bound local, the state itself if its type
 *                      is that already, else the item replaced
 *   _GUARD_LOCAL_TYPE  state.refine(uop.oparg, uop.operand0.value)
 *
 * (cpjit/analysis.py State.store, State.refine; the Python functions are
 * kept in tests/test_transfer.py as the reference.)  Each returns (the
 * state after, None).
 */

enum { T_STORE_FAST, T_GUARD_TYPE, T_GUARD_LOCAL_TYPE };
static const char *const state_transfer_names[] = {"_STORE_FAST", "_GUARD_TYPE",
                                                   "_GUARD_LOCAL_TYPE"};

static PyObject *s_value, *s_describe;

/* Item `item`'s alias (the local it was loaded from, -1 for none), or -2
 * with a TypeError if it is not an Item of an int alias. */
static Py_ssize_t
item_alias(PyObject *item)
{
    PyObject *alias = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 3
                      ? PyTuple_GET_ITEM(item, 1) : NULL;
    if (alias == NULL || !PyLong_Check(alias)) {
        PyErr_Format(PyExc_TypeError, "StateTransfer: a stack item must be an Item "
                     "(type, alias, hint) with an int alias, not %R", item);
        return -2;
    }
    Py_ssize_t value = PyLong_AsSsize_t(alias);
    if (value == -1 && PyErr_Occurred()) {
        return -2;
    }
    return value < -1 ? -1 : value;
}

/* A new Item (type, alias, hint), the three borrowed. */
static PyObject *
make_item(TransferObject *self, PyObject *type, PyObject *alias, PyObject *hint)
{
    PyObject *values[3] = {Py_NewRef(type), Py_NewRef(alias), Py_NewRef(hint)};
    return new_named(self->item_type, values, 3);
}

/* (State(stack, locals), None), the two stolen. */
static PyObject *
outcome_of(TransferObject *self, PyObject *stack, PyObject *locals)
{
    if (stack == NULL || locals == NULL) {
        Py_XDECREF(stack);
        Py_XDECREF(locals);
        return NULL;
    }
    PyObject *values[2] = {stack, locals};
    PyObject *after = new_named(self->state_type, values, 2);
    if (after == NULL) {
        return NULL;
    }
    PyObject *outcome = PyTuple_Pack(2, after, Py_None);
    Py_DECREF(after);
    return outcome;
}

/* `locals` with item `index` set to `value` (itself if it already is): new reference. */
static PyObject *
replaced(PyObject *locals, Py_ssize_t index, PyObject *value)
{
    Py_ssize_t n = PyTuple_GET_SIZE(locals);
    if (index < 0 || index >= n) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    if (PyTuple_GET_ITEM(locals, index) == value) {
        return Py_NewRef(locals);
    }
    PyObject *copy = PyTuple_New(n);
    if (copy == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(copy, i, Py_NewRef(i == index ? value : PyTuple_GET_ITEM(locals, i)));
    }
    return copy;
}

/* The first `n` items of `stack` with each loaded from local `index` made
 * another Item: (`type` or, if NULL, its own type; `alias` or, if NULL, its
 * own alias; its hint).  `changed` says whether some was.  New reference. */
static PyObject *
realiased(TransferObject *self, PyObject *stack, Py_ssize_t n, Py_ssize_t index,
          PyObject *type, PyObject *alias, int *changed)
{
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        return NULL;
    }
    *changed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(stack, i);
        Py_ssize_t own = item_alias(item);
        if (own == -2) {
            Py_DECREF(out);
            return NULL;
        }
        if (own != index) {
            PyTuple_SET_ITEM(out, i, Py_NewRef(item));
            continue;
        }
        PyObject *made = make_item(self, type != NULL ? type : PyTuple_GET_ITEM(item, 0),
                                   alias != NULL ? alias : PyTuple_GET_ITEM(item, 1),
                                   PyTuple_GET_ITEM(item, 2));
        if (made == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, made);
        *changed = 1;
    }
    return out;
}

/* State.refine(index, proven): (the state after, None). */
static PyObject *
refine(TransferObject *self, PyObject *state, Py_ssize_t index, PyObject *index_obj,
       PyObject *proven)
{
    PyObject *stack, *locals;
    if (state_parts("StateTransfer", state, &stack, &locals) < 0) {
        return NULL;
    }
    int changed;
    PyObject *new_stack = realiased(self, stack, PyTuple_GET_SIZE(stack), index, proven,
                                    index_obj, &changed);
    if (new_stack == NULL) {
        return NULL;
    }
    if (changed) {
        int same = PyObject_RichCompareBool(new_stack, stack, Py_EQ);
        if (same < 0) {
            Py_DECREF(new_stack);
            return NULL;
        }
        changed = !same;
    }
    if (!changed) {
        Py_SETREF(new_stack, Py_NewRef(stack));
    }
    PyObject *new_locals = replaced(locals, index, proven);
    if (new_locals == NULL) {
        Py_DECREF(new_stack);
        return NULL;
    }
    if (new_stack == stack && new_locals == locals) {
        Py_DECREF(new_stack);
        Py_DECREF(new_locals);
        return PyTuple_Pack(2, state, Py_None);
    }
    return outcome_of(self, new_stack, new_locals);
}

/* The uop's oparg as an index from 0, or -1 with an error. */
static Py_ssize_t
uop_index(PyObject *uop, const Py_ssize_t offsets[F_COUNT], PyObject **oparg)
{
    *oparg = cpjit_uop_field(offsets, uop, 0, F_OPARG);
    if (*oparg == NULL) {
        return -1;
    }
    Py_ssize_t value = PyLong_Check(*oparg) ? PyLong_AsSsize_t(*oparg) : -1;
    if (value < 0 && !PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "StateTransfer: the uop's oparg must be an int from 0, "
                     "not %R", *oparg);
    }
    return value < 0 ? -1 : value;
}

static PyObject *
store_fast(TransferObject *self, PyObject *uop, const Py_ssize_t offsets[F_COUNT],
           PyObject *state)
{
    PyObject *stack, *locals, *oparg;
    Py_ssize_t index = uop_index(uop, offsets, &oparg);
    if (index < 0 || state_parts("StateTransfer", state, &stack, &locals) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(stack);
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    PyObject *top = PyTuple_GET_ITEM(stack, n - 1);
    if (item_alias(top) == -2) {   /* (not an Item) */
        return NULL;
    }
    PyObject *value = PyTuple_GET_ITEM(top, 0);
    int changed;
    /* (the items loaded from the local no longer hold what it holds: no alias) */
    PyObject *minus_one = PyLong_FromLong(-1);
    PyObject *new_stack = minus_one != NULL
                          ? realiased(self, stack, n - 1, index, NULL, minus_one, &changed) : NULL;
    Py_XDECREF(minus_one);
    if (new_stack == NULL) {
        return NULL;
    }
    return outcome_of(self, new_stack, replaced(locals, index, value));
}

static PyObject *
guard_type(TransferObject *self, PyObject *uop, const Py_ssize_t offsets[F_COUNT],
           PyObject *state)
{
    PyObject *stack, *locals, *oparg;
    Py_ssize_t depth = uop_index(uop, offsets, &oparg);
    if (depth < 0 || state_parts("StateTransfer", state, &stack, &locals) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(stack), index = n - depth;
    if (index < 0) {
        PyObject *described = PyObject_CallMethodNoArgs(uop, s_describe);
        if (described != NULL) {
            PyErr_Format(self->error, "%U guards item %zd of %zd", described, depth, n);
            Py_DECREF(described);
        }
        return NULL;
    }
    if (index >= n) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    PyObject *operand0 = cpjit_uop_field(offsets, uop, 0, F_OPERAND0);
    PyObject *guarded = operand0 != NULL ? PyObject_GetAttr(operand0, s_value) : NULL;
    if (guarded == NULL) {
        return NULL;
    }
    PyObject *item = PyTuple_GET_ITEM(stack, index), *result = NULL;
    Py_ssize_t alias = item_alias(item);
    if (alias == -2) {
        goto done;
    }
    if (alias >= 0) {
        if (alias >= PyTuple_GET_SIZE(locals)) {
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
            goto done;
        }
        if (PyTuple_GET_ITEM(locals, alias) != self->unbound) {
            result = refine(self, state, alias, PyTuple_GET_ITEM(item, 1), guarded);
            goto done;
        }
    }
    if (PyTuple_GET_ITEM(item, 0) == guarded) {
        result = PyTuple_Pack(2, state, Py_None);   /* (the very state: see analysis.remove_uops) */
        goto done;
    }
    PyObject *new_stack = PyTuple_New(n);
    if (new_stack == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *made = i != index ? Py_NewRef(PyTuple_GET_ITEM(stack, i))
                                    : make_item(self, guarded, PyTuple_GET_ITEM(item, 1),
                                                PyTuple_GET_ITEM(item, 2));
        if (made == NULL) {
            Py_DECREF(new_stack);
            goto done;
        }
        PyTuple_SET_ITEM(new_stack, i, made);
    }
    result = outcome_of(self, new_stack, Py_NewRef(locals));
done:
    Py_DECREF(guarded);
    return result;
}

static PyObject *
guard_local_type(TransferObject *self, PyObject *uop, const Py_ssize_t offsets[F_COUNT],
                 PyObject *state)
{
    PyObject *oparg;
    Py_ssize_t index = uop_index(uop, offsets, &oparg);
    PyObject *operand0 = index >= 0 ? cpjit_uop_field(offsets, uop, 0, F_OPERAND0) : NULL;
    PyObject *proven = operand0 != NULL ? PyObject_GetAttr(operand0, s_value) : NULL;
    if (proven == NULL) {
        return NULL;
    }
    Py_INCREF(oparg);
    PyObject *result = refine(self, state, index, oparg, proven);
    Py_DECREF(oparg);
    Py_DECREF(proven);
    return result;
}

static PyObject *
state_transfer_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                          PyObject *kwnames)
{
    TransferObject *self = (TransferObject *)callable;
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "StateTransfer takes (uop, state)");
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (cpjit_find_uop_fields((PyObject *)Py_TYPE(args[0]), offsets) < 0) {
        return NULL;
    }
    switch (self->which) {
    case T_STORE_FAST:
        return store_fast(self, args[0], offsets, args[1]);
    case T_GUARD_TYPE:
        return guard_type(self, args[0], offsets, args[1]);
    default:
        return guard_local_type(self, args[0], offsets, args[1]);
    }
}

static PyObject *
state_transfer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"uop_name", "state_type", "item_type", "unbound",
                               "analysis_error", NULL};
    const char *name;
    PyObject *state_type, *item_type, *unbound, *error;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sOOOO:StateTransfer", keywords, &name,
                                     &state_type, &item_type, &unbound, &error)
        || check_named(state_type, "state_type") < 0 || check_named(item_type, "item_type") < 0) {
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "StateTransfer: analysis_error must be an exception "
                        "class");
        return NULL;
    }
    int which = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, state_transfer_names[i]) == 0) {
            which = i;
        }
    }
    if (which < 0) {
        PyErr_Format(PyExc_ValueError, "StateTransfer: no transfer function for %s", name);
        return NULL;
    }
    return transfer_new(type, state_transfer_vectorcall, state_type, item_type, unbound, error,
                        which);
}

static PyObject *
state_transfer_repr(TransferObject *self)
{
    return PyUnicode_FromFormat("<StateTransfer of %s>", state_transfer_names[self->which]);
}

static PyTypeObject StateTransfer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.StateTransfer",
    .tp_doc = "StateTransfer(uop_name, state_type, item_type, unbound, analysis_error)\n--\n\n"
              "The type analysis' transfer function of _STORE_FAST, _GUARD_TYPE or "
              "_GUARD_LOCAL_TYPE: called with (uop, state), returns (the state after, None).",
    .tp_basicsize = sizeof(TransferObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = state_transfer_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TransferObject, vectorcall),
    .tp_dealloc = (destructor)transfer_dealloc,
    .tp_traverse = (traverseproc)transfer_traverse,
    .tp_clear = (inquiry)transfer_clear,
    .tp_repr = (reprfunc)state_transfer_repr,
};

int
cpjit_transfer_types_init(PyObject *module)
{
    if ((s_value == NULL && (s_value = PyUnicode_InternFromString("value")) == NULL)
        || (s_describe == NULL && (s_describe = PyUnicode_InternFromString("describe")) == NULL)) {
        return -1;
    }
    if (PyType_Ready(&LoadFast_Type) < 0 || PyType_Ready(&StateTransfer_Type) < 0) {
        return -1;
    }
    if (PyModule_AddType(module, &LoadFast_Type) < 0) {
        return -1;
    }
    return PyModule_AddType(module, &StateTransfer_Type);
}
