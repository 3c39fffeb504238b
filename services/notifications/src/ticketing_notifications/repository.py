"""All of notifications' SQL: the replicas and the mails sent."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_notifications.models import Order, SentMail, Ticket, User


async def add_user(session: AsyncSession, *, user_id: UUID, email: str) -> None:
    """The account's address; a redelivered user:created changes nothing."""
    await session.execute(
        insert(User).values(id=user_id, email=email).on_conflict_do_nothing(index_elements=["id"])
    )


async def email_of(session: AsyncSession, user_id: UUID) -> str | None:
    return await session.scalar(select(User.email).where(User.id == user_id))


async def ticket(session: AsyncSession, ticket_id: UUID) -> Ticket | None:
    return await session.scalar(
        select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
    )


async def order(session: AsyncSession, order_id: UUID) -> Order | None:
    return await session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )


async def claim_mail(
    session: AsyncSession, *, event_id: UUID, kind: str, recipient: str, message_id: str
) -> bool:
    """Record that the event's mail of this kind is being sent; False if it was already.

    Race (two deliveries of one event at once, on two replicas): the second insert waits
    on the first's uncommitted row and then does nothing, or inserts if the first rolled
    back because its send failed. So one of them sends, never both.
    """
    inserted = await session.execute(
        insert(SentMail)
        .values(event_id=event_id, kind=kind, recipient=recipient, message_id=message_id)
        .on_conflict_do_nothing(index_elements=["event_id", "kind"])
        .returning(SentMail.event_id)
    )
    return inserted.first() is not None
