/* uop.c: _runtime.UOpBase, the C base of cpjit.ir.UOp (a micro-op of a trace).
 *
 * A compilation makes and copies a few hundred uops; as a dataclass, each
 * was made by a Python __init__.  Here construction and replace() are C:
 * the type (and every subclass made with the plain metaclass, see
 * __init_subclass__) is called through a vectorcall of its own, which fills
 * the fields from the argument array with no tuple or dict of arguments.
 *
 * It behaves like the dataclass it replaces: __new__ makes an instance with
 * no field set and __init__ sets them all, with the same fields in the same
 * positional order, the same defaults and the same TypeErrors for calls that
 * do not fit; __eq__ compares every field in order between instances of the
 * very same class; unhashable; a repr like the dataclass's; no __dict__ and
 * no weak references.  The fields are object members (T_OBJECT_EX): one that
 * is not set reads as an AttributeError.  cpjit/ir.py's UOp adds describe();
 * uopfields.c finds the members for layout.c and stackwalk.c.
 */
#include "cpjit.h"

#ifndef Py_T_OBJECT_EX
#include <structmember.h>   /* 3.11: T_OBJECT_EX */
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

/* The fields, in positional order (cpjit/ir.py's UOp documents them). */
enum {
    U_NAME, U_OPARG, U_OPERAND0, U_OPERAND1, U_OFFSET, U_EXIT_TO, U_JUMP_TO, U_COMMENT,
    U_EXIT_AFTER, U_EXIT_STEPS, U_EXIT_AFTER_STEPS, U_COUNT,
};

typedef struct {
    PyObject_HEAD
    PyObject *fields[U_COUNT];   /* NULL: not set (deleted, or __new__ without __init__) */
} UOpObject;

static const char *const field_names[U_COUNT] = {
    "name", "oparg", "operand0", "operand1", "offset", "exit_to", "jump_to", "comment",
    "exit_after", "exit_steps", "exit_after_steps",
};

static PyObject *names[U_COUNT];      /* interned field names */
static PyObject *defaults[U_COUNT];   /* the default of each field (none for name) */

/* The index of the field called `key`, or -1 if none is (-2 with a
 * TypeError if `key` is not a str).  Keyword names are mostly the interned
 * strings themselves. */
static int
field_index(PyObject *key)
{
    for (int i = 0; i < U_COUNT; i++) {
        if (key == names[i]) {
            return i;
        }
    }
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "keywords must be strings");
        return -2;
    }
    for (int i = 0; i < U_COUNT; i++) {
        if (PyUnicode_Compare(key, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Keyword argument `key` = `value` of a call of `type` into `values` (the
 * arguments so far, borrowed).  0 or -1. */
static int
set_keyword(PyTypeObject *type, PyObject *values[U_COUNT], PyObject *key, PyObject *value)
{
    int i = field_index(key);
    if (i == -2) {
        return -1;
    }
    if (i < 0) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                     type->tp_name, key);
        return -1;
    }
    if (values[i] != NULL) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                     type->tp_name, field_names[i]);
        return -1;
    }
    values[i] = value;
    return 0;
}

/* Set the fields of `self` from a call of its type: its positional
 * arguments and its keywords, given as names and values (vectorcall;
 * kwnames may be NULL) or as a dict (kwdict may be NULL), the defaults for
 * the others.  0, or -1 with a TypeError like those of the dataclass's
 * __init__ (and `self` unchanged). */
static int
init_fields(UOpObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
            PyObject *kwdict)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject *values[U_COUNT] = {NULL};   /* borrowed */
    if (nargs > U_COUNT) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 1 to %d positional arguments but %zd were given",
                     type->tp_name, U_COUNT, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = args[i];
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            if (set_keyword(type, values, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) {
                return -1;
            }
        }
    }
    if (kwdict != NULL) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(kwdict, &pos, &key, &value)) {
            if (set_keyword(type, values, key, value) < 0) {
                return -1;
            }
        }
    }
    if (values[U_NAME] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: 'name'",
                     type->tp_name);
        return -1;
    }
    for (int i = 0; i < U_COUNT; i++) {
        /* (NULL before, unless __init__ is called again) */
        Py_XSETREF(self->fields[i], Py_NewRef(values[i] != NULL ? values[i] : defaults[i]));
    }
    return 0;
}

