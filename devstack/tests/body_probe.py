"""A service built on the shared app, for the gateway's limit tests: like tickets'
``POST /api/tickets``, a JSON body for a signed-in user only. Started by uvicorn
(``--factory body_probe:create``) as its own process, so its memory can be measured."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.session import RequiredUser
from ticketing_common.settings import ServiceSettings


class Listing(BaseModel):
    title: str
    price: float


router = APIRouter()


@router.post("/api/tickets", status_code=201)
async def create_listing(listing: Listing, user: RequiredUser) -> Listing:
    return listing


def create() -> FastAPI:
    return create_service_app(
        settings=ServiceSettings(ENVIRONMENT="test", SERVICE_NAME="probe"),
        title="probe",
        routers=[router],
        runtime=ServiceRuntime(),
        configure_logs=False,
    )
