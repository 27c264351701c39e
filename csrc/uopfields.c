/* uopfields.c: where the fields of cpjit.ir.UOp are in an instance.
 *
 * layout.c (emit_trace) and stackwalk.c (stack_walk) read every uop of a
 * trace, several fields each: they read them straight from the instance's
 * slots (UOp's fields are object members of its C base, uop.c's UOpBase),
 * found once per call from the type's member descriptors, instead of
 * looking each attribute up.
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

/* Each field is looked up along the type's MRO (as an attribute of its
 * instances would be, but with no Python code run) and must be a member
 * descriptor for an object slot of a type in that MRO, inside that type's
 * instances, so inside every instance of `type` too (the callers read only
 * instances of exactly `type`).
 *
 * The offsets found are kept for the next call with the same type (the
 * passes' scans, uopscan.c, are short, and the lookups cost as much as a
 * scan of a hundred uops) while its version tag stays valid and the same:
 * any change to the type or a base (a property put over a field, say)
 * gives it a new tag, and the fields are looked up again. */
int
cpjit_find_uop_fields(PyObject *type, Py_ssize_t offsets[F_COUNT])
{
    static PyObject *names[F_COUNT];   /* interned, made once */
    static PyTypeObject *known_type;   /* (a strong reference: its address stays its own) */
    static unsigned int known_tag;
    static Py_ssize_t known_offsets[F_COUNT];
    PyTypeObject *t = PyType_Check(type) ? (PyTypeObject *)type : NULL;
    PyObject *mro = t != NULL && t->tp_dict != NULL ? t->tp_mro : NULL;
    if (mro == NULL || !PyTuple_Check(mro)) {
        PyErr_SetString(PyExc_TypeError, "cpjit: the uop type must be a ready type");
        return -1;
    }
    int tagged = (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) != 0 && t->tp_version_tag != 0;
    if (tagged && t == known_type && t->tp_version_tag == known_tag) {
        memcpy(offsets, known_offsets, sizeof known_offsets);
        return 0;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (names[f] == NULL
            && (names[f] = PyUnicode_InternFromString(cpjit_uop_field_names[f])) == NULL) {
            return -1;
        }
        /* (Exact str keys: the lookups run no Python code.) */
        PyObject *descr = NULL;
        for (Py_ssize_t k = 0; descr == NULL && k < PyTuple_GET_SIZE(mro); k++) {
            PyObject *base = PyTuple_GET_ITEM(mro, k);
            PyObject *dict = PyType_Check(base) ? ((PyTypeObject *)base)->tp_dict : NULL;
            if (dict != NULL && PyDict_Check(dict)
                && (descr = PyDict_GetItemWithError(dict, names[f])) == NULL && PyErr_Occurred()) {
                return -1;
            }
        }
        PyTypeObject *owner = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)
                              ? PyDescr_TYPE(descr) : NULL;
        PyMemberDef *member = owner != NULL && PyType_IsSubtype(t, owner)
                              ? ((PyMemberDescrObject *)descr)->d_member : NULL;
        if (member == NULL || member->type != Py_T_OBJECT_EX
            || member->offset < (Py_ssize_t)sizeof(PyObject)
            || member->offset > owner->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)
            || owner->tp_basicsize > t->tp_basicsize) {
            PyErr_Format(PyExc_TypeError, "cpjit: %.100s.%s is not an object slot of its own",
                         t->tp_name, cpjit_uop_field_names[f]);
            return -1;
        }
        offsets[f] = member->offset;
    }
    if (tagged) {
        Py_INCREF(t);
        Py_XSETREF(known_type, t);
        known_tag = t->tp_version_tag;
        memcpy(known_offsets, offsets, sizeof known_offsets);
    }
    return 0;
}
