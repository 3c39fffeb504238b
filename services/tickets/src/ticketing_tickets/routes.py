"""Tickets' HTTP routes (SPEC §3), mounted under the spec's prefix ``/api/tickets``.
Thin: parse, call the service, answer.

``GET /mine`` is routed before ``GET /{id}``, which would take "mine" for an id.

Paging of ``GET /``: ``?limit=`` (1-100, default 20) and ``?offset=`` (default 0).
The body is a plain JSON list; when the page is full, a ``Link: <...>; rel="next"``
header gives the next page (an empty page ends the list).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from ticketing_common.db import DbSession
from ticketing_common.session import CurrentUser, RequiredUser
from ticketing_common.validation import path_id
from ticketing_tickets import service
from ticketing_tickets.errors import TicketNotFound
from ticketing_tickets.schemas import SellerListingsRead, TicketCreate, TicketRead, TicketWrite

router = APIRouter(tags=["tickets"])

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_OFFSET = 1_000_000_000  # far beyond any page a person reads; keeps OFFSET in range


async def _ticket_id(ticket_id: str) -> UUID:  # async: FastAPI runs a plain def in a thread
    return path_id(ticket_id, TicketNotFound())


TicketId = Annotated[UUID, Depends(_ticket_id)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


@router.get("")
async def list_tickets(
    request: Request,
    response: Response,
    session: DbSession,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[TicketRead]:
    tickets = await service.list_for_sale(session, limit=limit, offset=offset)
    if len(tickets) == limit:
        following = request.url.include_query_params(limit=limit, offset=offset + limit)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [TicketRead.of(ticket) for ticket in tickets]


@router.get("/mine")
async def my_listings(user: RequiredUser, session: DbSession) -> SellerListingsRead:
    return SellerListingsRead.of(await service.listings_of(session, user.id))


@router.get("/{ticket_id}")
async def get_ticket(ticket_id: TicketId, user: CurrentUser, session: DbSession) -> TicketRead:
    viewer_id = None if user is None else user.id
    return TicketRead.of(await service.get_ticket(session, ticket_id, viewer_id))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_ticket(body: TicketCreate, user: RequiredUser, session: DbSession) -> TicketRead:
    return TicketRead.of(await service.create_ticket(session, user.id, body))


@router.put("/{ticket_id}")
async def update_ticket(
    ticket_id: TicketId, body: TicketWrite, user: RequiredUser, session: DbSession
) -> TicketRead:
    return TicketRead.of(await service.update_ticket(session, ticket_id, user.id, body))


@router.post("/{ticket_id}/withdraw")
async def withdraw_ticket(
    ticket_id: TicketId, user: RequiredUser, session: DbSession
) -> TicketRead:
    return TicketRead.of(await service.withdraw_ticket(session, ticket_id, user.id))
