"""Expiration's HTTP routes: ``GET /stats``, an operator endpoint on the service's own port.

The spec has no ``api_prefix`` (the gateway routes nothing here), so the router is
mounted as-is, like ``/healthz``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ticketing_common.state import provided
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.schemas import LatenessRead

router = APIRouter(tags=["expiration"])

Worker = Annotated[JobWorker, Depends(provided(JobWorker))]


@router.get("/stats", response_model_by_alias=True)
async def stats(worker: Worker) -> LatenessRead:
    return LatenessRead.of(
        worker.stats.summary(), fired=worker.fired, failed_attempts=worker.failed_attempts
    )
