"""The check-in page at the door: a ticket's code, typed or scanned with the camera,
admitted once by orders (``POST /api/checkins``), the answer shown large."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ticketing_web.errors import ApiError
from ticketing_web.rendering import render
from ticketing_web.routes.dependencies import (
    Api,
    FormText,
    SignedIn,
    SignedInCaller,
    WebSettings,
    signed_in,
)
from ticketing_web.schemas import CheckinRead
from ticketing_web.security import scanner_headers
from ticketing_web.settings import Settings

router = APIRouter()

# Which form field shows each API field's message.
CHECKIN_FIELDS = {"code": "code"}

Gate = Annotated[SignedInCaller, Depends(signed_in("/checkin"))]


@dataclass(frozen=True)
class Outcome:
    """What the door is told: ``admitted`` (green), ``already`` (amber) or ``refused`` (red)."""

    kind: Literal["admitted", "already", "refused"]
    heading: str
    message: str


def _outcome(admitted: CheckinRead | None, error: ApiError | None) -> Outcome | None:
    if admitted is not None:
        heading = "Admitted" if admitted.admits == 1 else f"Admit {admitted.admits} people"
        return Outcome("admitted", heading, admitted.ticket.title)
    if error is None:
        return None
    message = " ".join(item.message for item in error.errors)
    if error.status_code == 409:
        return Outcome("already", "Already admitted", message)
    return Outcome("refused", "Not admitted", message)


def _checkin_page(
    request: Request,
    settings: Settings,
    *,
    code: str = "",
    admitted: CheckinRead | None = None,
    error: ApiError | None = None,
) -> HTMLResponse:
    field_errors, _ = error.split(CHECKIN_FIELDS) if error else ({}, [])
    status_code = 201 if admitted is not None else error.status_code if error else 200
    return render(
        request,
        "checkin.html",
        {
            "outcome": _outcome(admitted, error),
            "admitted": admitted,
            # A refused code stays in the field to be corrected; after an answer about a
            # real ticket, the field is empty for the next one.
            "code": code if field_errors else "",
            "field_errors": field_errors,
            # The scanner restarts on the answer's page and must not send the code
            # still in front of the camera again: it skips the one just answered.
            "answered": code,
        },
        status_code=status_code,
        headers={**scanner_headers(settings), **(error.headers() if error else {})},
    )


@router.get("/checkin")
async def checkin_page(request: Request, settings: WebSettings, me: SignedIn) -> HTMLResponse:
    return _checkin_page(request, settings)


@router.post("/checkin")
async def check_in(
    request: Request, api: Api, settings: WebSettings, gate: Gate, code: FormText = ""
) -> HTMLResponse:
    """Admit the ticket of ``code``; the API's answer (201, 409, 403, 400) is the page's."""
    code = code.strip()  # pasted codes come with spaces and line ends
    try:
        admitted = await api.check_in(gate.caller, code)
    except ApiError as error:
        return _checkin_page(request, settings, code=code, error=error)
    return _checkin_page(request, settings, code=code, admitted=admitted)
