"""Jitting whole modules: jit_module(), and install()/uninstall() for modules imported later."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types

from ._api import jit


def _defined_in(obj, module_name: str) -> bool:
    return getattr(obj, "__module__", None) == module_name


def _wrap_class(cls: type, module_name: str, wrapped: list, seen: set, options: dict) -> None:
    if id(cls) in seen:
        return
    seen.add(id(cls))
    for name, value in list(vars(cls).items()):
        new = None
        if isinstance(value, types.FunctionType) and _defined_in(value, module_name):
            new = jit(value, **options)
            wrapped.append(new)
        elif isinstance(value, (staticmethod, classmethod)):
            inner = value.__func__
            if isinstance(inner, types.FunctionType) and _defined_in(inner, module_name):
                new = type(value)(jit(inner, **options))
                wrapped.append(new.__func__)
        elif isinstance(value, type) and _defined_in(value, module_name):
            _wrap_class(value, module_name, wrapped, seen, options)
        if new is not None:
            try:
                setattr(cls, name, new)
            except (AttributeError, TypeError):
                wrapped.pop()  # an immutable (extension) type


def jit_module(module: types.ModuleType, **options) -> list:
    """Wrap, in place, every function and method (static and class methods too)
    defined in `module`; returns the wrappers.  Functions imported from other
    modules are left alone.  `options` are passed to jit() (strict, warmup, dump)."""
    if not isinstance(module, types.ModuleType):
        raise TypeError(f"cpjit.jit_module() expects a module, got {type(module).__name__}")
    name = module.__name__
    wrapped: list = []
    seen: set = set()
    for attr, value in list(vars(module).items()):
        if isinstance(value, types.FunctionType) and _defined_in(value, name):
            wrapper = jit(value, **options)
            setattr(module, attr, wrapper)
            wrapped.append(wrapper)
        elif isinstance(value, type) and _defined_in(value, name):
            _wrap_class(value, name, wrapped, seen, options)
    return wrapped


class _JitFinder(importlib.abc.MetaPathFinder):
    """Finds modules through the other finders and jits them once executed."""

    def __init__(self, prefixes: tuple[str, ...], options: dict):
        self.prefixes = prefixes
        self.options = options
        self._busy = threading.local()

    def matches(self, fullname: str) -> bool:
        return any(fullname == p or fullname.startswith(p + ".") or
                   (p.endswith(".") and fullname.startswith(p)) for p in self.prefixes)

    def find_spec(self, fullname, path, target=None):
        if not self.matches(fullname) or getattr(self._busy, "active", False):
            return None
        self._busy.active = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.active = False
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _JitLoader(loader, self.options)
        return spec


class _JitLoader(importlib.abc.Loader):
    def __init__(self, loader, options: dict):
        self.loader = loader
        self.options = options

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        jit_module(module, **self.options)

    def __getattr__(self, name):
        return getattr(self.loader, name)


_finder: _JitFinder | None = None


def install(prefixes, **options) -> None:
    """jit_module() every module imported from now on whose name is one of
    `prefixes` or inside one of them (a str or an iterable of str); `options`
    are passed to jit()."""
    global _finder
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    prefixes = tuple(prefixes)
    if not prefixes or not all(isinstance(p, str) and p for p in prefixes):
        raise TypeError("cpjit.install() expects module name prefixes (non-empty str)")
    uninstall()
    _finder = _JitFinder(prefixes, options)
    sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Stop jitting newly imported modules (modules already jitted stay so)."""
    global _finder
    if _finder is not None and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    _finder = None
