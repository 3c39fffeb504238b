"""The web client's pages (SPEC §6). Thin: read the form, call the API, render or redirect.

Every mutation is a form posting here; the route calls the API and answers with a
303 to the page to show next (post/redirect/get), or re-renders the form with
each error next to its field and the visitor's input kept. Every POST passes the
CSRF check first (``csrf.check``), so a rejected post reaches no API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ticketing_common.session import COOKIE_NAME, CurrentUser
from ticketing_common.state import app_state
from ticketing_common.validation import path_id
from ticketing_web import csrf
from ticketing_web.errors import ApiError, PageNotFound
from ticketing_web.rendering import render, settings_of
from ticketing_web.repository import AuthAction, Authenticated, Caller, MarketplaceApi
from ticketing_web.service import OrderState, order_view, safe_next

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf.check)])

PAGE_SIZE = 20
MAX_OFFSET = 1_000_000_000
TEST_CARDS = (
    ("tok_visa", "Visa 4242 4242 4242 4242 (succeeds)"),
    ("tok_chargeDeclined", "Visa 4000 0000 0000 0002 (declined)"),
)
# Which form field shows each API field's message.
AUTH_FIELDS = {"email": "email", "password": "password"}
TICKET_FIELDS = {"title": "title", "price": "price"}
PAY_FIELDS = {"token": "token"}


def _api(request: Request) -> MarketplaceApi:
    return app_state(request, "api", MarketplaceApi)


def _caller(request: Request, user: CurrentUser) -> Caller:
    # Only a session this service verified is forwarded; anything else is not a session.
    session = request.cookies.get(COOKIE_NAME) if user is not None else None
    address = request.client.host if request.client else None
    return Caller(session=session, client_address=address)


Api = Annotated[MarketplaceApi, Depends(_api)]
CallerDep = Annotated[Caller, Depends(_caller)]
FormText = Annotated[str, Form()]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _to_sign_in(request: Request, back_to: str | None = None) -> RedirectResponse:
    target = back_to or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect("/signin?" + urlencode({"next": target}))


def _with_cookies(response: Response, result: Authenticated) -> Response:
    """Relay auth's ``Set-Cookie`` headers (the session) to the browser."""
    for value in result.set_cookies:
        response.headers.append("set-cookie", value)
    return response


def _ticket_id(ticket_id: str) -> UUID:
    return path_id(ticket_id, PageNotFound())


def _order_id(order_id: str) -> UUID:
    return path_id(order_id, PageNotFound())


TicketId = Annotated[UUID, Depends(_ticket_id)]
OrderId = Annotated[UUID, Depends(_order_id)]


# -- landing ----------------------------------------------------------------------------


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


# -- sign up, sign in, sign out ---------------------------------------------------------


def _auth_form(
    request: Request,
    template: str,
    *,
    email: str = "",
    next_path: str = "/",
    error: ApiError | None = None,
) -> HTMLResponse:
    field_errors, general = error.split(AUTH_FIELDS) if error else ({}, [])
    return render(
        request,
        template,
        {"email": email, "next": next_path, "field_errors": field_errors, "errors": general},
        status_code=error.status_code if error else 200,
    )


@router.get("/signup")
async def sign_up_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _auth_form(request, "signup.html", next_path=safe_next(next))


async def _authenticate(
    request: Request,
    api: MarketplaceApi,
    caller: Caller,
    action: AuthAction,
    *,
    email: str,
    password: str,
    next_path: str,
) -> Response:
    """Sign up or sign in through auth, then go on (its cookie relayed), or show the form
    again with the errors."""
    try:
        result = await api.authenticate(caller, action, email=email.strip(), password=password)
    except ApiError as error:
        template = f"{action}.html"
        return _auth_form(request, template, email=email, next_path=next_path, error=error)
    return _with_cookies(_redirect(next_path), result)


@router.post("/signup")
async def sign_up(
    request: Request,
    api: Api,
    caller: CallerDep,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "/",
) -> Response:
    return await _authenticate(
        request, api, caller, "signup", email=email, password=password, next_path=safe_next(next)
    )


@router.get("/signin")
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _auth_form(request, "signin.html", next_path=safe_next(next))


@router.post("/signin")
async def sign_in(
    request: Request,
    api: Api,
    caller: CallerDep,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "/",
) -> Response:
    return await _authenticate(
        request, api, caller, "signin", email=email, password=password, next_path=safe_next(next)
    )


@router.post("/signout")
async def sign_out(api: Api, caller: CallerDep) -> Response:
    result = await api.sign_out(caller)
    return _with_cookies(_redirect("/"), result)


@router.post("/signout/everywhere")
async def sign_out_everywhere(request: Request, api: Api, caller: CallerDep) -> Response:
    """End every session of the visitor's account, on every browser and device."""
    try:
        result = await api.sign_out_everywhere(caller)
    except ApiError as error:
        if error.status_code == 401:
            return _to_sign_in(request, "/")  # no session left to sign out from here
        raise
    return _with_cookies(_redirect("/"), result)


