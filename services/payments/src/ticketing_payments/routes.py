"""Payments' HTTP routes under ``/api/payments`` (SPEC §3). Thin: parse, call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from ticketing_common.db import Database, database_of
from ticketing_common.session import RequiredUser
from ticketing_common.state import app_state
from ticketing_payments import service
from ticketing_payments.provider import PaymentProvider
from ticketing_payments.schemas import PaymentCreate, PaymentRead
from ticketing_payments.settings import Settings
from ticketing_payments.throttle import PaymentThrottle

router = APIRouter(prefix="/api/payments", tags=["payments"])


def _provider(request: Request) -> PaymentProvider:
    return app_state(request, "provider", PaymentProvider)


def _settings(request: Request) -> Settings:
    return app_state(request, "settings", Settings)


def _throttle(request: Request) -> PaymentThrottle:
    return app_state(request, "throttle", PaymentThrottle)


Provider = Annotated[PaymentProvider, Depends(_provider)]
Throttle = Annotated[PaymentThrottle, Depends(_throttle)]
PaymentsSettings = Annotated[Settings, Depends(_settings)]
# Not DbSession: paying calls Stripe between its transactions, which the service owns.
PaymentsDatabase = Annotated[Database, Depends(database_of)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={502: {"description": "The payment provider is unavailable"}},
)
async def create_payment(
    body: PaymentCreate,
    user: RequiredUser,
    database: PaymentsDatabase,
    provider: Provider,
    settings: PaymentsSettings,
    throttle: Throttle,
) -> PaymentRead:
    payment = await service.pay(
        database,
        provider,
        user_id=user.id,
        order_id=body.order_id,
        token=body.token,
        replica_wait_seconds=settings.ORDER_REPLICA_WAIT_SECONDS,
        throttle=throttle,
    )
    return PaymentRead.of(payment)
