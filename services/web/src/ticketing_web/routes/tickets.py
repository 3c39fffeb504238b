"""The tickets for sale, selling one, a ticket's page and buying it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from ticketing_common.session import CurrentUser, UserPayload
from ticketing_web.api_client import Caller, MarketplaceApi
from ticketing_web.errors import ApiError, found
from ticketing_web.rendering import redirect, render
from ticketing_web.routes.dependencies import (
    Api,
    CallerDep,
    FormText,
    SignedInCaller,
    TicketId,
    WebSettings,
    signed_in,
)

router = APIRouter()

PAGE_SIZE = 20
MAX_OFFSET = 1_000_000_000
# Which form field shows each API field's message.
TICKET_FIELDS = {"title": "title", "price": "price", "quantity": "quantity"}

# The forms' pages, where a visitor who must sign in first comes back to.
Seller = Annotated[SignedInCaller, Depends(signed_in("/tickets/new"))]
Buyer = Annotated[SignedInCaller, Depends(signed_in("/tickets/{ticket_id}"))]


@router.get("/")
async def landing(
    request: Request,
    api: Api,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    page = await api.tickets_for_sale(caller, offset=offset, limit=PAGE_SIZE)
    return render(
        request,
        "landing.html",
        {
            "page": page,
            "previous_offset": max(0, offset - PAGE_SIZE) if offset > 0 else None,
            "next_offset": offset + PAGE_SIZE if page.has_next else None,
        },
    )


def _sell_form(
    request: Request,
    *,
    title: str = "",
    price: str = "",
    quantity: str = "",
    error: ApiError | None = None,
) -> HTMLResponse:
    field_errors, general = error.split(TICKET_FIELDS) if error else ({}, [])
    return render(
        request,
        "sell.html",
        {
            "title": title,
            "price": price,
            "quantity": quantity,
            "field_errors": field_errors,
            "errors": general,
        },
        status_code=error.status_code if error else 200,
        headers=error.headers() if error else None,
    )


@router.get("/tickets/new", dependencies=[Depends(signed_in())])
async def sell_page(request: Request) -> Response:
    return _sell_form(request)


@router.post("/tickets/new")
async def sell(
    request: Request,
    api: Api,
    seller: Seller,
    title: FormText = "",
    price: FormText = "",
    quantity: FormText = "",
) -> Response:
    try:
        ticket = await api.create_ticket(
            seller.caller, title=title, price=price.strip(), quantity=quantity
        )
    except ApiError as error:
        return _sell_form(request, title=title, price=price, quantity=quantity, error=error)
    return redirect(f"/tickets/{ticket.id}")


async def _ticket_page(
    request: Request,
    api: MarketplaceApi,
    caller: Caller,
    ticket_id: UUID,
    user: UserPayload | None,
    max_units: int,
    error: ApiError | None = None,
    chosen_quantity: str = "1",
) -> HTMLResponse:
    ticket = await found(api.ticket(caller, ticket_id))
    return render(
        request,
        "ticket.html",
        {
            "ticket": ticket,
            "own": user is not None and user.id == ticket.user_id,
            # How many units the buyer may choose: as many as are left, up to orders' cap.
            "quantities": range(1, min(max_units, ticket.units_left) + 1),
            "chosen_quantity": chosen_quantity,
            "errors": [item.message for item in error.errors] if error else [],
        },
        status_code=error.status_code if error else 200,
        headers=error.headers() if error else None,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(
    request: Request,
    api: Api,
    settings: WebSettings,
    caller: CallerDep,
    ticket_id: TicketId,
    user: CurrentUser,
) -> HTMLResponse:
    return await _ticket_page(request, api, caller, ticket_id, user, settings.MAX_UNITS_PER_ORDER)


@router.post("/tickets/{ticket_id}/purchase")
async def purchase(
    request: Request,
    api: Api,
    settings: WebSettings,
    ticket_id: TicketId,
    buyer: Buyer,
    quantity: FormText = "",
) -> Response:
    """Order the ticket, or the chosen number of units of a general-admission listing
    (a seat's form sends no quantity)."""
    try:
        order = await api.create_order(buyer.caller, ticket_id, quantity)
    except ApiError as error:
        return await _ticket_page(
            request,
            api,
            buyer.caller,
            ticket_id,
            buyer.user,
            settings.MAX_UNITS_PER_ORDER,
            error,
            chosen_quantity=quantity,
        )
    return redirect(f"/orders/{order.id}")
