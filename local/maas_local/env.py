"""Process environment changes that can be undone, for the local stack and gateway.

maas_core caches boto3 clients and settings per process, so every change drops those caches too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from maas_core.aws_target import reset_maas_caches


class EnvPatch:
    """Set (value) or unset (None) variables; restore() puts back what was there before the first change."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def apply(self, changes: Mapping[str, str | None]) -> None:
        for key, value in changes.items():
            self._saved.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_maas_caches()

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()
        reset_maas_caches()
