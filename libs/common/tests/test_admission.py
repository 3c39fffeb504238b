"""Admission codes: issued codes read back; altered, forged or foreign ones do not."""

from __future__ import annotations

import secrets
from uuid import uuid4

import pytest

from ticketing_common.admission import AdmissionRef, admission_key, issue, read

KEY = admission_key(secrets.token_urlsafe(32))


def test_an_issued_code_reads_back_as_its_order_and_ticket() -> None:
    order_id, ticket_id = uuid4(), uuid4()
    code = issue(KEY, order_id=order_id, ticket_id=ticket_id)
    assert read(KEY, code) == AdmissionRef(order_id=order_id, ticket_id=ticket_id)
    assert read(KEY, f"  {code}\n") == AdmissionRef(order_id=order_id, ticket_id=ticket_id)


def test_the_code_is_deterministic_and_holds_no_personal_data() -> None:
    order_id, ticket_id = uuid4(), uuid4()
    assert issue(KEY, order_id=order_id, ticket_id=ticket_id) == issue(
        KEY, order_id=order_id, ticket_id=ticket_id
    )
    assert len(issue(KEY, order_id=order_id, ticket_id=ticket_id)) < 100


def test_every_altered_character_is_refused() -> None:
    code = issue(KEY, order_id=uuid4(), ticket_id=uuid4())
    for index, char in enumerate(code):
        if char == ".":
            continue
        altered = code[:index] + ("A" if char != "A" else "B") + code[index + 1 :]
        assert read(KEY, altered) is None, altered


def test_a_code_for_another_order_or_ticket_cannot_be_made_by_swapping_parts() -> None:
    one = issue(KEY, order_id=uuid4(), ticket_id=uuid4()).split(".")
    other = issue(KEY, order_id=uuid4(), ticket_id=uuid4()).split(".")
    assert read(KEY, ".".join([one[0], other[1], one[2], one[3]])) is None
    assert read(KEY, ".".join([one[0], one[1], other[2], one[3]])) is None


def test_a_code_signed_with_another_key_is_refused() -> None:
    foreign = issue(admission_key(secrets.token_urlsafe(32)), order_id=uuid4(), ticket_id=uuid4())
    assert read(KEY, foreign) is None


@pytest.mark.parametrize(
    "code", ["", "TA1", "TA1...", "XX1.a.b.c", "TA1.!!.??.**", "TA1." + "A" * 5000 + ".b.c", "é"]
)
def test_malformed_codes_are_refused(code: str) -> None:
    assert read(KEY, code) is None
