/* Frame bookkeeping, control flow and the ways out of machine code.
 *
 * Format of every file in stencils/uops/ (read by cpjit/_build/uopdefs.py):
 *
 *     // What the uop does (the comment lines right above are its doc).
 *     UOP(_NAME, (input, array[size] -- output), FLAGS) {
 *         C body
 *     }
 *
 * Inputs and outputs are stack items, deepest first; `array[size]` is a run
 * of items whose count is a C expression of `oparg`.  FLAGS is 0 or
 * ESCAPES (the uop may run arbitrary Python code: a call, a __dunder__, a
 * finalizer that matters), optionally with SYNCS_FRAME (an escaping uop that
 * publishes its own instruction pointer and checks for tracing, so the
 * translator adds no bookkeeping uops around it).  What a uop can do besides
 * falling through is
 * read from its body: DEOPT_IF (side exit), ERROR_IF / ERROR_KEEP_IF
 * (exception), JUMP_IF / JUMP_POPPING / JUMP (branch), `return` (leaves
 * machine code).
 */

// Record the instruction being run (frame->prev_instr = operand0), so that
// tracebacks, sys._getframe().f_lineno and the frame's completeness see it.
// Placed before every instruction that can escape.
UOP(_SET_IP, ( -- ), 0) {
    frame->prev_instr = (_Py_CODEUNIT *)operand0;
}

// Eval breaker check (RESUME, back-edges): signals (Ctrl-C), pending calls,
// requests to drop the GIL.  The instruction is published only on the slow
// path.  Errors raise here; what the runtime leaves to the interpreter (an
// asynchronous exception, tracing turned on by a signal handler) side-exits:
// the interpreter redoes the check.
UOP(_CHECK_EVAL_BREAKER, ( -- ), ESCAPES | SYNCS_FRAME) {
    if (UNLIKELY(CPJIT_EVAL_BREAKER(tstate))) {
        SET_IP();
        int status = cpjit_handle_pending(tstate);
        ERROR_KEEP_IF(status < 0);
        DEOPT_IF(status > 0 || CPJIT_TRACING(tstate));
    }
}

// The eval breaker check of a back-edge in a loop whose locals live unboxed:
// a GIL hand-off is done here; anything else (a signal, a pending call)
// side-exits (the exit boxes the locals) and the interpreter handles it.
UOP(_CHECK_EVAL_BREAKER_UNBOXED, ( -- ), 0) {
    if (UNLIKELY(CPJIT_EVAL_BREAKER(tstate))) {
        DEOPT_IF(cpjit_handle_gil_request(tstate));
    }
}

// After code that can run arbitrary Python code: if that code turned tracing
// or profiling on (sys.settrace, pdb, coverage), leave to the interpreter,
// which then reports the events of the rest of the frame.
UOP(_CHECK_TRACING, ( -- ), 0) {
    DEOPT_IF(CPJIT_TRACING(tstate));
}

// Leave to the interpreter unconditionally: the instruction is not compiled.
UOP(_SIDE_EXIT, ( -- ), 0) {
    DEOPT_IF(1);
}

// Unconditional jump.
UOP(_JUMP, ( -- ), 0) {
    JUMP();
}

// Return from the frame.  The stack is empty below `retval`.  The frame
// records the RETURN_VALUE as its last instruction (a frame object that
// outlives the call shows its line).
UOP(_RETURN_VALUE, (retval -- ), 0) {
    SET_IP();
    _PyFrame_SetStackPointer(frame, stack_pointer - 1);
    return retval;
}

// MAKE_CELL: turn local `oparg` into a cell holding its current value.
UOP(_MAKE_CELL, ( -- ), 0) {
    PyObject *initial = GETLOCAL(oparg);
    PyObject *cell = PyCell_New(initial);
    ERROR_KEEP_IF(cell == NULL);
    GETLOCAL(oparg) = cell;
    Py_XDECREF(initial);
}

// COPY_FREE_VARS: copy the `oparg` cells of the closure into the frame's
// free-variable slots, which start at operand0.
UOP(_COPY_FREE_VARS, ( -- ), 0) {
    PyObject *closure = frame->f_func->func_closure;
    int offset = (int)operand0;
    for (int i = 0; i < oparg; i++) {
        PyObject *cell = PyTuple_GET_ITEM(closure, i);
        Py_INCREF(cell);
        GETLOCAL(offset + i) = cell;
    }
}

// Record the types of the top `oparg` stack items (deepest in the low bits,
// 16 bits each) in the word at operand0: the profile of a first compilation,
// read back as feedback when the function is compiled again.
UOP(_PROFILE, ( -- ), 0) {
    uint64_t bits = 0;
    for (int i = 0; i < oparg; i++) {
        bits |= (uint64_t)cpjit_type_bit(PEEK(oparg - i)) << (16 * i);
    }
    *(uint64_t *)operand0 |= bits;
}

// RAISE_VARARGS 1 or 2: raise args[0] (from args[1]).  The bare `raise` (0)
// is left to the interpreter: it re-raises without a new traceback entry.
UOP(_RAISE_VARARGS, (args[oparg] -- ), ESCAPES | SYNCS_FRAME) {
    SET_IP();
    cpjit_raise(tstate, args[0], oparg == 2 ? args[1] : NULL);
    ERROR_IF(1);
}

// Record the kind of callable a CALL with oparg arguments meets (a bit of
// cpjit_call_kind_bit) into operand0, for the next compilation.
UOP(_PROFILE_CALL, ( -- ), 0) {
    *(uint64_t *)operand0 |= cpjit_call_kind_bit(PEEK(oparg + 2), PEEK(oparg + 1), oparg);
}

/* ---- stubs: placed by the emitter after the uops, not by the translator ---- */

// Side-exit stub: operand0 is the exit's record (csrc/runtime.h): the runtime
// counts the exit, boxes what the machine code held unboxed and points the
// frame at the resume instruction for the interpreter.
UOP(_EXIT_STUB, ( -- ), 0) {
    return cpjit_side_exit(frame, stack_pointer, state, (const int64_t *)operand0);
}

// Error stub: the exception was raised by the instruction at operand0; the
// interpreter adds the traceback entry and looks for a handler.
UOP(_ERROR_STUB, ( -- ), 0) {
    frame->prev_instr = (_Py_CODEUNIT *)operand0;
    _PyFrame_SetStackPointer(frame, stack_pointer);
    return NULL;
}
