"""Stopping on a signal: the first SIGINT/SIGTERM/SIGHUP raises in the main thread,
later ones are only counted, so a stop is never cut short nor hung by a second signal."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType


class StopRequestedError(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP; a BaseException like
    KeyboardInterrupt so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class StopState:
    """What the signal handler knows: whether stopping has begun, and how many signals
    arrived (the handler only counts; it never prints nor takes a lock)."""

    stopping: bool = False
    signals: int = 0


@contextlib.contextmanager
def signals_raise_stop() -> Iterator[StopState]:
    """While inside, the first SIGINT/SIGTERM/SIGHUP raises ``StopRequestedError`` in the
    main thread; later ones are only counted, so cleanup is never cut short. Set
    ``stopping`` before cleaning up for any other reason.

    The handler must not print: it runs between two bytecodes of the main thread, which
    may be holding the printer's lock at that moment (a signal forwarded twice, by
    ``uv run`` and by the terminal, hung the stop that way)."""
    state = StopState()

    def handler(signum: int, frame: FrameType | None) -> None:
        state.signals += 1
        if state.stopping:
            return
        state.stopping = True
        raise StopRequestedError(signum)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in watched}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            # Once stopped, a late duplicate of the signal that stopped us must not turn
            # a clean exit into a death by signal: ignored until the process exits.
            signal.signal(sig, signal.SIG_IGN if state.stopping else old)
