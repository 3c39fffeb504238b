"""Payments' HTTP routes (SPEC §3), mounted under the spec's prefix ``/api/payments``.
Thin: parse, call the service, answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, status

from ticketing_common.db import Database
from ticketing_common.session import RequiredUser
from ticketing_common.state import provided
from ticketing_payments import service
from ticketing_payments.provider import PaymentProvider
from ticketing_payments.schemas import PaymentCreate, PaymentRead
from ticketing_payments.service import PaymentMetrics
from ticketing_payments.settings import Settings
from ticketing_payments.throttle import PaymentThrottle

router = APIRouter(tags=["payments"])

Provider = Annotated[PaymentProvider, Depends(provided(PaymentProvider))]
Throttle = Annotated[PaymentThrottle, Depends(provided(PaymentThrottle))]
Payments = Annotated[PaymentMetrics, Depends(provided(PaymentMetrics))]
PaymentsSettings = Annotated[Settings, Depends(provided(Settings))]
# Not DbSession: paying calls Stripe between its transactions, which the service owns.
PaymentsDatabase = Annotated[Database, Depends(provided(Database))]


async def _count_payment(payments: Payments) -> AsyncIterator[None]:
    """Counts the request's outcome; the route's first dependency, so it sees them all."""
    async with payments.counting():
        yield


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(_count_payment, scope="function")],
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
