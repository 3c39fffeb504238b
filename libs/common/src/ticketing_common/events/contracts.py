"""Every event of SPEC §4, defined once: type, subject, payload, envelope.

Services import these classes; they never spell a subject string or a status
literal themselves. Event types keep the seed's names (``ticket:created``);
NATS subjects replace the colon with dots so streams and wildcards work
(``<namespace>.ticket.created``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ticketing_common.money import Price
from ticketing_common.schemas import CamelModel


class OrderStatus(StrEnum):
    """The one definition of an order's status values."""

    CREATED = "created"
    CANCELLED = "cancelled"
    AWAITING_PAYMENT = "awaiting:payment"
    COMPLETE = "complete"

    @property
    def holds_ticket(self) -> bool:
        """An order in one of these states keeps its ticket from other buyers."""
        return self is not OrderStatus.CANCELLED


class CancelReason(StrEnum):
    """Why an order was cancelled: what order:cancelled says, and what the buyer is told."""

    CANCELLED = "cancelled"
    """The buyer cancelled it before paying."""
    EXPIRED = "expired"
    """Its time to pay ran out (expiration:complete)."""
    REFUNDED = "refunded"
    """The buyer asked for their money back after paying, before check-in."""
    WITHDRAWN = "withdrawn"
    """The seller withdrew the ticket while the order was on its way."""


class EventType(StrEnum):
    TICKET_CREATED = "ticket:created"
    TICKET_UPDATED = "ticket:updated"
    ORDER_CREATED = "order:created"
    ORDER_CANCELLED = "order:cancelled"
    EXPIRATION_COMPLETE = "expiration:complete"
    PAYMENT_CREATED = "payment:created"
    PAYMENT_REFUNDED = "payment:refunded"
    SESSION_REVOKED = "session:revoked"
    USER_CREATED = "user:created"
    TICKET_WITHDRAWN = "ticket:withdrawn"
    ORDER_COMPLETED = "order:completed"
    PAYMENT_DECLINED = "payment:declined"

    @property
    def subject_suffix(self) -> str:
        return self.value.replace(":", ".")

    @property
    def slug(self) -> str:
        """For consumer names, which allow neither ':' nor '.'."""
        return self.value.replace(":", "-")


class Payload(CamelModel):
    """Base of every event payload: a camelCase body, immutable in code."""

    model_config = ConfigDict(frozen=True)
    event_type: ClassVar[EventType]


class TicketRef(Payload):
    """The ticket an order event is about."""

    id: UUID
    general_admission: bool | None = None
    """Whether it is a general-admission listing (fixed when listed), so a consumer
    need not look it up. None in events published before orders sent it: look it up."""


class PricedTicketRef(Payload):
    """The ticket an order event is about, and its unit price as the order was accepted."""

    id: UUID
    price: Price
    general_admission: bool | None = None
    """As in :class:`TicketRef`: None in older events."""


class TicketCreated(Payload):
    event_type: ClassVar[EventType] = EventType.TICKET_CREATED
    id: UUID
    version: int = Field(ge=0)
    title: str
    price: Price
    user_id: UUID
    general_admission: bool = False
    """A general-admission listing: ``quantity`` interchangeable units at one price
    (docs/general-admission.md). False (and absent in older events): one seat."""
    quantity: int = Field(default=1, ge=1)
    """How many units the listing sells; always 1 for a seat. Fixed once listed."""


class TicketUpdated(Payload):
    event_type: ClassVar[EventType] = EventType.TICKET_UPDATED
    id: UUID
    version: int = Field(ge=0)
    title: str
    price: Price
    user_id: UUID
    order_id: UUID | None = None
    general_admission: bool = False
    quantity: int = Field(default=1, ge=1)


class OrderCreated(Payload):
    event_type: ClassVar[EventType] = EventType.ORDER_CREATED
    id: UUID
    version: int = Field(ge=0)
    status: OrderStatus
    user_id: UUID
    expires_at: AwareDatetime
    ticket: PricedTicketRef
    """The ticket and its unit price as the order was accepted."""
    quantity: int = Field(default=1, ge=1)
    """Units the order holds (1 for a seat); the buyer pays price times quantity."""


class OrderCancelled(Payload):
    event_type: ClassVar[EventType] = EventType.ORDER_CANCELLED
    id: UUID
    version: int = Field(ge=0)
    ticket: TicketRef
    reason: CancelReason = CancelReason.CANCELLED
    """Why (an event from before reasons existed reads as ``cancelled``)."""
    quantity: int = Field(default=1, ge=1)
    """Units the order held, now back on sale."""


