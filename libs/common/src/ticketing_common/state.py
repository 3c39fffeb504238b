"""Typed access to what an app keeps on ``app.state`` (settings, database, ...)."""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")


def app_state(request: Request, name: str, kind: type[T]) -> T:
    """``request.app.state.<name>``, checked to be a ``kind``: a wiring mistake fails loudly."""
    value = getattr(request.app.state, name)
    if not isinstance(value, kind):
        raise TypeError(f"app.state.{name} is {type(value).__name__}, not {kind.__name__}")
    return value
