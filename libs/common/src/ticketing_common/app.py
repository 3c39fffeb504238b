"""The FastAPI application every service is built on.

It installs the error handlers, request ids and JSON access logs, a request body
limit, ``/healthz`` (alive) and ``/readyz`` (database and broker reachable), ``/metrics``
(Prometheus, ``ticketing_common.metrics``) with every request counted and timed by route, and
runs the service's background workers (outbox relay, listeners) for the app's lifetime. Shutdown is
graceful: stop consuming, let in-flight work finish, close connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.backoff import pause
from ticketing_common.db import Database
from ticketing_common.errors import ERROR_RESPONSES, install_error_handlers
from ticketing_common.events.bus import EventBus
from ticketing_common.logs import configure_logging, request_id_var
from ticketing_common.metrics import CONTENT_TYPE, METRICS_PATH, HttpMetrics, Metrics
from ticketing_common.revocations import RevocationFollower
from ticketing_common.settings import ServiceSettings
from ticketing_common.state import Components

logger = logging.getLogger("ticketing.app")

Worker = Callable[[asyncio.Event], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
ReadinessCheck = Callable[[], Awaitable[None]]

SHUTDOWN_GRACE_SECONDS = 10.0
# Far above any body the APIs and forms take (a password's 128 characters, a title's
# 200), and low enough that nobody makes a service parse megabytes: 413 beyond.
MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_HEADER_RAW = REQUEST_ID_HEADER.lower().encode("latin-1")
PROXIED_HEADERS = frozenset({"x-forwarded-for", "forwarded"})
# The probes and the scrape: neither logged nor counted, they would drown the traffic.
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", METRICS_PATH})
# A given request id is kept only if it is a token: it is echoed in a response
# header and forwarded to other services, where anything else could break the request.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")


def _request_headers(scope: Scope) -> tuple[str, int | None, bool]:
    """The request id, the declared body length and whether a body may stream in
    without one, from one pass over the raw headers (no ``Headers`` object)."""
    given: bytes | None = None
    length: bytes | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            chunked = True
    request_id = ""
    if given is not None:
        text = given[:64].decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            request_id = text
    return request_id or uuid.uuid4().hex, _declared_length(length), chunked or length is None


class RequestContext:
    """The outer layer of every request, one plain ASGI middleware doing four jobs:

    - the request id (``X-Request-ID`` when it is a token, else made up) for the
      request's logs and its response;
    - the metrics: each request counted and timed by method, route template and status
      (``HttpMetrics``), except ``unmeasured`` paths (the probes and the scrape);
    - the body limit: a body over ``body_limit`` bytes is a 413, whether its length is
      declared or it streams in. Raised where the app reads the body, so the app's own
      handler renders it (the shared JSON shape, the web client's page). Not FastAPI's
      ``max_body_size``: Starlette's limiter replaces the app's answer to an over-long
      declared body with a plain-text one;
    - with ``access_log``, one log line per request.

    One layer rather than one per job: each layer is a coroutine and a wrapped ``send``
    per request, which together cost more than the jobs themselves. Plain ASGI rather
    than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` ends a response
    normally when the app fails in the middle of its body, so a half-sent body would
    reach the client as if it were whole.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        unmeasured: frozenset[str],
        body_limit: int = MAX_BODY_BYTES,
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.unmeasured = unmeasured
        self.body_limit = body_limit
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, declared, may_stream = _request_headers(scope)
        id_header = (REQUEST_ID_HEADER_RAW, request_id.encode("latin-1"))
        # What the server answers if the app fails before starting a response.
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                message["headers"] = [
                    *(header for header in headers if header[0] != REQUEST_ID_HEADER_RAW),
                    id_header,
                ]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, self._limited(receive, declared, may_stream), send_with_id)
        finally:
            path = scope["path"]
            if path not in self.unmeasured:
                elapsed = time.perf_counter() - started
                self.metrics.observe(scope, status, elapsed)
                if self.access_log:
                    logger.info(
                        "request",
                        extra={
                            "method": scope["method"],
                            "path": path,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                        },
                    )
            request_id_var.reset(token)

    def _limited(self, receive: Receive, declared: int | None, may_stream: bool) -> Receive:
        """``receive``, raising 413 past the limit. A declared length within it needs no
        counting: the server never passes on more body than the length declares."""
        limit = self.body_limit
        if declared is not None and declared > limit:

            async def refuse() -> Message:
                raise HTTPException(413, detail="Request body too large")

            return refuse
        if not may_stream:
            return receive
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, detail="Request body too large")
            return message

        return receive_within_limit


def every(interval: float, task: Callable[[], Awaitable[object]]) -> Worker:
    """A worker that runs ``task`` at once, then every ``interval`` seconds until stopping.

    A failing run is logged and the next one comes on time: housekeeping (pruning
    spent rows) must outlive a database that is briefly away.
    """

    async def run(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await task()
            except Exception:
                logger.warning("periodic task failed", extra={"task": repr(task)}, exc_info=True)
            await pause(stopping, interval)

    return run


class ServiceRuntime:
    """What a service runs besides its routes; held on ``app.state.runtime``."""

    def __init__(
        self,
        *,
        database: Database | None = None,
        bus: EventBus | None = None,
        workers: Sequence[Worker] = (),
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        readiness: Sequence[ReadinessCheck] = (),
        revocations: RevocationFollower | None = None,
        components: Components | None = None,
    ) -> None:
        self.components = components or Components()
        self.database = database
        self.bus = bus
        self.workers = list(workers)
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.readiness = list(readiness)
        # The revoked sessions the session dependency refuses (None: it refuses none).
        # Replayed after the other start-up hooks (which may connect its bus) and
        # before the server listens; followed by a worker.
        self.revocations = revocations
        if revocations is not None:
            self.components.add(revocations)
            self.on_startup.append(revocations.catch_up)
            self.workers.append(revocations.follow)
            self.readiness.append(revocations.check_ready)
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.connect()
        for hook in self.on_startup:
            await hook()
        self.stopping = asyncio.Event()
        self._tasks = [asyncio.create_task(self._supervise(worker)) for worker in self.workers]

    async def _supervise(self, worker: Worker) -> None:
        """A worker that crashes is restarted: a background loop must not die silently."""
        while not self.stopping.is_set():
            try:
                await worker(self.stopping)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker crashed; restarting", extra={"worker": repr(worker)})
                await asyncio.sleep(1)

    async def stop(self) -> None:
        self.stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for hook in self.on_shutdown:
            with contextlib.suppress(Exception):
                await hook()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
        if self.database is not None:
            await self.database.dispose()

    async def check_ready(self) -> list[str]:
        problems: list[str] = []
        if self.database is not None:
            try:
                await asyncio.wait_for(self.database.ping(), timeout=2)
            except Exception:
                problems.append("database unreachable")
        if self.bus is not None and not self.bus.connected:
            problems.append("broker unreachable")
        for check in self.readiness:
            try:
                await asyncio.wait_for(check(), timeout=2)
            except Exception as error:
                problems.append(str(error) or type(error).__name__)
        return problems


def _declared_length(value: bytes | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()):
        return None  # none, or malformed: the server refuses the latter itself
    # Past 18 digits the length is too long anyway, and past 4300 int() refuses it.
    return sys.maxsize if len(value.lstrip(b"0")) > 18 else int(value)


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    routers: Sequence[APIRouter],
    runtime: ServiceRuntime,
    configure_logs: bool = True,
    docs_prefix: str | None = None,
    middleware: Sequence[Middleware] = (),
    error_handlers: Callable[[FastAPI], None] = install_error_handlers,
    router_prefix: str = "",
    metrics: Metrics | None = None,
) -> FastAPI:
    """The service's app. ``docs_prefix`` (e.g. ``/api/tickets``) is where its API lives:
    with ``API_DOCS_ENABLED``, the OpenAPI document and Swagger UI are served there (the
    gateway routes only the service's prefix to it) and at the root. A service without
    one (web pages, an operator's endpoint) serves no API docs. ``middleware``
    is the service's own, run inside the request context (its request id, the metrics
    and the body limit), first listed outermost. ``error_handlers`` installs how errors are rendered
    (the shared JSON shape unless a service renders pages), including the innermost
    ``UnexpectedErrors`` middleware. ``router_prefix`` is put before every router's paths.
    ``metrics`` is the app's registry (a new one when None), served at ``/metrics``: the
    gateway and the ingress never route that path from outside."""
    if configure_logs:
        configure_logging(settings.SERVICE_NAME, settings.LOG_LEVEL)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        logger.info("started")
        try:
            yield
        finally:
            await runtime.stop()
            logger.info("stopped")

    # FastAPI's own docs pages load their scripts from a CDN onto the site's origin;
    # _mount_docs serves Swagger UI from the service itself instead.
    app = FastAPI(
        title=title,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry (global providers) is off: tracing.install instruments
        # the app with the service's provider, and the check alone costs on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.components = runtime.components
    if runtime.components.find(ServiceSettings) is None:
        runtime.components.add(settings)
    if metrics is None:
        metrics = runtime.components.find(Metrics) or Metrics()
    if runtime.components.find(Metrics) is None:
        runtime.components.add(metrics)
    error_handlers(app)

    # add_middleware wraps what was added before: the last added runs first.
    for own in reversed(middleware):
        app.add_middleware(own.cls, *own.args, **own.kwargs)
    app.add_middleware(
        RequestContext,
        metrics=HttpMetrics(metrics),
        unmeasured=UNLOGGED_PATHS,
        access_log=settings.ACCESS_LOG,
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        problems = await runtime.check_ready()
        if problems:
            return JSONResponse(
                {"errors": [{"message": problem} for problem in problems]}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    served_metrics = metrics

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        # For the scraper, which reaches the process directly. Every proxy in front of
        # the services (the gateway, the ingress) adds X-Forwarded-For, which a client
        # cannot take away: so whatever routes reach web's catch-all, the public never
        # reads the metrics.
        if PROXIED_HEADERS & set(request.headers.keys()):
            raise HTTPException(404, detail="Not Found")
        return Response(await served_metrics.exposition(), media_type=CONTENT_TYPE)

    if docs_prefix is not None and settings.API_DOCS_ENABLED:
        # Before the routers: a route like ``{prefix}/{id}`` would otherwise shadow the docs.
        _mount_docs(app, docs_prefix)
    for router in routers:
        app.include_router(router, prefix=router_prefix)
    return app


# Swagger UI's files as the fastapi-swagger package ships them (its version pinned in
# the lock): name under ``{prefix}/docs/`` -> (file, media type).
_SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui.css", "text/css"),
    "favicon.png": ("favicon-32x32.png", "image/png"),
}


def _mount_docs(app: FastAPI, prefix: str) -> None:
    """The OpenAPI document and Swagger UI under ``prefix`` and at the root, the page's
    script and stylesheet served from under ``prefix``: nothing from another origin."""
    assets = files("fastapi_swagger.resources")
    contents = {
        name: (assets.joinpath(file).read_bytes(), media_type)
        for name, (file, media_type) in _SWAGGER_ASSETS.items()
    }

    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    def page(base: str) -> Callable[[], Awaitable[HTMLResponse]]:
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=f"{base}/openapi.json",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{prefix}/docs/swagger-ui-bundle.js",
                swagger_css_url=f"{prefix}/docs/swagger-ui.css",
                swagger_favicon_url=f"{prefix}/docs/favicon.png",
                # Swagger UI would otherwise show a badge fetched from swagger.io.
                swagger_ui_parameters={"validatorUrl": None},
            )

        return docs

    def asset(name: str) -> Callable[[], Awaitable[Response]]:
        body, media_type = contents[name]

        async def serve() -> Response:
            # Its name does not change with its content: browsers revalidate after a day.
            return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=86400"})

        return serve

    for base in ("", prefix):
        app.add_api_route(f"{base}/openapi.json", openapi, include_in_schema=False)
        app.add_api_route(f"{base}/docs", page(base), include_in_schema=False)
    for name in contents:
        app.add_api_route(f"{prefix}/docs/{name}", asset(name), include_in_schema=False)
