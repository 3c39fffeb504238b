"""Fault injection for crash tests: ``crash_point(name)`` kills its own process there.

A service places named crash points where a crash matters (``payments.after_charge``:
the card is charged, nothing is recorded yet). The setting ``FAULT_POINTS`` names
the points to arm and the probability of dying at each, e.g.
``payments.after_charge=1.0,payments.before_record=0.3``. An armed point sends the
process SIGKILL, the one signal nothing can catch or clean up after, so the test
sees exactly what a power cut or an OOM kill leaves behind. Unarmed (the default),
a crash point is a dictionary lookup. The settings refuse ``FAULT_POINTS`` in
production.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
from collections.abc import Mapping

logger = logging.getLogger("ticketing.faults")

_armed: dict[str, float] = {}


def parse_fault_points(text: str) -> dict[str, float]:
    """``"a.b=1.0,c.d=0.3"`` as ``{"a.b": 1.0, "c.d": 0.3}``; a bare name means 1.0.

    Raises ValueError for a probability that is not a number in [0, 1].
    """
    points: dict[str, float] = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        name = name.strip()
        if not name:
            continue
        try:
            probability = float(value) if value.strip() else 1.0
        except ValueError:
            raise ValueError(f"FAULT_POINTS: {item.strip()!r} is not name=probability") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"FAULT_POINTS: the probability of {name} must be in [0, 1]")
        points[name] = probability
    return points


def arm(points: Mapping[str, float]) -> None:
    """Arm exactly these points in this process (an empty mapping disarms them all)."""
    _armed.clear()
    _armed.update(points)
    if points:
        logger.warning("fault injection armed", extra={"fault_points": dict(points)})


def crash_point(name: str) -> None:
    """Die here by SIGKILL if ``name`` is armed (with its probability)."""
    probability = _armed.get(name)
    if not probability or random.random() >= probability:  # noqa: S311 - not cryptography
        return
    logger.warning("fault injected: killing the process", extra={"fault_point": name})
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)
