"""NATS users and subject permissions, derived from the service specs.

Every service on the bus connects as its own user, named after its spec, and may
publish and subscribe to the subjects its code uses and nothing else:

- its bus: create or update the two streams, and receive replies and pulled events
  in its own inboxes (``_INBOX.<service>.>``, ``events.bus.inbox_prefix``);
- its outbox relay (or, for expiration, its job worker): the subjects of the events
  its spec ``publishes``;
- its listeners: for each event its spec ``consumes``, look up, create and read its
  durable consumer ``<service>-<event>``, acknowledge its messages, and dead-letter
  them to ``<namespace>.dead.<service>.<event>``;
- its revocation follower (every service the gateway routes to): an ephemeral
  consumer of ``session:revoked``, which nats-py names at random. Its user may
  create consumers on the events stream only when they filter ``session:revoked``,
  and may read consumers of any name, except every other service's durable ones.

``users`` lists them (and the operators' ``admin``, allowed everything);
``authorization_config`` renders them as a nats-server ``authorization`` block.
``ticketing up`` writes it with the passwords it keeps in its data dir;
``infra/k8s/base/nats/configmap.yaml`` is this module's output
(``python -m ticketing_common.natsauth``), each password read from an environment
variable of the NATS container (``password_variable``).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ticketing_common.events.bus import EventBus, inbox_prefix
from ticketing_common.events.contracts import SessionRevoked
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.settings import BusSettings
from ticketing_common.spec import ServiceSpec, installed_specs

ADMIN_USER = "admin"
"""The operators' user (replaying dead letters, pausing consumers, inspecting streams)."""
DEFAULT_NAMESPACE: str = BusSettings.model_fields["NATS_NAMESPACE"].default
JS_API = "$JS.API"
KUBERNETES_CONFIG_PATH = "infra/k8s/base/nats/configmap.yaml"

Specs = Sequence[ServiceSpec[Any]]


