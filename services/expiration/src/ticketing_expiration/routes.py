"""Expiration's HTTP routes: ``GET /stats``, an operator endpoint on the service's own port.

The service has no gateway prefix (nothing public to serve), like ``/healthz``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ticketing_common.state import app_state
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.schemas import LatenessRead

router = APIRouter(tags=["expiration"])


def _worker(request: Request) -> JobWorker:
    return app_state(request, "worker", JobWorker)


@router.get("/stats", response_model_by_alias=True)
async def stats(worker: Annotated[JobWorker, Depends(_worker)]) -> LatenessRead:
    return LatenessRead.of(
        worker.stats.summary(), fired=worker.fired, failed_attempts=worker.failed_attempts
    )
