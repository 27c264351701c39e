"""On a CPython cpjit does not compile for (cpjit/_versions), only the tests that
check it then runs everything in the interpreter apply: the others are skipped
with that reason."""

import pytest

from cpjit import _versions


def pytest_collection_modifyitems(config, items):
    if not _versions.UNSUPPORTED:
        return
    skip = pytest.mark.skip(reason=_versions.UNSUPPORTED)
    for item in items:
        if item.module.__name__ != "test_unsupported":
            item.add_marker(skip)
