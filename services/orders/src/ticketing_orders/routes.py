"""Orders' HTTP routes (SPEC §3): ``router`` under the spec's prefix ``/api/orders``,
``checkins_router`` under ``/api/checkins`` (docs/after-purchase.md).
Thin: parse, call the service, answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse

from ticketing_common.admission import AdmissionCodes
from ticketing_common.db import DbSession
from ticketing_common.errors import TooManyRequests
from ticketing_common.metrics import Metrics, Outcomes
from ticketing_common.session import RequiredUser
from ticketing_common.state import components_of, provided
from ticketing_common.validation import path_id
from ticketing_orders import service
from ticketing_orders.errors import NotEnoughTicketsLeft, OrderNotFound, TicketAlreadyReserved
from ticketing_orders.schemas import (
    AlreadyAdmittedBody,
    CheckInCreate,
    CheckInRead,
    OrderCreate,
    OrderRead,
)
from ticketing_orders.service import HoldRules, TakenTickets
from ticketing_orders.settings import Settings
from ticketing_orders.throttle import OrderThrottle

router = APIRouter(tags=["orders"])
checkins_router = APIRouter(tags=["checkins"])


class ReservationMetrics(Outcomes):
    """How buyers' attempts to reserve a ticket end."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(
            metrics,
            "ticketing_orders_reservations",
            "Attempts to reserve a ticket (POST /api/orders) by outcome: reserved (201, "
            "committed), conflict (409: someone else holds it, or too few units are left), "
            "refused (429: hold limit, re-order cool-down or rate limit), rejected (another "
            "4xx, a withdrawn ticket too), failed (anything else).",
            success="reserved",
            errors=[
                (TicketAlreadyReserved, "conflict"),
                (NotEnoughTicketsLeft, "conflict"),
                (TooManyRequests, "refused"),
            ],
        )


OrdersSettings = Annotated[Settings, Depends(provided(Settings))]
Codes = Annotated[AdmissionCodes, Depends(provided(AdmissionCodes))]


async def _order_id(order_id: str) -> UUID:  # async: FastAPI runs a plain def in a thread
    return path_id(order_id, OrderNotFound())


# The purchase's own dependencies look their components up themselves rather than
# through ``provided``: each dependency FastAPI solves costs CPU on every order.


async def _count_reservation(request: Request) -> AsyncIterator[None]:
    """Counts the attempt's outcome. The route's first dependency, so it also sees the
    rate limit's 429 and, ending last, the session's commit (a reservation counts once
    it is stored)."""
    async with components_of(request.app).get(ReservationMetrics).counting():
        yield


async def _order_rate(request: Request, user: RequiredUser) -> None:
    """429 before any work when the buyer or their address orders too fast."""
    await components_of(request.app).get(OrderThrottle).order_attempt(request, user.id)


# Read from the settings once, at start-up (app.py), not on every order.
Rules = Annotated[HoldRules, Depends(provided(HoldRules))]
Taken = Annotated[TakenTickets, Depends(provided(TakenTickets))]
OrderId = Annotated[UUID, Depends(_order_id)]


@router.get("")
async def list_orders(session: DbSession, user: RequiredUser, codes: Codes) -> list[OrderRead]:
    orders = await service.orders_of_user(session, user_id=user.id)
    return [OrderRead.of(order, codes) for order in orders]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(_count_reservation, scope="function"), Depends(_order_rate)],
)
async def create_order(
    body: OrderCreate,
    session: DbSession,
    user: RequiredUser,
    rules: Rules,
    taken: Taken,
    codes: Codes,
) -> OrderRead:
    order = await service.create_order(
        session,
        user_id=user.id,
        ticket_id=body.ticket_id,
        quantity=body.quantity,
        rules=rules,
        taken=taken,
    )
    return OrderRead.of(order, codes)


@router.get("/{order_id}")
async def get_order(
    order_id: OrderId, session: DbSession, user: RequiredUser, codes: Codes
) -> OrderRead:
    order = await service.order_of_user(session, user_id=user.id, order_id=order_id)
    return OrderRead.of(order, codes)


@router.post("/{order_id}/refund")
async def refund_order(
    order_id: OrderId,
    session: DbSession,
    user: RequiredUser,
    settings: OrdersSettings,
    codes: Codes,
) -> OrderRead:
    order = await service.refund_order(
        session,
        user_id=user.id,
        order_id=order_id,
        window=timedelta(seconds=settings.REFUND_WINDOW_SECONDS),
    )
    return OrderRead.of(order, codes)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_order(order_id: OrderId, session: DbSession, user: RequiredUser) -> Response:
    await service.cancel_order(session, user_id=user.id, order_id=order_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@checkins_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckInRead,
    responses={status.HTTP_409_CONFLICT: {"model": AlreadyAdmittedBody}},
)
async def check_in(
    body: CheckInCreate, session: DbSession, user: RequiredUser, codes: Codes
) -> CheckInRead | Response:
    checked = await service.check_in(
        session, codes=codes, code=body.code, seller_id=user.id, email=user.email
    )
    if not checked.first:
        # Not an error type: the 409 carries the first admission, for the gate to show.
        already = AlreadyAdmittedBody.of(checked.admission)
        return JSONResponse(
            already.model_dump(mode="json", by_alias=True, exclude_none=True),
            status_code=status.HTTP_409_CONFLICT,
        )
    return CheckInRead.of(checked.order, checked.admission)
