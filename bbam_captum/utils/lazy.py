"""Packages whose public names load on first use (PEP 562), so that importing a light part of the
package (a settings class, the command line's parser) does not import torch and OpenMMLab."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_attributes(package: str, modules: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name that ``modules`` lists under a module
    (relative to the package) is imported from it when first asked for, then kept in the package.

    Example::

        __getattr__ = lazy_attributes(__name__, {".bbam": ("BBAM", "BoxRecord")})
    """
    where = {name: module for module, names in modules.items() for name in names}

    def load(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # asked once: later lookups skip this function
        return value

    return load
