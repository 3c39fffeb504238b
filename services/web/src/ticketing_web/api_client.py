"""The web client's HTTP client of the marketplace APIs, called through the gateway.

The web service owns no data, so it has no repository: this module is its one
place that talks to the outside. Every call forwards the visitor's own session
(only a session this service verified), the client's address, signed (so the
per-client limits count the browser, not this server) and the request id. The
shared HTTP client keeps no cookies: it serves every visitor, and one visitor's
session must never reach another's request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Literal, TypeVar
from urllib.request import Request as CookieRequest
from uuid import UUID

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ticketing_common.logs import request_id_var
from ticketing_common.ratelimit import VOUCHED_CLIENT_HEADER
from ticketing_common.session import COOKIE_NAME
from ticketing_web.errors import ApiError, SignInRequired, UpstreamFailed
from ticketing_web.schemas import (
    CheckinRead,
    ErrorBody,
    FieldError,
    ListingsRead,
    OrderRead,
    PaymentRead,
    TicketPage,
    TicketRead,
    UserRead,
)
from ticketing_web.settings import Settings

logger = logging.getLogger("ticketing.web.api")

M = TypeVar("M", bound=BaseModel)


class _NoCookies(DefaultCookiePolicy):
    """Refuse every cookie: the client is shared by all visitors."""

    def set_ok(self, cookie: object, request: CookieRequest) -> bool:
        return False

    def return_ok(self, cookie: object, request: CookieRequest) -> bool:
        return False


@dataclass(frozen=True)
class Caller:
    """Who a call is made for: their verified session token and their address."""

    session: str | None = None
    client_address: str | None = None
    vouched_client: str | None = None
    """``client_address`` signed (``vouch_for_client``): the gateway replaces
    ``X-Forwarded-For`` with this server's address, and passes this on."""
    signed_in: bool = False
    """Made for a page that needs a signed-in visitor (``SignedIn``): a 401 then means
    the API no longer takes the session (revoked, expired), not a refused form."""

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.session:
            headers["Cookie"] = f"{COOKIE_NAME}={self.session}"
        if self.client_address:
            headers["X-Forwarded-For"] = self.client_address
        if self.vouched_client:
            headers[VOUCHED_CLIENT_HEADER] = self.vouched_client
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers


AuthAction = Literal["signup", "signin"]


@dataclass
class Authenticated:
    """A signed-in (or signed-out) user and the ``Set-Cookie`` headers to relay."""

    user: UserRead | None
    set_cookies: list[str] = field(default_factory=list)


