"""The seller's dashboard: their listings with where each stands, the sales totals,
editing a listing and withdrawing one from sale."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ticketing_web.api_client import Caller, MarketplaceApi
from ticketing_web.errors import ApiError, PageNotFound, found
from ticketing_web.rendering import redirect, render
from ticketing_web.routes.dependencies import (
    Api,
    FormText,
    SignedIn,
    SignedInCaller,
    TicketId,
    signed_in,
)
from ticketing_web.routes.tickets import TICKET_FIELDS
from ticketing_web.service import LISTING_LABELS

router = APIRouter()

# The pages of the forms, where a visitor who must sign in first comes back to.
Owner = Annotated[SignedInCaller, Depends(signed_in("/dashboard"))]
Editor = Annotated[SignedInCaller, Depends(signed_in("/tickets/{ticket_id}/edit"))]


async def _dashboard(
    request: Request,
    api: MarketplaceApi,
    caller: Caller,
    *,
    refused: UUID | None = None,
    error: ApiError | None = None,
) -> HTMLResponse:
    mine = await api.my_listings(caller)
    return render(
        request,
        "dashboard.html",
        {
            "listings": mine.listings,
            "totals": mine.totals,
            "labels": LISTING_LABELS,
            # A refused withdrawal's message, shown in its listing's row.
            "refused": refused,
            "errors": [item.message for item in error.errors] if error else [],
        },
        status_code=error.status_code if error else 200,
        headers=error.headers() if error else None,
    )


@router.get("/dashboard")
async def dashboard(request: Request, api: Api, me: SignedIn) -> HTMLResponse:
    return await _dashboard(request, api, me.caller)


@router.post("/tickets/{ticket_id}/withdraw")
async def withdraw(request: Request, api: Api, ticket_id: TicketId, owner: Owner) -> Response:
    """Take a listing off sale; tickets refuses one that is reserved or sold (409)."""
    try:
        await api.withdraw_ticket(owner.caller, ticket_id)
    except ApiError as error:
        if error.status_code == 404:
            raise PageNotFound() from None
        return await _dashboard(request, api, owner.caller, refused=ticket_id, error=error)
    return redirect("/dashboard")


def _edit_form(
    request: Request,
    ticket_id: UUID,
    *,
    title: str,
    price: str,
    error: ApiError | None = None,
) -> HTMLResponse:
    field_errors, general = error.split(TICKET_FIELDS) if error else ({}, [])
    return render(
        request,
        "sell.html",
        {
            "editing": ticket_id,
            "title": title,
            "price": price,
            "field_errors": field_errors,
            "errors": general,
        },
        status_code=error.status_code if error else 200,
        headers=error.headers() if error else None,
    )


@router.get("/tickets/{ticket_id}/edit")
async def edit_page(request: Request, api: Api, ticket_id: TicketId, me: SignedIn) -> Response:
    ticket = await found(api.ticket(me.caller, ticket_id))
    if ticket.user_id != me.user.id:
        raise PageNotFound()  # only its seller edits a listing; to anyone else there is none
    return _edit_form(request, ticket_id, title=ticket.title, price=f"{ticket.price:.2f}")


@router.post("/tickets/{ticket_id}/edit")
async def edit(
    request: Request,
    api: Api,
    ticket_id: TicketId,
    editor: Editor,
    title: FormText = "",
    price: FormText = "",
) -> Response:
    try:
        await api.update_ticket(editor.caller, ticket_id, title=title, price=price.strip())
    except ApiError as error:
        if error.status_code == 404:
            raise PageNotFound() from None
        return _edit_form(request, ticket_id, title=title, price=price, error=error)
    return redirect("/dashboard")
