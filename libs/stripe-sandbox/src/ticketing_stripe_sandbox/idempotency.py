"""Idempotency keys, the way Stripe honours them.

The first POST with a key (per secret key) runs, and its status and body are
saved once its endpoint began executing, errors included (a 402 decline is
replayed as a 402). A later request with the same key and the same endpoint and
parameters gets the saved response again, marked ``Idempotent-Replayed: true``.
The same key with another endpoint or other parameters is a 400
``idempotency_error``; while the first request is still running, a second one is
a 409 ``idempotency_error`` (the SDK retries it, then gets the replay). A request
that failed validation saved nothing, so a corrected retry with its key runs.
Keys are forgotten after 24 hours, as in Stripe.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response

from ticketing_stripe_sandbox.errors import idempotency_error
from ticketing_stripe_sandbox.repository import Account, IdempotencyRecord, SavedResponse

KEY_LIFETIME_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255
JSON = "application/json"


@dataclass(frozen=True)
class Outcome:
    """What running a request produced, and whether Stripe would keep it for its key."""

    status: int
    body: bytes
    saved: bool


def response_of(saved: SavedResponse, headers: dict[str, str]) -> Response:
    return Response(saved.body, status_code=saved.status, media_type=JSON, headers=headers)


async def run_once(
    account: Account,
    key: str,
    endpoint: str,
    fingerprint: tuple[tuple[str, str], ...],
    request_id: str,
    run: Callable[[], Awaitable[Outcome]],
) -> Response:
    """Run ``run`` at most once for ``key``; replay its saved response afterwards."""
    if len(key) > MAX_KEY_LENGTH:
        raise idempotency_error(
            400, f"Idempotency keys can be at most {MAX_KEY_LENGTH} characters long."
        )
    _forget_expired(account)
    # No await between this lookup and the insert below: under one event loop the
    # check-and-claim is atomic, so of two concurrent requests with one key only one runs.
    record = account.idempotency.get(key)
    if record is not None:
        return _replay(record, key, endpoint, fingerprint)
    record = IdempotencyRecord(endpoint, fingerprint, time.time())
    account.idempotency[key] = record
    try:
        outcome = await run()
    except BaseException:
        # Cancelled mid-way (the client went away): nothing saved, the key is free again.
        account.idempotency.pop(key, None)
        raise
    if not outcome.saved:
        account.idempotency.pop(key, None)
        account.commit()
    else:
        record.response = SavedResponse(outcome.status, outcome.body, request_id)
        # The objects and the response their key will replay, in one write.
        account.commit(key, record)
    return Response(
        outcome.body,
        status_code=outcome.status,
        media_type=JSON,
        headers={"Idempotency-Key": key},
    )


def _replay(
    record: IdempotencyRecord,
    key: str,
    endpoint: str,
    fingerprint: tuple[tuple[str, str], ...],
) -> Response:
    if record.endpoint != endpoint:
        raise idempotency_error(
            400,
            "Keys for idempotent requests can only be used for the same endpoint they were "
            f"first used for ('{record.endpoint}' vs '{endpoint}'). Try using a key other "
            f"than '{key}' if you meant to execute a different request.",
        )
    if record.fingerprint != fingerprint:
        raise idempotency_error(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
        )
    if record.response is None:
        raise idempotency_error(
            409,
            "There is currently another in-progress request using this Idempotent Key (that "
            "probably means you submitted twice, and the other request is still going "
            f"through): {key}. Please try again later.",
        )
    return response_of(
        record.response,
        {
            "Idempotency-Key": key,
            "Idempotent-Replayed": "true",
            "Original-Request": record.response.request_id,
        },
    )


def _forget_expired(account: Account) -> None:
    cutoff = time.time() - KEY_LIFETIME_SECONDS
    account.forget_keys(
        [
            key
            for key, record in account.idempotency.items()
            if record.response is not None and record.created < cutoff
        ]
    )
