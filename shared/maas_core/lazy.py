"""Package attributes imported on first use (PEP 562), so importing a package runs none of its heavy modules.

    __getattr__ = lazy_exports(__name__, {"PreprocessSpec": "spec", ...})

The model-free functions import the plain-Python parts of `preprocess` and `monitoring` without numpy or
onnxruntime (their layers do not carry them), and a cold start imports only what its first request needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `name` comes from `package.<exports[name]>`, imported once."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
