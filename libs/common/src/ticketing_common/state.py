"""Typed dependencies: the objects an app's routes use, looked up by type, not by name.

An app keeps one ``Components`` on ``app.state.components`` (the service builder puts
the settings, the database, the bus and the service's own parts there); a route
asks for one with ``provided(Kind)``::

    Throttle = Annotated[OrderThrottle, Depends(provided(OrderThrottle))]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

from starlette.applications import Starlette
from starlette.requests import Request

T = TypeVar("T")


class Components:
    """One object per type."""

    def __init__(self, values: Iterable[object] = ()) -> None:
        self._values: dict[type, object] = {}
        for value in values:
            self.add(value)

    def add(self, value: object) -> None:
        kind = type(value)
        if kind in self._values:
            raise ValueError(f"two components of type {kind.__name__}")
        self._values[kind] = value

    def get(self, kind: type[T]) -> T:
        """The component of type ``kind``, else the one component that is an instance of
        it (the shared code asks for ``ServiceSettings``, a service for its ``Settings``).
        A wiring mistake fails loudly."""
        value = self._values.get(kind)
        if value is None:
            matches = [v for v in self._values.values() if isinstance(v, kind)]
            if len(matches) != 1:
                count = "no" if not matches else str(len(matches))
                raise LookupError(f"{count} components of type {kind.__name__}")
            value = matches[0]
        return cast(T, value)

    def find(self, kind: type[T]) -> T | None:
        """Like ``get``, or None when there is no such component."""
        try:
            return self.get(kind)
        except LookupError:
            return None


def components_of(app: Starlette) -> Components:
    components = getattr(app.state, "components", None)
    if not isinstance(components, Components):
        raise TypeError("the app keeps no Components on app.state.components")
    return components


def provided(kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A FastAPI dependency: the app's component of type ``kind``."""

    # A coroutine although it never waits: FastAPI runs a plain function dependency
    # in a worker thread, a hand-off that costs more than the lookup.
    async def dependency(request: Request) -> T:
        return components_of(request.app).get(kind)

    dependency.__name__ = f"provided_{kind.__name__}"
    return dependency
