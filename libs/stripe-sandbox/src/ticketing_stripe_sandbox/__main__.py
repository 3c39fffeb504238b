"""``python -m ticketing_stripe_sandbox --host 127.0.0.1 --port 12111 [--state-file PATH]``:
serve the sandbox (in memory, or kept in a state file across restarts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from ticketing_common.logs import configure_logging
from ticketing_stripe_sandbox.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_stripe_sandbox",
        description="A Stripe-compatible sandbox (PaymentIntents, charges, refunds, test "
        "cards) for offline runs. Point the Stripe SDK's api base at it and use any "
        "sk_test_ key.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=12111, help="port to listen on")
    parser.add_argument("--log-level", default="INFO", help="log level (JSON lines on stdout)")
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="SQLite file that keeps every object and idempotency key across restarts "
        "(created if missing); without it, state is in memory only",
    )
    args = parser.parse_args(argv)
    configure_logging("stripe-sandbox", args.log_level)
    uvicorn.run(
        create_app(args.state_file),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        # Bounded, so stopping never hangs on a client holding a connection open.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