class MarketplaceApi:
    """One shared ``httpx.AsyncClient`` to the gateway, opened and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.settings.gateway_base,
            timeout=self.settings.UPSTREAM_TIMEOUT_SECONDS,
            cookies=CookieJar(policy=_NoCookies()),
            follow_redirects=False,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the API client is used outside the app's lifespan")
        return self._client

    async def _call(
        self,
        caller: Caller,
        method: str,
        path: str,
        *,
        json: Mapping[str, object] | None = None,
        params: Mapping[str, int] | None = None,
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method, path, json=json, params=params, headers=caller.headers()
            )
        except httpx.HTTPError as error:
            logger.warning(
                "API unreachable",
                extra={"method": method, "path": path, "error": type(error).__name__},
            )
            raise UpstreamFailed() from error
        if response.status_code >= 500 or response.status_code < 200:
            logger.warning(
                "API failed", extra={"method": method, "path": path, "status": response.status_code}
            )
            raise UpstreamFailed()
        if response.status_code == 401 and caller.signed_in:
            raise SignInRequired()
        if response.status_code >= 400:
            raise ApiError(
                response.status_code,
                _errors_of(response),
                retry_after=response.headers.get("Retry-After"),
            )
        return response

    # -- auth --------------------------------------------------------------------------

    async def authenticate(
        self, caller: Caller, action: AuthAction, *, email: str, password: str
    ) -> Authenticated:
        """Sign up or sign in: the user, and auth's session cookie to relay."""
        body = {"email": email, "password": password}
        response = await self._call(caller, "POST", f"/api/users/{action}", json=body)
        return Authenticated(_parse(response, UserRead), _set_cookies(response))

    async def sign_out(self, caller: Caller) -> Authenticated:
        response = await self._call(caller, "POST", "/api/users/signout")
        return Authenticated(None, _set_cookies(response))

    async def sign_out_everywhere(self, caller: Caller) -> Authenticated:
        """End every session of the caller's user (every browser and device)."""
        response = await self._call(caller, "POST", "/api/users/signout/everywhere")
        return Authenticated(None, _set_cookies(response))

    async def renew_session(self, caller: Caller) -> Authenticated:
        """A fresh token for the caller's session; ApiError 401 when the session ended."""
        response = await self._call(caller, "POST", "/api/users/session/renew")
        return Authenticated(_parse(response, UserRead), _set_cookies(response))

    # -- tickets -----------------------------------------------------------------------

    async def tickets_for_sale(self, caller: Caller, *, offset: int, limit: int) -> TicketPage:
        response = await self._call(
            caller, "GET", "/api/tickets", params={"offset": offset, "limit": limit}
        )
        tickets = _parse_list(response, TicketRead)
        return TicketPage(
            tickets=tickets, offset=offset, limit=limit, has_next="next" in response.links
        )

    async def ticket(self, caller: Caller, ticket_id: UUID) -> TicketRead:
        response = await self._call(caller, "GET", f"/api/tickets/{ticket_id}")
        return _parse(response, TicketRead)

    async def create_ticket(
        self, caller: Caller, *, title: str, price: str, quantity: str = ""
    ) -> TicketRead:
        # The price goes as the visitor typed it: the tickets API is the one place that
        # decides what a valid price is, and names the field when it is not. So does the
        # quantity (none typed: a seat).
        body: dict[str, object] = {"title": title, "price": price}
        if quantity.strip():
            body["quantity"] = _whole_number(quantity)
        response = await self._call(caller, "POST", "/api/tickets", json=body)
        return _parse(response, TicketRead)

    async def my_listings(self, caller: Caller) -> ListingsRead:
        return _parse(await self._call(caller, "GET", "/api/tickets/mine"), ListingsRead)

    async def update_ticket(
        self, caller: Caller, ticket_id: UUID, *, title: str, price: str
    ) -> TicketRead:
        body = {"title": title, "price": price}
        response = await self._call(caller, "PUT", f"/api/tickets/{ticket_id}", json=body)
        return _parse(response, TicketRead)

    async def withdraw_ticket(self, caller: Caller, ticket_id: UUID) -> TicketRead:
        response = await self._call(caller, "POST", f"/api/tickets/{ticket_id}/withdraw")
        return _parse(response, TicketRead)

    # -- orders and payments -----------------------------------------------------------

    async def create_order(self, caller: Caller, ticket_id: UUID, quantity: str = "") -> OrderRead:
        """Order a ticket, or ``quantity`` units of a general-admission listing (none
        given: orders' default, one)."""
        body: dict[str, object] = {"ticketId": str(ticket_id)}
        if quantity.strip():
            body["quantity"] = _whole_number(quantity)
        response = await self._call(caller, "POST", "/api/orders", json=body)
        return _parse(response, OrderRead)

    async def orders(self, caller: Caller) -> list[OrderRead]:
        return _parse_list(await self._call(caller, "GET", "/api/orders"), OrderRead)

    async def order(self, caller: Caller, order_id: UUID) -> OrderRead:
        return _parse(await self._call(caller, "GET", f"/api/orders/{order_id}"), OrderRead)

    async def refund(self, caller: Caller, order_id: UUID) -> OrderRead:
        response = await self._call(caller, "POST", f"/api/orders/{order_id}/refund")
        return _parse(response, OrderRead)

    async def check_in(self, caller: Caller, code: str) -> CheckinRead:
        """Admit the ticket of ``code``; ApiError 409 (already admitted), 403, 400."""
        response = await self._call(caller, "POST", "/api/checkins", json={"code": code})
        return _parse(response, CheckinRead)

    async def pay(self, caller: Caller, *, order_id: UUID, token: str) -> PaymentRead:
        body = {"token": token, "orderId": str(order_id)}
        response = await self._call(caller, "POST", "/api/payments", json=body)
        return _parse(response, PaymentRead)


def _whole_number(text: str) -> int | str:
    """A form's number as the JSON number the APIs take; anything else as typed, for the
    API to refuse with its message for that field."""
    try:
        return int(text.strip())
    except ValueError:
        return text


def _set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def _parse(response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        logger.warning("API answered an unexpected body", extra={"url": str(response.url)})
        raise UpstreamFailed() from error


def _parse_list(response: httpx.Response, model: type[M]) -> list[M]:
    try:
        return TypeAdapter(list[model]).validate_json(response.content)  # type: ignore[valid-type]
    except ValidationError as error:
        logger.warning("API answered an unexpected body", extra={"url": str(response.url)})
        raise UpstreamFailed() from error


def _errors_of(response: httpx.Response) -> list[FieldError]:
    try:
        return ErrorBody.model_validate_json(response.content).errors
    except ValidationError:
        return []
