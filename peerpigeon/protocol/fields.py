"""Typed reads of optional JSON object fields, shared by the signaling and data codecs.

Each raises `DecodeError` naming the field (or the dotted `path` given) and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import DecodeError

__all__ = ["opt_int", "opt_number", "opt_str"]


def opt_str(
    obj: Mapping[str, object], key: str, *, path: str | None = None, max_length: int | None = None
) -> str | None:
    """``obj[key]`` as a string, or None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(path or key, "must be a string")
    if max_length is not None and len(value) > max_length:
        raise DecodeError(path or key, f"longer than {max_length} characters")
    return value


def opt_int(obj: Mapping[str, object], key: str, *, path: str | None = None) -> int | None:
    """``obj[key]`` as an integer (booleans refused), or None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(path or key, "must be an integer")
    return value


def opt_number(
    obj: Mapping[str, object], key: str, *, path: str | None = None
) -> int | float | None:
    """``obj[key]`` as a finite number (booleans refused), or None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int:  # every int is finite (and math.isfinite overflows on huge ones)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecodeError(path or key, "must be a finite number")
    return value
