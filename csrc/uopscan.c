/* uopscan.c: the scans most passes start with, over a list of uops.
 *
 * A pass looks for the few uops it rewrites (positions: those with one of
 * some names), the jumps into some labels (jumps_into), or lists the names
 * (uop_names).  In Python each is a comprehension that reads an attribute of
 * every uop: about 3 us over a hundred uops, and a compilation runs a dozen
 * over two or three hundred.  Here the fields are read from the slots of
 * instances of exactly `uop_type` (cpjit.ir.UOp, see uopfields.c); any other
 * object in the list is asked for the attribute, as the comprehension did.
 *
 * The list is read by index and may change under a containment check that
 * runs Python code (a container of our own making with __contains__): each
 * step reads the current length and holds the uop it looks at.
 */
#include "cpjit.h"

/* The fields a scan reads, found once per call. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t offsets[F_COUNT];
} Scan;

static int
scan_init(Scan *scan, PyObject *uops, PyObject *uop_type)
{
    if (!PyList_Check(uops)) {
        PyErr_Format(PyExc_TypeError, "cpjit: uops must be a list, not %.100s",
                     Py_TYPE(uops)->tp_name);
        return -1;
    }
    if (cpjit_find_uop_fields(uop_type, scan->offsets) < 0) {
        return -1;
    }
    scan->type = (PyTypeObject *)uop_type;
    return 0;
}

/* Field `f` of `uop` (uop `index`), a new reference, or NULL with an error. */
static PyObject *
scan_field(const Scan *scan, PyObject *uop, Py_ssize_t index, int f)
{
    if (Py_IS_TYPE(uop, scan->type)) {
        PyObject *value = cpjit_uop_field(scan->offsets, uop, index, f);
        return value == NULL ? NULL : Py_NewRef(value);
    }
    return PyObject_GetAttrString(uop, cpjit_uop_field_names[f]);
}

/* Field `f` of uop `i` of the list (a new reference), or NULL with an
 * error; the uop is held while it is read (an attribute may run code). */
static PyObject *
scan_item_field(const Scan *scan, PyObject *uops, Py_ssize_t i, int f)
{
    PyObject *uop = Py_NewRef(PyList_GET_ITEM(uops, i));
    PyObject *value = scan_field(scan, uop, i, f);
    Py_DECREF(uop);
    return value;
}

/* Append index `i` to `found`: 0, or -1 with an error. */
static int
append_index(PyObject *found, Py_ssize_t i)
{
    PyObject *number = PyLong_FromSsize_t(i);
    if (number == NULL) {
        return -1;
    }
    int failed = PyList_Append(found, number);
    Py_DECREF(number);
    return failed;
}

/* uop_names(uops, uop_type): [uop.name for uop in uops]. */
PyObject *
cpjit_uop_names(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type;
    Scan scan;
    if (!PyArg_ParseTuple(args, "OO:uop_names", &uops, &uop_type)
        || scan_init(&scan, uops, uop_type) < 0) {
        return NULL;
    }
    PyObject *found = PyList_New(0);
    for (Py_ssize_t i = 0; found != NULL && i < PyList_GET_SIZE(uops); i++) {
        PyObject *name = scan_item_field(&scan, uops, i, F_NAME);
        if (name == NULL || PyList_Append(found, name) < 0) {
            Py_CLEAR(found);
        }
        Py_XDECREF(name);
    }
    return found;
}

/* uop_positions(uops, uop_type, names): the indexes of the uops whose name
 * is in `names`, in order. */
PyObject *
cpjit_uop_positions(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type, *names;
    Scan scan;
    if (!PyArg_ParseTuple(args, "OOO:uop_positions", &uops, &uop_type, &names)
        || scan_init(&scan, uops, uop_type) < 0) {
        return NULL;
    }
    PyObject *found = PyList_New(0);
    for (Py_ssize_t i = 0; found != NULL && i < PyList_GET_SIZE(uops); i++) {
        PyObject *name = scan_item_field(&scan, uops, i, F_NAME);
        int in = name == NULL ? -1 : PySequence_Contains(names, name);
        Py_XDECREF(name);
        if (in < 0 || (in && append_index(found, i) < 0)) {
            Py_CLEAR(found);
        }
    }
    return found;
}

/* uop_jumps_into(uops, uop_type, targets, label): the indexes of the uops
 * whose jump_to is in `targets`, but for labels (named `label`), in order. */
PyObject *
cpjit_uop_jumps_into(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *uops, *uop_type, *targets, *label;
    Scan scan;
    if (!PyArg_ParseTuple(args, "OOOU:uop_jumps_into", &uops, &uop_type, &targets, &label)
        || scan_init(&scan, uops, uop_type) < 0) {
        return NULL;
    }
    /* Most uops jump nowhere (-1, the one small int): whether -1 is in a set
     * or dict of targets is asked once (other containers every time: their
     * checks may run Python code). */
    PyObject *nowhere = PyLong_FromLong(-1);
    int once = PyAnySet_CheckExact(targets) || PyDict_CheckExact(targets);
    int nowhere_in = nowhere == NULL ? -1 : once ? PySequence_Contains(targets, nowhere) : 0;
    PyObject *found = nowhere_in < 0 ? NULL : PyList_New(0);
    for (Py_ssize_t i = 0; found != NULL && i < PyList_GET_SIZE(uops); i++) {
        PyObject *uop = Py_NewRef(PyList_GET_ITEM(uops, i));
        PyObject *jump_to = scan_field(&scan, uop, i, F_JUMP_TO);
        int in = jump_to == NULL ? -1
                 : jump_to == nowhere && once ? nowhere_in : PySequence_Contains(targets, jump_to);
        Py_XDECREF(jump_to);
        if (in > 0) {  /* (few uops jump: the name is read for those only) */
            PyObject *name = scan_field(&scan, uop, i, F_NAME);
            int is_label = name == NULL ? -1 : PyObject_RichCompareBool(name, label, Py_EQ);
            Py_XDECREF(name);
            in = is_label < 0 ? -1 : !is_label;
        }
        Py_DECREF(uop);
        if (in < 0 || (in && append_index(found, i) < 0)) {
            Py_CLEAR(found);
        }
    }
    Py_XDECREF(nowhere);
    return found;
}