/* __new__: an instance with no fields set (as object.__new__ makes one of a
 * dataclass); __init__ sets them. */
static PyObject *
uop_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    return type->tp_alloc(type, 0);
}

/* __init__(name, oparg=0, ...): every field, as the dataclass's __init__. */
static int
uop_init(UOpObject *self, PyObject *args, PyObject *kwds)
{
    return init_fields(self, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args), NULL,
                       kwds != NULL && PyDict_GET_SIZE(kwds) ? kwds : NULL);
}

/* The type's vectorcall: what type_call does (__new__, then __init__),
 * without making a tuple and a dict of the arguments.  A subclass that has
 * a __new__ or an __init__ of its own is called the ordinary way. */
static PyObject *
uop_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyTypeObject *type = (PyTypeObject *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (type->tp_new != uop_new || type->tp_init != (initproc)uop_init) {
        PyObject *tuple = PyTuple_New(nargs);
        if (tuple == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
        }
        PyObject *kwdict = NULL;
        if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
            kwdict = PyDict_New();
            for (Py_ssize_t k = 0; kwdict != NULL && k < PyTuple_GET_SIZE(kwnames); k++) {
                if (PyDict_SetItem(kwdict, PyTuple_GET_ITEM(kwnames, k), args[nargs + k]) < 0) {
                    Py_CLEAR(kwdict);
                }
            }
            if (kwdict == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
        }
        PyObject *result = Py_TYPE(callable)->tp_call(callable, tuple, kwdict);
        Py_DECREF(tuple);
        Py_XDECREF(kwdict);
        return result;
    }
    UOpObject *self = (UOpObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (init_fields(self, args, nargs, kwnames, NULL) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
uop_traverse(UOpObject *self, visitproc visit, void *arg)
{
    for (int i = 0; i < U_COUNT; i++) {
        Py_VISIT(self->fields[i]);
    }
    return 0;
}

static int
uop_clear(UOpObject *self)
{
    for (int i = 0; i < U_COUNT; i++) {
        Py_CLEAR(self->fields[i]);
    }
    return 0;
}

/* (A subclass's instances come through subtype_dealloc, which untracks them
 * again, deals with the trashcan and drops the reference to their type.) */
static void
uop_dealloc(UOpObject *self)
{
    PyObject_GC_UnTrack(self);
    uop_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The AttributeError of reading field `i` once it was deleted. */
static PyObject *
no_field(UOpObject *self, int i)
{
    PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                 Py_TYPE(self)->tp_name, field_names[i]);
    return NULL;
}

/* Like a dataclass's __eq__: instances of the very same class compare
 * their fields in order as tuples do (identity, then ==); anything else is
 * NotImplemented.  Not ordered. */
static PyObject *
uop_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    UOpObject *x = (UOpObject *)a, *y = (UOpObject *)b;
    for (int i = 0; i < U_COUNT; i++) {   /* (the dataclass builds both tuples first) */
        if (x->fields[i] == NULL) {
            return no_field(x, i);
        }
        if (y->fields[i] == NULL) {
            return no_field(y, i);
        }
    }
    for (int i = 0; i < U_COUNT; i++) {
        int equal = PyObject_RichCompareBool(x->fields[i], y->fields[i], Py_EQ);
        if (equal < 0) {
            return NULL;
        }
        if (!equal) {
            return PyBool_FromLong(op == Py_NE);
        }
    }
    return PyBool_FromLong(op == Py_EQ);
}

/* Like a dataclass's repr: "UOp(name='_LOAD_FAST', oparg=0, ...)", with the
 * class's qualified name, and "..." for a uop inside itself. */
static PyObject *
uop_repr(UOpObject *self)
{
    for (int i = 0; i < U_COUNT; i++) {
        if (self->fields[i] == NULL) {
            return no_field(self, i);
        }
    }
    int entered = Py_ReprEnter((PyObject *)self);
    if (entered != 0) {
        return entered > 0 ? PyUnicode_FromString("...") : NULL;
    }
    PyObject *qualname = PyType_GetQualName(Py_TYPE(self));
    PyObject *text = qualname == NULL ? NULL : PyUnicode_FromFormat(
        "%U(name=%R, oparg=%R, operand0=%R, operand1=%R, offset=%R, exit_to=%R, jump_to=%R, "
        "comment=%R, exit_after=%R, exit_steps=%R, exit_after_steps=%R)", qualname,
        self->fields[0], self->fields[1], self->fields[2], self->fields[3], self->fields[4],
        self->fields[5], self->fields[6], self->fields[7], self->fields[8], self->fields[9],
        self->fields[10]);
    Py_XDECREF(qualname);
    Py_ReprLeave((PyObject *)self);
    return text;
}

/* A copy of `self` (every field set, else an AttributeError): a new uop. */
static UOpObject *
copy_of(UOpObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    UOpObject *copy = (UOpObject *)type->tp_alloc(type, 0);
    if (copy == NULL) {
        return NULL;
    }
    for (int i = 0; i < U_COUNT; i++) {
        if (self->fields[i] == NULL) {
            Py_DECREF(copy);
            return (UOpObject *)no_field(self, i);
        }
        copy->fields[i] = Py_NewRef(self->fields[i]);
    }
    return copy;
}

PyDoc_STRVAR(replace_doc,
"replace(**changes)\n--\n\n"
"A copy with some fields changed (what dataclasses.replace would make, in C). "
"A name that is not a field is set as an attribute (an AttributeError).");

static PyObject *
uop_replace(UOpObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError, "replace() takes no positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    UOpObject *copy = copy_of(self);
    if (copy == NULL) {
        return NULL;
    }
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k), *value = args[k];
        int i = field_index(key);
        if (i >= 0) {
            Py_SETREF(copy->fields[i], Py_NewRef(value));
        }
        else if (i == -2 || PyObject_SetAttr((PyObject *)copy, key, value) < 0) {
            Py_DECREF(copy);
            return NULL;
        }
    }
    return (PyObject *)copy;
}