class OrderCompleted(Payload):
    """The order was paid: its ticket is sold, its admission issued.

    A fact, not a step of the order's replicated state: orders does not bump the
    version for it (``version`` is the order's current one, for the log), and no
    consumer chains it with ``apply_versioned``. A later order:cancelled (a refund, a
    withdrawal) has the next version and is final, so it wins whichever arrives first.
    """

    event_type: ClassVar[EventType] = EventType.ORDER_COMPLETED
    id: UUID
    version: int = Field(ge=0)
    user_id: UUID
    ticket: PricedTicketRef
    quantity: int = Field(default=1, ge=1)
    """Units sold by this order."""


class TicketWithdrawn(Payload):
    """The seller took the ticket off sale for good (it was not reserved then).

    The ticket's next version, applied in order by every replica; an order that
    raced it (made from a replica that had not heard yet) is cancelled with reason
    ``withdrawn`` and refunded if it was paid."""

    event_type: ClassVar[EventType] = EventType.TICKET_WITHDRAWN
    id: UUID
    version: int = Field(ge=0)
    user_id: UUID


class UserCreated(Payload):
    """A new account: what a service needs to write to its owner (notifications)."""

    event_type: ClassVar[EventType] = EventType.USER_CREATED
    id: UUID
    email: str


class PaymentDeclined(Payload):
    """A card was declined for an order (the buyer got a 402 and may try again)."""

    event_type: ClassVar[EventType] = EventType.PAYMENT_DECLINED
    id: UUID
    """Unique per declined attempt."""
    order_id: UUID
    user_id: UUID
    message: str
    """The provider's message, as the buyer was shown it."""


class ExpirationComplete(Payload):
    event_type: ClassVar[EventType] = EventType.EXPIRATION_COMPLETE
    order_id: UUID


class PaymentCreated(Payload):
    event_type: ClassVar[EventType] = EventType.PAYMENT_CREATED
    id: UUID
    order_id: UUID
    stripe_id: str


class PaymentRefunded(Payload):
    event_type: ClassVar[EventType] = EventType.PAYMENT_REFUNDED
    id: UUID
    order_id: UUID
    refund_id: str


class SessionRevoked(Payload):
    """A signed-in session ended before its token expired (sign-out, sign-out everywhere).

    Every service that verifies session tokens refuses ``id`` until ``expires_at``,
    the latest expiry of any token auth issued for the session; after that the
    token is refused anyway, so the revocation can be forgotten.
    """

    event_type: ClassVar[EventType] = EventType.SESSION_REVOKED
    id: UUID
    user_id: UUID
    expires_at: AwareDatetime


PAYLOADS: dict[EventType, type[Payload]] = {
    cls.event_type: cls
    for cls in (
        TicketCreated,
        TicketUpdated,
        OrderCreated,
        OrderCancelled,
        ExpirationComplete,
        PaymentCreated,
        PaymentRefunded,
        SessionRevoked,
        UserCreated,
        TicketWithdrawn,
        OrderCompleted,
        PaymentDeclined,
    )
}

P = TypeVar("P", bound=Payload)


class Envelope(BaseModel, Generic[P]):
    """What travels on the bus: a unique event id, the type, the time, the payload."""

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    type: EventType
    time: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    data: P

    @classmethod
    def of(cls, payload: P, *, event_id: UUID | None = None) -> Envelope[P]:
        return Envelope[P](id=event_id or uuid4(), type=payload.event_type, data=payload)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def decode(raw: bytes, payload_type: type[P]) -> Envelope[P]:
    return Envelope[payload_type].model_validate_json(raw)  # type: ignore[valid-type]


class Subjects:
    """Subject and stream names of one namespace (``ticketing`` in production).

    Tests give each test its own namespace, so streams never leak between tests.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    @property
    def stream(self) -> str:
        return f"{self.namespace}_events".upper()

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.namespace}_dead_letters".upper()

    @property
    def all_events(self) -> str:
        return f"{self.namespace}.events.>"

    def of(self, event_type: EventType) -> str:
        return self.of_suffix(event_type.subject_suffix)

    def of_suffix(self, subject_suffix: str) -> str:
        """The subject of an event type's ``subject_suffix`` (as the outbox stores it)."""
        return f"{self.namespace}.events.{subject_suffix}"

    @property
    def all_dead_letters(self) -> str:
        return f"{self.namespace}.dead.>"

    def dead_letter(self, service: str, event_type: EventType) -> str:
        return f"{self.namespace}.dead.{service}.{event_type.subject_suffix}"
