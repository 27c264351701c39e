"""The instructions cpjit decodes (with the bytecode package) are the interpreter's:
same offsets, EXTENDED_ARG prefixes folded in, same arguments and jump targets."""

import dis
import inspect
import json
import textwrap

import pytest

from cpjit._versions import current


def _functions():
    for module in (json.decoder, textwrap, inspect, dis):
        for _, value in sorted(vars(module).items()):
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                yield value
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                yield from (v for _, v in sorted(vars(value).items()) if inspect.isfunction(v))


FUNCTIONS = list(_functions())


def test_some_functions_need_extended_args():
    assert any(i.opname == "EXTENDED_ARG" for f in FUNCTIONS for i in dis.get_instructions(f))


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__qualname__)
def test_decoded_instructions_match_dis(func):
    decoded, _ = current.decode(func.__code__)
    expected = []
    start = None
    for ins in dis.get_instructions(func):
        if ins.opname == "EXTENDED_ARG":
            start = ins.offset if start is None else start
            continue
        target = ins.argval if ins.opcode in dis.hasjabs + dis.hasjrel else None
        expected.append((ins.offset // 2, (ins.offset if start is None else start) // 2,
                         ins.opname, ins.arg, None if target is None else target // 2))
        start = None
    # jumps name the instruction, not its EXTENDED_ARG prefix
    at_start = {start: offset for offset, start, *_ in expected}
    expected = [(o, s, n, a, at_start.get(t, t)) for o, s, n, a, t in expected]
    got = [(i.offset, i.start, i.name, i.arg, i.jump_target) for i in decoded]
    assert got == expected
    offsets = {i.offset for i in decoded}
    assert all(i.next in offsets for i in decoded[:-1]), "fall-through to a non-instruction"


# A loop whose body is longer than 256 code units: its FOR_ITER and JUMP_BACKWARD
# carry EXTENDED_ARG prefixes, and side exits must resume at the prefix.
_BODY = "\n".join(f"        total += x * {k} - (x // {k + 1})" for k in range(40))
_SOURCE = f"""
def long_loop(items, extra):
    total = 0
    for x in items:
{_BODY}
        total += extra
    return total
"""
_namespace = {}
exec(_SOURCE, _namespace)
long_loop = _namespace["long_loop"]


def test_long_loop_has_extended_args():
    names = [i.opname for i in dis.get_instructions(long_loop)]
    assert "EXTENDED_ARG" in names


@pytest.mark.parametrize("items,extra", [
    (list(range(50)), 1),
    (list(range(50)), 2.5),  # floats break the int speculation: side exits
    (iter(range(50)), 1),  # not a list: the FOR_ITER side-exits
    ([2**62] * 5, 1),  # overflow of the unboxed ints
])
def test_long_loop_matches_the_interpreter(items, extra):
    from differential import check
    source = list(items)
    check(long_loop, inputs=lambda: (iter(source) if not isinstance(items, list) else list(source),
                                     extra), calls=3)
