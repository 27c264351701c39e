/* Iteration. */

// GET_ITER.
UOP(_GET_ITER, (iterable -- iter), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    iter = PyObject_GetIter(iterable);
    Py_DECREF(iterable);
    ERROR_IF(iter == NULL);
    CHECK_TRACING_AFTER();
}

// FOR_ITER: push the next item, or pop the exhausted iterator and jump past
// the loop.  range, list and tuple iterators are stepped inline; others call
// tp_iternext (generators, custom iterators).
UOP(_FOR_ITER, (iter -- iter, next), ESCAPES | SYNCS_FRAME) {
    int escaped = 0;
    PyTypeObject *type = Py_TYPE(iter);
    if (type == &PyRangeIter_Type) {
        cpjit_rangeiterobject *r = (cpjit_rangeiterobject *)iter;
        if (r->index < r->len) {
            next = PyLong_FromLong((long)(r->start + (unsigned long)(r->index++) * r->step));
            ERROR_KEEP_IF(next == NULL);
        }
        else {
            next = NULL;
        }
    }
    else if (type == &PyListIter_Type) {
        cpjit_listiterobject *it = (cpjit_listiterobject *)iter;
        PyListObject *seq = it->it_seq;
        next = NULL;
        if (seq != NULL) {
            if (it->it_index < PyList_GET_SIZE(seq)) {
                next = PyList_GET_ITEM(seq, it->it_index++);
                Py_INCREF(next);
            }
            else {
                it->it_seq = NULL;
                Py_DECREF(seq);
            }
        }
    }
    else if (type == &PyTupleIter_Type) {
        cpjit_tupleiterobject *it = (cpjit_tupleiterobject *)iter;
        PyTupleObject *seq = it->it_seq;
        next = NULL;
        if (seq != NULL) {
            if (it->it_index < PyTuple_GET_SIZE(seq)) {
                next = PyTuple_GET_ITEM(seq, it->it_index++);
                Py_INCREF(next);
            }
            else {
                it->it_seq = NULL;
                Py_DECREF(seq);
            }
        }
    }
    else {
        SET_IP();
        next = type->tp_iternext(iter);
        escaped = 1;
        if (next == NULL && PyErr_Occurred()) {
            ERROR_KEEP_IF(!PyErr_ExceptionMatches(PyExc_StopIteration));
            PyErr_Clear();
        }
    }
    if (next == NULL) {
        /* The translator checks tracing at the jump target. */
        Py_DECREF(iter);
        JUMP_POPPING(1);
    }
    if (escaped) {
        CHECK_TRACING_AFTER();
    }
}