@dataclass(frozen=True)
class Permissions:
    """What one user may do; a subject that no ``allow`` pattern matches, or that a
    ``deny`` pattern matches, is refused by the server."""

    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()

    def may_publish(self, subject: str) -> bool:
        return _any_matches(self.publish, subject) and not _any_matches(self.deny_publish, subject)

    def may_subscribe(self, subject: str) -> bool:
        return _any_matches(self.subscribe, subject)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` one or more at the end."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(given) > index
        if index >= len(given) or part not in ("*", given[index]):
            return False
    return len(given) == len(wanted)


def _any_matches(patterns: Sequence[str], subject: str) -> bool:
    return any(subject_matches(pattern, subject) for pattern in patterns)


def _listeners(bus: EventBus, spec: ServiceSpec[Any]) -> ListenerGroup:
    """The listener group the app builder makes for ``spec`` (not run): its durable
    consumers' names and filters."""
    return ListenerGroup(bus, service=spec.name)


def durable_consumers(spec: ServiceSpec[Any], namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    group = _listeners(EventBus("", namespace), spec)
    return [group.durable_name(event.event_type) for event in spec.consumes]


def permissions(
    spec: ServiceSpec[Any], specs: Specs, namespace: str = DEFAULT_NAMESPACE
) -> Permissions:
    """The permissions of ``spec``'s user; ``specs`` are all the services (whose
    durable consumers a revocation follower must not read)."""
    if not spec.uses_nats:
        raise ValueError(f"{spec.name} is not on the bus")
    bus = EventBus("", namespace)
    subjects = bus.subjects
    stream, dead = subjects.stream, subjects.dead_letter_stream
    publish = [
        f"{JS_API}.STREAM.{action}.{name}"
        for name in (stream, dead)
        for action in ("CREATE", "UPDATE")
    ]
    publish += [subjects.of(event.event_type) for event in spec.publishes]
    group = _listeners(bus, spec)
    for event in spec.consumes:
        consumer = group.consumer_config(event.event_type)
        durable = consumer.durable_name
        publish += [
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.{consumer.filter_subject}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
            subjects.dead_letter(spec.name, event.event_type),
        ]
    deny: list[str] = []
    if spec.follows_revocations:
        revoked = subjects.of(SessionRevoked.event_type)
        publish += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.*.{revoked}",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        ]
        for other in specs:
            if other.name == spec.name:
                continue
            for durable in durable_consumers(other, namespace):
                deny += [
                    f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
                    f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
                    f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
                ]
    return Permissions(
        user=spec.name,
        publish=tuple(publish),
        subscribe=(f"{inbox_prefix(spec.name)}.>",),
        deny_publish=tuple(deny),
    )


def users(specs: Specs, namespace: str = DEFAULT_NAMESPACE) -> list[Permissions]:
    """One user per service on the bus, in the specs' order."""
    names = [spec.name for spec in specs]
    if ADMIN_USER in names:
        raise ValueError(f"a service may not be named {ADMIN_USER!r}: it is the operators' user")
    return [permissions(spec, specs, namespace) for spec in specs if spec.uses_nats]


def password_variable(user: str) -> str:
    """The environment variable the cluster's NATS reads ``user``'s password from."""
    return f"NATS_{user.upper().replace('-', '_')}_PASSWORD"


PasswordOf = Callable[[str], str]
"""A user's password as a nats-server config value: quoted, or a ``$VARIABLE``."""


def literal_passwords(passwords: Mapping[str, str]) -> PasswordOf:
    """The passwords themselves (``ticketing up``'s private config file)."""
    return lambda user: json.dumps(passwords[user])


def environment_passwords(user: str) -> str:
    """Each password read from ``password_variable(user)`` when the server starts."""
    return "$" + password_variable(user)


def _list(key: str, subjects: Sequence[str], indent: str) -> list[str]:
    # One a line, quoted: a leading "$" is then a subject ($JS…), not a variable.
    return [f"{indent}{key}: [", *(f"{indent}  {json.dumps(s)}" for s in subjects), f"{indent}]"]


def _user_block(user: str, password: str, permissions: Permissions | None) -> list[str]:
    lines = ["{", f"  user: {json.dumps(user)}", f"  password: {password}"]
    if permissions is not None:
        lines += ["  permissions: {", "    publish: {"]
        lines += _list("allow", permissions.publish, "      ")
        if permissions.deny_publish:
            lines += _list("deny", permissions.deny_publish, "      ")
        lines += ["    }", "    subscribe: {"]
        lines += _list("allow", permissions.subscribe, "      ")
        lines += ["    }", "  }"]
    return [*lines, "}"]


def authorization_config(
    specs: Specs, password: PasswordOf, namespace: str = DEFAULT_NAMESPACE
) -> str:
    """The nats-server ``authorization`` block: ``admin`` (everything), then one user per
    service with its ``permissions`` (everything else denied)."""
    blocks = [_user_block(ADMIN_USER, password(ADMIN_USER), None)]
    blocks += [_user_block(u.user, password(u.user), u) for u in users(specs, namespace)]
    lines = [f"    {line}" for block in blocks for line in block]
    return "\n".join(["authorization {", "  users = [", *lines, "  ]", "}", ""])


# The cluster's server settings, rendered together with its users so the ConfigMap is
# generated whole (SERVER_NAME is the pod's name, set by the StatefulSet).
KUBERNETES_SERVER = """\
server_name: $SERVER_NAME
port: 4222
http_port: 8222
pid_file: /var/run/nats/nats.pid
lame_duck_duration: 30s
lame_duck_grace_period: 10s

jetstream {
  store_dir: /data
  max_memory_store: 256MB
  max_file_store: 8GB
}

cluster {
  name: ticketing
  port: 6222
  routes: [
    nats://nats-0.nats-headless:6222
    nats://nats-1.nats-headless:6222
    nats://nats-2.nats-headless:6222
  ]
  connect_retries: 120
}
"""


def kubernetes_config_map(specs: Specs, namespace: str = DEFAULT_NAMESPACE) -> str:
    """``infra/k8s/base/nats/configmap.yaml``: the ConfigMap ``nats-config`` whose
    ``nats.conf`` is the cluster's server settings and its users, each password from the
    NATS container's environment."""
    users_config = authorization_config(specs, environment_passwords, namespace)
    config = f"{KUBERNETES_SERVER}\n{users_config}"
    variables = "".join(
        f"#   {password_variable(user)}\n"
        for user in [ADMIN_USER, *(u.user for u in users(specs, namespace))]
    )
    return (
        "# Generated from the service specs by `uv run python -m ticketing_common.natsauth`:\n"
        "# do not edit (see docs/nats-permissions.md). The NATS container reads each user's\n"
        "# password from its environment:\n"
        f"{variables}"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: nats-config\n"
        "  labels:\n"
        "    app.kubernetes.io/name: nats\n"
        "data:\n"
        "  nats.conf: |\n" + textwrap.indent(config, "    ", lambda line: bool(line.strip()))
    )


def main() -> None:
    """Print the cluster's NATS ConfigMap for the installed services."""
    sys.stdout.write(kubernetes_config_map(installed_specs()))


if __name__ == "__main__":
    main()
