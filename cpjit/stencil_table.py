"""Load the stencil table the build step generated for the running interpreter."""

from __future__ import annotations

import functools
import importlib
import sys

from ._stencils import Stencil, UopSpec


class StencilTableMissing(RuntimeError):
    """No table for this interpreter: cpjit was built for another version, or not built."""


@functools.lru_cache(maxsize=None)
def _module():
    name = "stencils_" + sys.implementation.cache_tag.replace("-", "_")
    from . import _versions
    if _versions.UNSUPPORTED:
        raise StencilTableMissing(f"no stencil table: {_versions.UNSUPPORTED}")
    try:
        module = importlib.import_module(f"cpjit._generated.{name}")
    except ImportError as error:
        raise StencilTableMissing(
            f"no stencil table for {sys.implementation.cache_tag} (cpjit/_generated/{name}.py); "
            "reinstall cpjit with this interpreter (pip install -e .) to build it") from error
    if tuple(module.PYTHON) != sys.version_info[:2]:
        raise StencilTableMissing(f"stencil table built for {module.PYTHON}, "
                                  f"running {sys.version_info[:2]}")
    return module


def uops() -> dict[str, UopSpec]:
    """Every uop's metadata, by name."""
    return _module().UOPS


def stencils() -> dict[str, Stencil]:
    """Every stencil (the uops' and the entry shim), by name."""
    return _module().STENCILS


def digest() -> str:
    return _module().DIGEST


def clang_version() -> str:
    return _module().CLANG
