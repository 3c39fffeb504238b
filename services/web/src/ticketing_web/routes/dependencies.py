"""What the pages take from a request: the settings, the API client, the caller, the
signed-in visitor, the ids in a path and the text of a form field."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from ticketing_common.ratelimit import client_address, vouch_for_client
from ticketing_common.session import COOKIE_NAME, CurrentUser, UserPayload
from ticketing_common.state import provided
from ticketing_common.validation import path_id
from ticketing_web.api_client import Authenticated, Caller, MarketplaceApi
from ticketing_web.errors import PageNotFound, SignInRequired
from ticketing_web.settings import Settings

Api = Annotated[MarketplaceApi, Depends(provided(MarketplaceApi))]
WebSettings = Annotated[Settings, Depends(provided(Settings))]


def _caller(request: Request, user: CurrentUser, settings: WebSettings) -> Caller:
    # Only a session this service verified is forwarded; anything else is not a session.
    session = request.cookies.get(COOKIE_NAME) if user is not None else None
    address = client_address(request, trust_proxy_headers=settings.TRUST_PROXY_HEADERS)
    vouched = vouch_for_client(address, key=settings.JWT_KEY)
    return Caller(session=session, client_address=address, vouched_client=vouched)


CallerDep = Annotated[Caller, Depends(_caller)]
FormText = Annotated[str, Form()]


@dataclass(frozen=True)
class SignedInCaller:
    """The signed-in visitor, and the caller that makes API calls for them."""

    user: UserPayload
    caller: Caller


def signed_in(
    back_to: str | None = None,
) -> Callable[[Request, UserPayload | None, Caller], AsyncIterator[SignedInCaller]]:
    """The signed-in visitor; anyone else goes to the sign-in page, then back to
    ``back_to`` (a form's page, its ``{names}`` taken from the path), or to the page
    asked for when None. Also when an API stops taking the session mid-request
    (revoked or expired elsewhere): the client raises ``SignInRequired`` then."""

    async def dependency(
        request: Request, user: CurrentUser, caller: CallerDep
    ) -> AsyncIterator[SignedInCaller]:
        page = back_to.format_map(request.path_params) if back_to else None
        if user is None:
            raise SignInRequired(page)
        try:
            yield SignedInCaller(user=user, caller=replace(caller, signed_in=True))
        except SignInRequired:
            raise SignInRequired(page) from None

    return dependency


# A page for signed-in visitors, who come back to it after signing in.
SignedIn = Annotated[SignedInCaller, Depends(signed_in())]


def with_cookies(response: Response, result: Authenticated) -> Response:
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
