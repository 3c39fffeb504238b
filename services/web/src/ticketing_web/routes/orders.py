"""A visitor's orders, an order's page with its e-ticket, paying for it, downloading the
e-ticket as a PDF and asking for a refund."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ticketing_common.eticket import ETicket, pdf
from ticketing_web.api_client import Caller, MarketplaceApi
from ticketing_web.errors import ApiError, PageNotFound, found
from ticketing_web.rendering import redirect, render
from ticketing_web.routes.dependencies import (
    Api,
    FormText,
    OrderId,
    SignedIn,
    SignedInCaller,
    WebSettings,
    signed_in,
)
from ticketing_web.service import OrderState, order_view

router = APIRouter()

TEST_CARDS = (
    ("tok_visa", "Visa 4242 4242 4242 4242 (succeeds)"),
    ("tok_chargeDeclined", "Visa 4000 0000 0000 0002 (declined)"),
)
# Which form field shows each API field's message.
PAY_FIELDS = {"token": "token"}

# The order's page, where a visitor who must sign in first comes back to (its forms).
Payer = Annotated[SignedInCaller, Depends(signed_in("/orders/{order_id}"))]


@router.get("/orders")
async def my_orders(request: Request, api: Api, me: SignedIn, paid: str | None = None) -> Response:
    now = datetime.now(UTC)
    views = [order_view(order, now) for order in await api.orders(me.caller)]
    just_paid = next((v for v in views if str(v.order.id) == paid), None)
    return render(
        request,
        "orders.html",
        {
            "orders": views,
            "just_paid": just_paid,
            # The payment is taken; the order turns complete when its event reaches
            # orders, a moment later. Until then the page refreshes itself (no JS needed).
            "confirming": just_paid is not None and just_paid.state is not OrderState.COMPLETE,
        },
    )


async def _order_page(
    request: Request,
    api: MarketplaceApi,
    stripe_key: str | None,
    caller: Caller,
    order_id: UUID,
    error: ApiError | None = None,
    chosen_token: str | None = None,
    refund_error: ApiError | None = None,
) -> Response:
    order = await found(api.order(caller, order_id))
    field_errors, general = error.split(PAY_FIELDS) if error else ({}, [])
    error = error or refund_error
    return render(
        request,
        "order.html",
        {
            "view": order_view(order, datetime.now(UTC)),
            "stripe_key": stripe_key,
            "test_cards": TEST_CARDS,
            "chosen_token": chosen_token,
            "field_errors": field_errors,
            "errors": general,
            "refund_errors": [item.message for item in refund_error.errors] if refund_error else [],
        },
        status_code=error.status_code if error else 200,
        headers=error.headers() if error else None,
    )


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, api: Api, settings: WebSettings, order_id: OrderId, me: SignedIn
) -> Response:
    return await _order_page(request, api, settings.STRIPE_PUBLISHABLE_KEY, me.caller, order_id)


@router.post("/orders/{order_id}/pay")
async def pay(
    request: Request,
    api: Api,
    settings: WebSettings,
    order_id: OrderId,
    payer: Payer,
    token: FormText = "",
) -> Response:
    try:
        await api.pay(payer.caller, order_id=order_id, token=token)
    except ApiError as error:
        if error.status_code == 409:
            # Already paid (a second click, a retried post): the order is done.
            return redirect(f"/orders?{urlencode({'paid': str(order_id)})}")
        return await _order_page(
            request,
            api,
            settings.STRIPE_PUBLISHABLE_KEY,
            payer.caller,
            order_id,
            error,
            chosen_token=token,
        )
    return redirect(f"/orders?{urlencode({'paid': str(order_id)})}")


@router.get("/orders/{order_id}/ticket.pdf")
async def ticket_pdf(api: Api, order_id: OrderId, me: SignedIn) -> Response:
    """The e-ticket of the visitor's own complete order, as a PDF to keep or print."""
    order = await found(api.order(me.caller, order_id))
    if order.admission is None:
        raise PageNotFound()  # not paid, or refunded or withdrawn: no ticket to show
    document = pdf(
        ETicket(
            title=order.ticket.title,
            price=order.ticket.price,
            order_id=order.id,
            ticket_id=order.ticket.id,
            code=order.admission.code,
            quantity=order.quantity,
        )
    )
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="ticket-{order.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/orders/{order_id}/refund")
async def refund(
    request: Request, api: Api, settings: WebSettings, order_id: OrderId, buyer: Payer
) -> Response:
    """Ask orders for the money back; its refusal (used, too late) shown on the page."""
    try:
        await api.refund(buyer.caller, order_id)
    except ApiError as error:
        if error.status_code != 409:
            raise
        return await _order_page(
            request,
            api,
            settings.STRIPE_PUBLISHABLE_KEY,
            buyer.caller,
            order_id,
            refund_error=error,
        )
    return redirect(f"/orders/{order_id}")
