"""Expiration's response bodies (camelCase JSON)."""

from __future__ import annotations

from pydantic import Field

from ticketing_common.schemas import CamelModel
from ticketing_expiration.service import LatenessSummary


class LatenessRead(CamelModel):
    """Lateness (job start - expiresAt) of the last ``window`` firings, in milliseconds.

    The percentiles and the maximum are null until the first firing.
    """

    count: int = Field(description="firings measured (at most window)")
    window: int = Field(description="how many recent firings the figures cover at most")
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    fired: int = Field(description="jobs that published expiration:complete since start")
    failed_attempts: int = Field(description="job runs whose publish failed (each retried)")

    @classmethod
    def of(cls, summary: LatenessSummary, *, fired: int, failed_attempts: int) -> LatenessRead:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return cls(
            count=summary.count,
            window=summary.window,
            p50=ms(summary.p50),
            p90=ms(summary.p90),
            p99=ms(summary.p99),
            max=ms(summary.max),
            fired=fired,
            failed_attempts=failed_attempts,
        )
