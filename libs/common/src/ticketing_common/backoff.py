"""Waiting: the one back-off formula every retry in the project uses, and the one way a
worker loop rests without making a stop wait."""

from __future__ import annotations

import asyncio
import contextlib

# 2**16 times the first delay is past every cap in use; bounding the exponent keeps a
# long-failing retry from computing an absurd float.
MAX_DOUBLINGS = 16


def backoff(attempt: int, first: float, cap: float) -> float:
    """The wait after failed try ``attempt`` (1-based): ``first``, doubling each try,
    never more than ``cap``."""
    return float(min(cap, first * 2 ** min(max(0, attempt - 1), MAX_DOUBLINGS)))


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less: a worker loop's rest ends as soon as ``stopping`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