# -- selling ----------------------------------------------------------------------------


def _sell_form(
    request: Request, *, title: str = "", price: str = "", error: ApiError | None = None
) -> HTMLResponse:
    field_errors, general = error.split(TICKET_FIELDS) if error else ({}, [])
    return render(
        request,
        "sell.html",
        {"title": title, "price": price, "field_errors": field_errors, "errors": general},
        status_code=error.status_code if error else 200,
    )


@router.get("/tickets/new")
async def sell_page(request: Request, user: CurrentUser) -> Response:
    if user is None:
        return _to_sign_in(request)
    return _sell_form(request)


@router.post("/tickets/new")
async def sell(
    request: Request,
    api: Api,
    caller: CallerDep,
    user: CurrentUser,
    title: FormText = "",
    price: FormText = "",
) -> Response:
    if user is None:
        return _to_sign_in(request, "/tickets/new")
    try:
        ticket = await api.create_ticket(caller, title=title, price=price.strip())
    except ApiError as error:
        if error.status_code == 401:
            return _to_sign_in(request, "/tickets/new")
        return _sell_form(request, title=title, price=price, error=error)
    return _redirect(f"/tickets/{ticket.id}")


# -- a ticket and buying it -------------------------------------------------------------


async def _ticket_page(
    request: Request,
    api: Api,
    caller: Caller,
    ticket_id: UUID,
    user: CurrentUser,
    error: ApiError | None = None,
) -> HTMLResponse:
    try:
        ticket = await api.ticket(caller, ticket_id)
    except ApiError as missing:
        if missing.status_code == 404:
            raise PageNotFound() from None
        raise
    return render(
        request,
        "ticket.html",
        {
            "ticket": ticket,
            "own": user is not None and user.id == ticket.user_id,
            "errors": [item.message for item in error.errors] if error else [],
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(
    request: Request, api: Api, caller: CallerDep, ticket_id: TicketId, user: CurrentUser
) -> HTMLResponse:
    return await _ticket_page(request, api, caller, ticket_id, user)


@router.post("/tickets/{ticket_id}/purchase")
async def purchase(
    request: Request, api: Api, caller: CallerDep, ticket_id: TicketId, user: CurrentUser
) -> Response:
    if user is None:
        return _to_sign_in(request, f"/tickets/{ticket_id}")
    try:
        order = await api.create_order(caller, ticket_id)
    except ApiError as error:
        if error.status_code == 401:
            return _to_sign_in(request, f"/tickets/{ticket_id}")
        return await _ticket_page(request, api, caller, ticket_id, user, error)
    return _redirect(f"/orders/{order.id}")


# -- orders and paying ------------------------------------------------------------------


@router.get("/orders")
async def my_orders(
    request: Request, api: Api, caller: CallerDep, user: CurrentUser, paid: str | None = None
) -> Response:
    if user is None:
        return _to_sign_in(request)
    now = datetime.now(UTC)
    views = [order_view(order, now) for order in await api.orders(caller)]
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
    api: Api,
    caller: Caller,
    order_id: UUID,
    error: ApiError | None = None,
    chosen_token: str | None = None,
) -> Response:
    try:
        order = await api.order(caller, order_id)
    except ApiError as missing:
        if missing.status_code == 401:
            return _to_sign_in(request, f"/orders/{order_id}")
        if missing.status_code == 404:
            raise PageNotFound() from None
        raise
    field_errors, general = error.split(PAY_FIELDS) if error else ({}, [])
    return render(
        request,
        "order.html",
        {
            "view": order_view(order, datetime.now(UTC)),
            "stripe_key": settings_of(request).STRIPE_PUBLISHABLE_KEY,
            "test_cards": TEST_CARDS,
            "chosen_token": chosen_token,
            "field_errors": field_errors,
            "errors": general,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, api: Api, caller: CallerDep, order_id: OrderId, user: CurrentUser
) -> Response:
    if user is None:
        return _to_sign_in(request)
    return await _order_page(request, api, caller, order_id)


@router.post("/orders/{order_id}/pay")
async def pay(
    request: Request,
    api: Api,
    caller: CallerDep,
    order_id: OrderId,
    user: CurrentUser,
    token: FormText = "",
) -> Response:
    if user is None:
        return _to_sign_in(request, f"/orders/{order_id}")
    try:
        await api.pay(caller, order_id=order_id, token=token)
    except ApiError as error:
        if error.status_code == 409:
            # Already paid (a second click, a retried post): the order is done.
            return _redirect(f"/orders?{urlencode({'paid': str(order_id)})}")
        return await _order_page(request, api, caller, order_id, error, chosen_token=token)
    return _redirect(f"/orders?{urlencode({'paid': str(order_id)})}")
