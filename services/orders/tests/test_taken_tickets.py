"""``TakenTickets``: the bounded hint of tickets this process saw taken."""

from __future__ import annotations

from uuid import uuid4

from ticketing_orders.service import TakenTickets


def test_a_ticket_seen_taken_is_in_until_seen_free() -> None:
    taken = TakenTickets()
    ticket, other = uuid4(), uuid4()
    taken.saw_taken(ticket)
    assert ticket in taken
    assert other not in taken
    taken.saw_free(ticket)
    taken.saw_free(other)  # never seen: nothing to forget
    assert ticket not in taken


def test_the_oldest_leave_when_it_is_full_and_seeing_one_again_makes_it_newest() -> None:
    taken = TakenTickets(size=3)
    first, second, third, fourth = (uuid4() for _ in range(4))
    for ticket in (first, second, third):
        taken.saw_taken(ticket)
    taken.saw_taken(first)  # seen again: now the newest
    taken.saw_taken(fourth)
    assert second not in taken
    assert all(ticket in taken for ticket in (first, third, fourth))
