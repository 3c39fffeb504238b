"""``--state-file``: the sandbox keeps its objects and idempotency keys across restarts,
as Stripe does, even when it is killed by SIGKILL; without the flag it stays in memory."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import stripe
from stripe.params import PaymentIntentCreateParams

from ticketing_common.embedded import HOST, free_port
from ticketing_common.testing import serve_app, wait_until
from ticketing_stripe_sandbox.app import create_app
from ticketing_stripe_sandbox.store import StateFile
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

pytestmark = pytest.mark.asyncio

KEY = "sk_test_statefile"
PARAMS: PaymentIntentCreateParams = {
    "amount": 2050,
    "currency": "usd",
    "metadata": {"order_id": "order-42"},
    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
}


@asynccontextmanager
async def sandbox_process(
    state_file: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m ticketing_stripe_sandbox --state-file …`` as ``ticketing up`` runs it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ticketing_stripe_sandbox", "--host", HOST, "--port", str(port)),
        *("--state-file", str(state_file), "--log-level", "WARNING"),
    )
    url = f"http://{HOST}:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:

            async def healthy() -> bool:
                assert process.returncode is None, "the sandbox exited"
                try:
                    return (await client.get("/_sandbox/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=60, interval=0.1)
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_sandbox_killed_and_restarted_on_its_state_file_has_forgotten_nothing(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "stripe-sandbox" / "state.sqlite3"  # its directory is created
    async with sandbox_process(state_file) as (process, url):
        client = stripe_client(StripeApi(url, KEY, sandbox=True))
        intent = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "o-42"})
        with pytest.raises(stripe.CardError):
            await client.v1.payment_intents.confirm_async(
                intent.id, {"payment_method": "pm_card_chargeDeclined"}
            )
        paid = await client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": "pm_card_visa"}, {"idempotency_key": "confirm-o-42"}
        )
        refund = await client.v1.refunds.create_async(
            {"payment_intent": intent.id, "metadata": {"order_id": "order-42"}},
            {"idempotency_key": "refund-o-42"},
        )
        process.send_signal(signal.SIGKILL)  # nothing is flushed on the way out
        assert await process.wait() == -signal.SIGKILL

    async with sandbox_process(state_file) as (_, url):
        client = stripe_client(StripeApi(url, KEY, sandbox=True))
        again = await client.v1.payment_intents.retrieve_async(intent.id)
        assert (again.status, again.amount_received, again.latest_charge) == (
            "succeeded",
            2050,
            paid.latest_charge,
        )
        assert again.metadata is not None
        assert again.metadata.to_dict() == {"order_id": "order-42"}
        assert again.client_secret == intent.client_secret
        charge = await client.v1.charges.retrieve_async(str(paid.latest_charge))
        assert (charge.status, charge.refunded, charge.amount_refunded) == ("succeeded", True, 2050)
        charges = await client.v1.charges.list_async({"payment_intent": intent.id})
        assert [c.status for c in charges.data] == ["succeeded", "failed"]
        kept = await client.v1.refunds.retrieve_async(refund.id)
        assert (kept.amount, kept.payment_intent, kept.status) == (2050, intent.id, "succeeded")

        # Idempotent requests made before the crash are replayed, not run again.
        replayed = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "o-42"})
        assert replayed.id == intent.id
        assert replayed.last_response is not None
        assert replayed.last_response.headers.get("idempotent-replayed") == "true"
        refund_again = await client.v1.refunds.create_async(
            {"payment_intent": intent.id, "metadata": {"order_id": "order-42"}},
            {"idempotency_key": "refund-o-42"},
        )
        assert refund_again.id == refund.id
        listed = await client.v1.payment_intents.list_async({"limit": 100})
        assert [i.id for i in listed.data] == [intent.id]
        refunds = await client.v1.refunds.list_async({"limit": 100})
        assert [r.id for r in refunds.data] == [refund.id]

        # New objects go on from there.
        second = await client.v1.payment_intents.create_async(PARAMS)
        listed = await client.v1.payment_intents.list_async({"limit": 100})
        assert [i.id for i in listed.data] == [second.id, intent.id]


async def test_a_state_file_in_use_by_another_sandbox_is_refused(tmp_path: Path) -> None:
    state_file = tmp_path / "state.sqlite3"
    async with serve_app(create_app(state_file)):
        with pytest.raises(RuntimeError, match="in use by another Stripe sandbox"):
            StateFile(state_file)


async def test_without_a_state_file_a_restart_starts_empty(tmp_path: Path) -> None:
    async with serve_app(create_app()) as first:
        client = stripe_client(StripeApi(first.url, KEY, sandbox=True))
        await client.v1.payment_intents.create_async(PARAMS)
    async with serve_app(create_app()) as second:
        client = stripe_client(StripeApi(second.url, KEY, sandbox=True))
        assert (await client.v1.payment_intents.list_async()).data == []
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_a_graceful_restart_on_the_state_file_keeps_every_account_apart(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "state.sqlite3"
    async with serve_app(create_app(state_file)) as served:
        mine = stripe_client(StripeApi(served.url, KEY, sandbox=True))
        intent = await mine.v1.payment_intents.create_async(PARAMS)
    stored = await asyncio.to_thread(state_file.read_bytes)
    assert KEY.encode() not in stored  # accounts are stored by digest
    async with serve_app(create_app(state_file)) as served:
        mine = stripe_client(StripeApi(served.url, KEY, sandbox=True))
        theirs = stripe_client(StripeApi(served.url, "sk_test_someoneelse", sandbox=True))
        assert [i.id for i in (await mine.v1.payment_intents.list_async()).data] == [intent.id]
        assert (await theirs.v1.payment_intents.list_async()).data == []