/* Pickling and copy.copy: the class called with every field. */
static PyObject *
uop_reduce(UOpObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *fields = PyTuple_New(U_COUNT);
    if (fields == NULL) {
        return NULL;
    }
    for (int i = 0; i < U_COUNT; i++) {
        if (self->fields[i] == NULL) {
            Py_DECREF(fields);
            return no_field(self, i);
        }
        PyTuple_SET_ITEM(fields, i, Py_NewRef(self->fields[i]));
    }
    return Py_BuildValue("(ON)", (PyObject *)Py_TYPE(self), fields);
}

/* A subclass made by the plain metaclass would be called through type_call
 * (a tuple and a dict of the arguments, then tp_new, then tp_init): it gets
 * the vectorcall, which checks on every call that it is still right. */
static PyObject *
uop_init_subclass(PyObject *cls, PyObject *Py_UNUSED(ignored))
{
    if (Py_IS_TYPE(cls, &PyType_Type)) {
        ((PyTypeObject *)cls)->tp_vectorcall = uop_vectorcall;
    }
    Py_RETURN_NONE;
}

static PyMethodDef uop_methods[] = {
    {"replace", (PyCFunction)(void (*)(void))uop_replace, METH_FASTCALL | METH_KEYWORDS,
     replace_doc},
    {"__reduce__", (PyCFunction)uop_reduce, METH_NOARGS, NULL},
    {"__init_subclass__", uop_init_subclass, METH_CLASS | METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

#define FIELD(name, i) {name, Py_T_OBJECT_EX, offsetof(UOpObject, fields[i]), 0, NULL}

static PyMemberDef uop_members[] = {
    FIELD("name", U_NAME), FIELD("oparg", U_OPARG), FIELD("operand0", U_OPERAND0),
    FIELD("operand1", U_OPERAND1), FIELD("offset", U_OFFSET), FIELD("exit_to", U_EXIT_TO),
    FIELD("jump_to", U_JUMP_TO), FIELD("comment", U_COMMENT), FIELD("exit_after", U_EXIT_AFTER),
    FIELD("exit_steps", U_EXIT_STEPS), FIELD("exit_after_steps", U_EXIT_AFTER_STEPS),
    {NULL, 0, 0, 0, NULL},
};
#undef FIELD

static PyTypeObject UOpBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cpjit._runtime.UOpBase",
    .tp_doc = "UOpBase(name, oparg=0, operand0=0, operand1=0, offset=-1, exit_to=-1, "
              "jump_to=-1, comment='', exit_after=-1, exit_steps=(), exit_after_steps=())"
              "\n--\n\n"
              "The fields of a uop, made and copied in C (cpjit.ir.UOp is the class).",
    .tp_basicsize = sizeof(UOpObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = uop_new,
    .tp_init = (initproc)uop_init,
    .tp_vectorcall = uop_vectorcall,
    .tp_dealloc = (destructor)uop_dealloc,
    .tp_traverse = (traverseproc)uop_traverse,
    .tp_clear = (inquiry)uop_clear,
    .tp_repr = (reprfunc)uop_repr,
    .tp_richcompare = uop_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_methods = uop_methods,
    .tp_members = uop_members,
};

int
cpjit_uop_type_init(PyObject *module)
{
    for (int i = 0; i < U_COUNT; i++) {
        if (names[i] == NULL
            && (names[i] = PyUnicode_InternFromString(field_names[i])) == NULL) {
            return -1;
        }
    }
    if (defaults[U_OPARG] == NULL) {
        PyObject *zero = PyLong_FromLong(0), *minus_one = PyLong_FromLong(-1);
        PyObject *empty_str = PyUnicode_FromStringAndSize("", 0), *empty_tuple = PyTuple_New(0);
        if (zero == NULL || minus_one == NULL || empty_str == NULL || empty_tuple == NULL) {
            Py_XDECREF(zero);
            Py_XDECREF(minus_one);
            Py_XDECREF(empty_str);
            Py_XDECREF(empty_tuple);
            return -1;
        }
        PyObject *const values[U_COUNT] = {
            [U_OPARG] = zero, [U_OPERAND0] = zero, [U_OPERAND1] = zero, [U_OFFSET] = minus_one,
            [U_EXIT_TO] = minus_one, [U_JUMP_TO] = minus_one, [U_COMMENT] = empty_str,
            [U_EXIT_AFTER] = minus_one, [U_EXIT_STEPS] = empty_tuple,
            [U_EXIT_AFTER_STEPS] = empty_tuple,
        };
        for (int i = U_NAME + 1; i < U_COUNT; i++) {
            defaults[i] = Py_NewRef(values[i]);
        }
        Py_DECREF(zero);
        Py_DECREF(minus_one);
        Py_DECREF(empty_str);
        Py_DECREF(empty_tuple);
    }
    if (PyType_Ready(&UOpBase_Type) < 0) {
        return -1;
    }
    /* The positional order, for pattern matching (as a dataclass has it). */
    PyObject *match_args = PyTuple_New(U_COUNT);
    if (match_args == NULL) {
        return -1;
    }
    for (int i = 0; i < U_COUNT; i++) {
        PyTuple_SET_ITEM(match_args, i, Py_NewRef(names[i]));
    }
    int failed = PyDict_SetItemString(UOpBase_Type.tp_dict, "__match_args__", match_args);
    Py_DECREF(match_args);
    if (failed) {
        return -1;
    }
    PyType_Modified(&UOpBase_Type);
    return PyModule_AddType(module, &UOpBase_Type);
}

PyObject *
cpjit_uop_with_steps(PyObject *uop, PyObject *steps, int after)
{
    PyTypeObject *type = Py_TYPE(uop);
    if (!PyObject_TypeCheck(uop, &UOpBase_Type) || type->tp_new != uop_new) {
        PyErr_Format(PyExc_TypeError, "cpjit: a uop was expected, not %.100s", type->tp_name);
        return NULL;
    }
    UOpObject *copy = copy_of((UOpObject *)uop);
    if (copy == NULL) {
        return NULL;
    }
    Py_SETREF(copy->fields[after ? U_EXIT_AFTER_STEPS : U_EXIT_STEPS], Py_NewRef(steps));
    return (PyObject *)copy;
}
