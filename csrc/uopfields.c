/* uopfields.c: where the fields of cpjit.ir.UOp are in an instance.
 *
 * layout.c (emit_trace) and stackwalk.c (stack_walk) read every uop of a
 * trace, several fields each: they read them straight from the instance's
 * slots (UOp is a dataclass with slots), found once per call from the type's
 * own member descriptors, instead of looking each attribute up.
 */
#include "cpjit.h"

#ifndef Py_T_OBJECT_EX
#include <structmember.h>   /* 3.11: T_OBJECT_EX */
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

const char *const cpjit_uop_field_names[F_COUNT] = {
    "name", "oparg", "operand0", "operand1", "offset", "exit_to", "jump_to", "exit_after",
    "exit_steps", "exit_after_steps",
};

/* Each member descriptor is checked to be an object slot inside an instance
 * of that very type (the callers read only instances of exactly `type`). */
int
cpjit_find_uop_fields(PyObject *type, Py_ssize_t offsets[F_COUNT])
{
    static PyObject *names[F_COUNT];   /* interned, made once */
    if (!PyType_Check(type) || ((PyTypeObject *)type)->tp_dict == NULL) {
        PyErr_SetString(PyExc_TypeError, "cpjit: the uop type must be a ready type");
        return -1;
    }
    PyTypeObject *t = (PyTypeObject *)type;
    for (int f = 0; f < F_COUNT; f++) {
        if (names[f] == NULL
            && (names[f] = PyUnicode_InternFromString(cpjit_uop_field_names[f])) == NULL) {
            return -1;
        }
        /* (An exact str key: the lookup runs no Python code.) */
        PyObject *descr = PyDict_GetItemWithError(t->tp_dict, names[f]);
        if (descr == NULL && PyErr_Occurred()) {
            return -1;
        }
        PyMemberDef *member = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)
                              && PyDescr_TYPE(descr) == t
                              ? ((PyMemberDescrObject *)descr)->d_member : NULL;
        if (member == NULL || member->type != Py_T_OBJECT_EX
            || member->offset < (Py_ssize_t)sizeof(PyObject)
            || member->offset > t->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_Format(PyExc_TypeError, "cpjit: %.100s.%s is not an object slot of its own",
                         t->tp_name, cpjit_uop_field_names[f]);
            return -1;
        }
        offsets[f] = member->offset;
    }
    return 0;
}
