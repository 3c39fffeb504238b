"""The endpoints the Stripe SDK calls, each a thin route: read the parameters (form body
or query string), authenticate, run one operation of a ``resources`` module (through
the idempotency layer for a POST with a key) and answer with Stripe's JSON."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ticketing_common.state import components_of
from ticketing_stripe_sandbox.errors import StripeError, api_error, authentication_failed
from ticketing_stripe_sandbox.forms import Form, FormError, Json, decode, fingerprint, pairs_of
from ticketing_stripe_sandbox.idempotency import JSON, Outcome, run_once
from ticketing_stripe_sandbox.repository import Account, Sandbox
from ticketing_stripe_sandbox.resources import charges, common, payment_intents, refunds

logger = logging.getLogger("ticketing.stripe_sandbox")

Operation = Callable[[Account, Mapping[str, Form]], Awaitable[dict[str, Json]]]

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://docs.stripe.com/api#authentication for details."
)

router = APIRouter()


def _secret_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        # ``curl -u sk_test_…:`` sends the key as the Basic user name.
        try:
            return base64.b64decode(credentials, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def _masked(key: str) -> str:
    return key[:8] + "*" * max(len(key) - 12, 4) + key[-4:] if len(key) > 12 else key


def authenticated_account(request: Request) -> Account:
    """The account of the request's secret key: any ``sk_test_…`` key is an account of its
    own; no key, another kind of key, or a live key is Stripe's 401."""
    key = _secret_key(request)
    if not key:
        raise authentication_failed(NO_KEY)
    if "_live_" in key:
        raise authentication_failed(
            f"Invalid API Key provided: {_masked(key)}. The Stripe sandbox accepts only "
            "test-mode secret keys (sk_test_…); a live key belongs to Stripe itself."
        )
    if not key.startswith("sk_test_") or len(key) <= len("sk_test_"):
        raise authentication_failed(f"Invalid API Key provided: {_masked(key)}")
    return components_of(request.app).get(Sandbox).account(key)


AccountDep = Annotated[Account, Depends(authenticated_account)]


def _dumps(value: Mapping[str, Json]) -> bytes:
    return json.dumps(value, indent=2).encode()


async def _outcome(operation: Operation, account: Account, form: Mapping[str, Form]) -> Outcome:
    try:
        result = await operation(account, form)
    except StripeError as exc:
        return Outcome(exc.status, _dumps(exc.body()), exc.saved)
    except Exception:
        logger.exception("stripe sandbox operation failed")
        error = api_error()
        return Outcome(error.status, _dumps(error.body()), error.saved)
    return Outcome(200, _dumps(result), True)


async def _handle(request: Request, account: Account, operation: Operation) -> Response:
    raw = await request.body() if request.method == "POST" else request.url.query
    pairs = pairs_of(raw)
    try:
        form = decode(pairs)
    except FormError as exc:
        raise StripeError(400, f"Invalid parameter: {exc.key}", saved=False) from None
    key = request.headers.get("idempotency-key")
    with account.changes():
        if request.method == "POST" and key:
            return await run_once(
                account,
                key,
                request.url.path,
                fingerprint(pairs),
                str(request.state.request_id),
                lambda: _outcome(operation, account, form),
            )
        outcome = await _outcome(operation, account, form)
        account.commit()  # written through before the response leaves
    return Response(outcome.body, status_code=outcome.status, media_type=JSON)


def _sync(
    operation: Callable[[Account, Mapping[str, Form]], dict[str, Json]],
) -> Operation:
    async def run(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
        return operation(account, form)

    return run


@router.get("/_sandbox/health", include_in_schema=False)
async def health() -> dict[str, bool]:
    return {"ok": True}


@router.post("/v1/payment_intents")
async def create_payment_intent(request: Request, account: AccountDep) -> Response:
    return await _handle(request, account, _sync(payment_intents.create_payment_intent))


@router.get("/v1/payment_intents")
async def list_payment_intents(request: Request, account: AccountDep) -> Response:
    return await _handle(request, account, _sync(payment_intents.list_payment_intents))


@router.get("/v1/payment_intents/{intent_id}")
async def retrieve_payment_intent(
    request: Request, account: AccountDep, intent_id: str
) -> Response:
    return await _handle(
        request, account, _sync(lambda a, f: common.retrieve(a, f, intent_id, "payment_intent"))
    )


@router.post("/v1/payment_intents/{intent_id}")
async def update_payment_intent(request: Request, account: AccountDep, intent_id: str) -> Response:
    return await _handle(
        request, account, lambda a, f: payment_intents.update_payment_intent(a, f, intent_id)
    )


@router.post("/v1/payment_intents/{intent_id}/confirm")
async def confirm_payment_intent(request: Request, account: AccountDep, intent_id: str) -> Response:
    return await _handle(
        request, account, lambda a, f: payment_intents.confirm_payment_intent(a, f, intent_id)
    )


@router.post("/v1/payment_intents/{intent_id}/cancel")
async def cancel_payment_intent(request: Request, account: AccountDep, intent_id: str) -> Response:
    return await _handle(
        request, account, lambda a, f: payment_intents.cancel_payment_intent(a, f, intent_id)
    )


@router.get("/v1/charges")
async def list_charges(request: Request, account: AccountDep) -> Response:
    return await _handle(request, account, _sync(charges.list_charges))


@router.get("/v1/charges/{charge_id}")
async def retrieve_charge(request: Request, account: AccountDep, charge_id: str) -> Response:
    return await _handle(
        request, account, _sync(lambda a, f: common.retrieve(a, f, charge_id, "charge"))
    )


@router.post("/v1/refunds")
async def create_refund(request: Request, account: AccountDep) -> Response:
    return await _handle(request, account, refunds.create_refund)


@router.get("/v1/refunds")
async def list_refunds(request: Request, account: AccountDep) -> Response:
    return await _handle(request, account, _sync(refunds.list_refunds))


@router.get("/v1/refunds/{refund_id}")
async def retrieve_refund(request: Request, account: AccountDep, refund_id: str) -> Response:
    return await _handle(
        request, account, _sync(lambda a, f: common.retrieve(a, f, refund_id, "refund"))
    )
