"""The payments service's application: ``uvicorn --factory ticketing_payments.app:create_app``."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from ticketing_common import faults
from ticketing_common.app import create_event_service_app
from ticketing_payments.listeners import listener_group
from ticketing_payments.provider import PaymentProvider
from ticketing_payments.routes import router
from ticketing_payments.service import reconciler
from ticketing_payments.settings import Settings
from ticketing_payments.throttle import PaymentThrottle

TITLE = "Ticketing payments"
# The gateway sends only /api/payments/* to payments, so the docs are served there too.
DOCS_PREFIX = "/api/payments"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    faults.arm(settings.FAULT_POINTS)
    provider = PaymentProvider.from_settings(settings)
    throttle = PaymentThrottle.from_settings(settings)
    app = create_event_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        listeners=partial(listener_group, provider=provider),
        docs_prefix=DOCS_PREFIX,
        on_shutdown=[provider.close, throttle.close],
        workers=[reconciler(provider, settings.REFUND_SWEEP_SECONDS)],
    )
    app.state.provider = provider
    app.state.throttle = throttle
    return app
