"""Orders' HTTP routes (SPEC §3), mounted under the spec's prefix ``/api/orders``.
Thin: parse, call the service, answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status

from ticketing_common.db import DbSession
from ticketing_common.errors import TooManyRequests
from ticketing_common.metrics import Metrics, Outcomes
from ticketing_common.session import RequiredUser
from ticketing_common.state import provided
from ticketing_common.validation import path_id
from ticketing_orders import service
from ticketing_orders.errors import OrderNotFound, TicketAlreadyReserved
from ticketing_orders.schemas import OrderCreate, OrderRead
from ticketing_orders.service import HoldRules
from ticketing_orders.settings import Settings
from ticketing_orders.throttle import OrderThrottle

router = APIRouter(tags=["orders"])


class ReservationMetrics(Outcomes):
    """How buyers' attempts to reserve a ticket end."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(
            metrics,
            "ticketing_orders_reservations",
            "Attempts to reserve a ticket (POST /api/orders) by outcome: reserved (201, "
            "committed), conflict (409: someone else holds it), refused (429: hold limit, "
            "re-order cool-down or rate limit), rejected (another 4xx), failed (anything else).",
            success="reserved",
            errors=[(TicketAlreadyReserved, "conflict"), (TooManyRequests, "refused")],
        )


OrdersSettings = Annotated[Settings, Depends(provided(Settings))]
Throttle = Annotated[OrderThrottle, Depends(provided(OrderThrottle))]
Reservations = Annotated[ReservationMetrics, Depends(provided(ReservationMetrics))]


def _order_id(order_id: str) -> UUID:
    return path_id(order_id, OrderNotFound())


def _hold_rules(settings: OrdersSettings) -> HoldRules:
    return HoldRules.from_settings(settings)


async def _count_reservation(reservations: Reservations) -> AsyncIterator[None]:
    """Counts the attempt's outcome. The route's first dependency, so it also sees the
    rate limit's 429 and, ending last, the session's commit (a reservation counts once
    it is stored)."""
    async with reservations.counting():
        yield


async def _order_rate(request: Request, user: RequiredUser, throttle: Throttle) -> None:
    """429 before any work when the buyer or their address orders too fast."""
    await throttle.order_attempt(request, user.id)


Rules = Annotated[HoldRules, Depends(_hold_rules)]
OrderId = Annotated[UUID, Depends(_order_id)]


@router.get("")
async def list_orders(session: DbSession, user: RequiredUser) -> list[OrderRead]:
    orders = await service.orders_of_user(session, user_id=user.id)
    return [OrderRead.of(order) for order in orders]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(_count_reservation, scope="function"), Depends(_order_rate)],
)
async def create_order(
    body: OrderCreate, session: DbSession, user: RequiredUser, rules: Rules
) -> OrderRead:
    order = await service.create_order(
        session, user_id=user.id, ticket_id=body.ticket_id, rules=rules
    )
    return OrderRead.of(order)


@router.get("/{order_id}")
async def get_order(order_id: OrderId, session: DbSession, user: RequiredUser) -> OrderRead:
    order = await service.order_of_user(session, user_id=user.id, order_id=order_id)
    return OrderRead.of(order)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_order(order_id: OrderId, session: DbSession, user: RequiredUser) -> Response:
    await service.cancel_order(session, user_id=user.id, order_id=order_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
