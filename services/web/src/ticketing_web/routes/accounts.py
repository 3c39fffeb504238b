"""Signing up, signing in and signing out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ticketing_web.api_client import AuthAction, Caller, MarketplaceApi
from ticketing_web.errors import ApiError, SignInRequired
from ticketing_web.rendering import redirect, render
from ticketing_web.routes.dependencies import Api, CallerDep, FormText, with_cookies
from ticketing_web.service import safe_next

router = APIRouter()

# Which form field shows each API field's message.
AUTH_FIELDS = {"email": "email", "password": "password"}


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
        headers=error.headers() if error else None,
    )


def _form_page(action: AuthAction) -> Callable[[Request, str | None], Awaitable[HTMLResponse]]:
    async def form_page(request: Request, next: str | None = None) -> HTMLResponse:
        return _auth_form(request, f"{action}.html", next_path=safe_next(next))

    return form_page


def _submit(
    action: AuthAction,
) -> Callable[[Request, MarketplaceApi, Caller, str, str, str], Awaitable[Response]]:
    async def submit(
        request: Request,
        api: Api,
        caller: CallerDep,
        email: FormText = "",
        password: FormText = "",
        next: FormText = "/",
    ) -> Response:
        """Sign up or sign in through auth, then go on (its cookie relayed), or show
        the form again with the errors and the email kept."""
        next_path = safe_next(next)
        try:
            result = await api.authenticate(caller, action, email=email.strip(), password=password)
        except ApiError as error:
            return _auth_form(
                request, f"{action}.html", email=email, next_path=next_path, error=error
            )
        return with_cookies(redirect(next_path), result)

    return submit


# Signing up and signing in: the same form (email, password, where to go next) and
# the same answer, each through its own auth endpoint.
for _action in get_args(AuthAction):
    router.add_api_route(f"/{_action}", _form_page(_action), methods=["GET"])
    router.add_api_route(f"/{_action}", _submit(_action), methods=["POST"])


@router.post("/signout")
async def sign_out(api: Api, caller: CallerDep) -> Response:
    result = await api.sign_out(caller)
    return with_cookies(redirect("/"), result)


@router.post("/signout/everywhere")
async def sign_out_everywhere(api: Api, caller: CallerDep) -> Response:
    """End every session of the visitor's account, on every browser and device."""
    try:
        result = await api.sign_out_everywhere(caller)
    except ApiError as error:
        if error.status_code == 401:
            raise SignInRequired("/") from None  # no session left to sign out from here
        raise
    return with_cookies(redirect("/"), result)
