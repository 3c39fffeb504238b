"""Fault injection: FAULT_POINTS arms crash points that kill the process by SIGKILL,
and is refused in production."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from ticketing_common.faults import parse_fault_points
from ticketing_common.settings import ServiceSettings

CHILD = """
from ticketing_common import faults
from ticketing_common.settings import ServiceSettings

settings = ServiceSettings(ENVIRONMENT="test")
faults.arm(settings.FAULT_POINTS)
faults.crash_point("demo.unarmed")
print("passed the unarmed point", flush=True)
faults.crash_point("demo.armed")
print("survived the armed point", flush=True)
"""


def test_fault_points_are_parsed_from_name_equals_probability() -> None:
    assert parse_fault_points("") == {}
    assert parse_fault_points("payments.after_charge=1.0, payments.before_record=0.3") == {
        "payments.after_charge": 1.0,
        "payments.before_record": 0.3,
    }
    assert parse_fault_points("a.b") == {"a.b": 1.0}
    for bad in ("a.b=often", "a.b=1.5", "a.b=-0.1"):
        with pytest.raises(ValueError, match="FAULT_POINTS"):
            parse_fault_points(bad)


def test_settings_read_fault_points_and_refuse_them_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAULT_POINTS", "payments.after_charge=0.3")
    assert ServiceSettings(ENVIRONMENT="development").FAULT_POINTS == {"payments.after_charge": 0.3}
    with pytest.raises(ValidationError, match="refused in production"):
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=secrets.token_hex(32))
    monkeypatch.delenv("FAULT_POINTS")
    assert (
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=secrets.token_hex(32)).FAULT_POINTS == {}
    )


def test_an_armed_crash_point_kills_the_process_by_sigkill() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={"FAULT_POINTS": "demo.armed=1.0", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.splitlines() == ["passed the unarmed point"]
