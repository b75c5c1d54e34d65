"""Two start-up costs of third-party packages that qa skips: work those packages do for their own development.

- `skip_override_checks()`: chromadb marks ~160 of its methods with the `overrides` package's `@override`,
  which, as each class is defined, reads the caller's bytecode for the base classes and compares the two
  signatures: ~0.14 s of CPU each time a process imports chromadb (12 % of a `qa ask`). The check can only
  fail on chromadb's own class hierarchy, which its release already passed. The decorator becomes a plain
  marker (it still sets `__override__`).
- `skip_gradio_stub_rewrite()`: at every import, gradio re-derives the type stubs (`.pyi`) of its ~80
  components from their source (reading and parsing each module again) and rewrites any that differ, in
  site-packages: ~0.9 s of the ~2.6 s of CPU that `import gradio` costs `qa chat`. The stubs are for editors; the
  page does not read them.

Each is a no-op once its package is imported, and when the package no longer has the hook it replaces.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any


def skip_override_checks() -> None:
    """Make `overrides.override` a plain marker in this process, before chromadb is imported."""
    if "chromadb" in sys.modules:  # too late to matter
        return
    try:
        import overrides
    except ImportError:  # a chromadb that no longer uses it
        return

    def override(method: Any = None, **_options: Any) -> Any:
        if method is None:  # @override(check_signature=...)
            return override
        with contextlib.suppress(AttributeError, TypeError):
            method.__override__ = True
        return method

    overrides.override = overrides.overrides = override


_STUBS_MODULE = "gradio.component_meta"


class _SkipStubRewrite(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as usual, and once it has run, makes its stub writer do nothing."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _STUBS_MODULE:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: the module is imported once
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = spec.loader if spec else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                setattr(module, "create_or_modify_pyi", _no_stubs)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _no_stubs(*_args: Any, **_kwargs: Any) -> None:
    return None


def skip_gradio_stub_rewrite() -> None:
    """Have gradio, when this process imports it, skip rewriting its components' type stubs."""
    if _STUBS_MODULE in sys.modules or any(isinstance(finder, _SkipStubRewrite) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _SkipStubRewrite())
