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
    got = [(i.offset, i.start, i.name, i.arg, i.jump_target) for i in decoded]
    assert got == expected
