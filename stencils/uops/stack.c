/* Locals, constants, cells and plain stack shuffling. */

// LOAD_FAST / LOAD_CLOSURE: push local `oparg`.  An unbound local side-exits
// so that the interpreter raises its UnboundLocalError.
UOP(_LOAD_FAST, ( -- value), 0) {
    value = GETLOCAL(oparg);
    DEOPT_IF(value == NULL);
    Py_INCREF(value);
}

// STORE_FAST: pop into local `oparg`.
UOP(_STORE_FAST, (value -- ), 0) {
    PyObject *old = GETLOCAL(oparg);
    GETLOCAL(oparg) = value;
    Py_XDECREF(old);
}

// DELETE_FAST: unbind local `oparg` (unbound: the interpreter raises).
UOP(_DELETE_FAST, ( -- ), 0) {
    PyObject *old = GETLOCAL(oparg);
    DEOPT_IF(old == NULL);
    GETLOCAL(oparg) = NULL;
    Py_DECREF(old);
}

// LOAD_CONST (and LOAD_ASSERTION_ERROR): push the object at operand0.
UOP(_LOAD_CONST, ( -- value), 0) {
    value = (PyObject *)operand0;
    Py_INCREF(value);
}

// POP_TOP.
UOP(_POP_TOP, (value -- ), 0) {
    Py_DECREF(value);
}

// PUSH_NULL: the empty slot below a callable.
UOP(_PUSH_NULL, ( -- null), 0) {
    null = NULL;
}

// LOAD_GLOBAL's NULL for a call, put under the global it loaded (a uop of
// its own: the load's stack layout stays fixed, which saves it a dozen
// instructions of address arithmetic).
UOP(_PUSH_NULL_UNDER, (value -- null, top), 0) {
    null = NULL;
    top = value;
}

// COPY: push the item `oparg` deep.
UOP(_COPY, ( -- top), 0) {
    top = PEEK(oparg);
    Py_INCREF(top);
}

// SWAP: exchange the top item with the one `oparg` deep.
UOP(_SWAP, ( -- ), 0) {
    PyObject *top = PEEK(1);
    PEEK(1) = PEEK(oparg);
    PEEK(oparg) = top;
}

// LOAD_DEREF: push the content of cell `oparg` (empty: the interpreter raises).
UOP(_LOAD_DEREF, ( -- value), 0) {
    PyObject *cell = GETLOCAL(oparg);
    value = PyCell_GET(cell);
    DEOPT_IF(value == NULL);
    Py_INCREF(value);
}

// STORE_DEREF: pop into cell `oparg`.
UOP(_STORE_DEREF, (value -- ), 0) {
    PyObject *cell = GETLOCAL(oparg);
    PyObject *old = PyCell_GET(cell);
    PyCell_SET(cell, value);
    Py_XDECREF(old);
}
