"""Small conversions of header and definition values shared by every layer."""

from __future__ import annotations

from typing import Any


def optional_float(value: Any) -> float | None:
    """A header or index value as a float; None when it is missing, empty or not a number."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


__all__ = ["optional_float"]
