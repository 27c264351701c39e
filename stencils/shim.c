/* shim.c: the entry of every compiled function.
 *
 * An ordinary C function (the runtime calls it like any other) that calls the
 * first uop with the stencils' calling convention and returns what the
 * machine code returns: the result, NULL for an error, or CPJIT_DEOPT. */
#include "template.h"

PyObject *
_JIT_ENTRY(_PyInterpreterFrame *frame, PyObject **stack_pointer, PyThreadState *tstate,
           JitState *state)
{
    return _JIT_CONTINUE(frame, stack_pointer, tstate, state);
}
