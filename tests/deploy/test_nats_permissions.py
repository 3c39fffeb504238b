"""The cluster's NATS users and permissions are the ones the specs derive: the committed
``nats-config`` is the generator's output, and each service may publish, consume and
subscribe to exactly what it uses (SPEC §4's flows), nothing else. The same
permissions are exercised on a real server in ``libs/common/tests/test_natsauth.py``."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.rendering import TARGETS, Rendered, api_container, environment, pod_containers
from tests.deploy.specs import ROOT, SPEC_IDS, SPECS, needs_every_spec
from ticketing_common.events.contracts import EventType
from ticketing_common.natsauth import (
    ADMIN_USER,
    DEFAULT_NAMESPACE,
    KUBERNETES_CONFIG_PATH,
    durable_consumers,
    kubernetes_config_map,
    password_variable,
    permissions,
)
from ticketing_common.spec import ServiceSpec

CONFIG_MAP = ROOT / KUBERNETES_CONFIG_PATH
NATS_USERS = "nats-users"
# How nats.conf reads a password from the server's environment.
PASSWORD_REFERENCE = re.compile(r"^\s*password: \$(?P<variable>[A-Z][A-Z0-9_]*)$", re.MULTILINE)
REGENERATE = "uv run python -m ticketing_common.natsauth > " + KUBERNETES_CONFIG_PATH

# Who publishes and who consumes what (SPEC §4), written out here rather than read
# from the specs, so a spec that drifts from the system's flows fails.
PUBLISHES = {
    "auth": {EventType.SESSION_REVOKED, EventType.USER_CREATED},
    "tickets": {EventType.TICKET_CREATED, EventType.TICKET_UPDATED, EventType.TICKET_WITHDRAWN},
    "orders": {EventType.ORDER_CREATED, EventType.ORDER_CANCELLED, EventType.ORDER_COMPLETED},
    "expiration": {EventType.EXPIRATION_COMPLETE},
    "payments": {
        EventType.PAYMENT_CREATED,
        EventType.PAYMENT_REFUNDED,
        EventType.PAYMENT_DECLINED,
    },
    "notifications": set(),
    "web": set(),
}
CONSUMES = {
    "auth": set(),
    "tickets": {EventType.ORDER_CREATED, EventType.ORDER_CANCELLED, EventType.ORDER_COMPLETED},
    "orders": {
        EventType.TICKET_CREATED,
        EventType.TICKET_UPDATED,
        EventType.TICKET_WITHDRAWN,
        EventType.EXPIRATION_COMPLETE,
        EventType.PAYMENT_CREATED,
    },
    "expiration": {EventType.ORDER_CREATED},
    "payments": {EventType.ORDER_CREATED, EventType.ORDER_CANCELLED},
    "notifications": {
        EventType.USER_CREATED,
        EventType.TICKET_CREATED,
        EventType.TICKET_UPDATED,
        EventType.TICKET_WITHDRAWN,
        EventType.ORDER_CREATED,
        EventType.ORDER_COMPLETED,
        EventType.ORDER_CANCELLED,
        EventType.PAYMENT_DECLINED,
        EventType.PAYMENT_REFUNDED,
    },
    "web": set(),
}
FOLLOWS_REVOCATIONS = {"auth", "tickets", "orders", "payments", "web"}


def config_map() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG_MAP.read_text())
    return loaded


def test_the_committed_nats_config_is_the_generators_output() -> None:
    needs_every_spec()
    assert CONFIG_MAP.read_text() == kubernetes_config_map(SPECS), (
        f"{KUBERNETES_CONFIG_PATH} is out of date; regenerate it: {REGENERATE}"
    )


def test_the_cluster_runs_the_namespace_the_permissions_are_for() -> None:
    settings = yaml.safe_load((ROOT / "infra/k8s/base/config.yaml").read_text())
    assert settings["data"]["NATS_NAMESPACE"] == DEFAULT_NAMESPACE


def test_every_user_reads_its_password_from_the_environment_never_from_the_file() -> None:
    needs_every_spec()
    config = config_map()["data"]["nats.conf"]
    for user in [ADMIN_USER, *(spec.name for spec in SPECS if spec.uses_nats)]:
        assert f'user: "{user}"\n' in config
        assert f"password: ${password_variable(user)}\n" in config
    assert config.count("password:") == 1 + len([s for s in SPECS if s.uses_nats])


def event_subjects(event_types: set[EventType]) -> set[str]:
    return {f"ticketing.events.{event.subject_suffix}" for event in event_types}


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_every_subject_a_service_uses_is_permitted_to_it_and_nothing_else(
    spec: ServiceSpec[Any],
) -> None:
    needs_every_spec()
    granted = permissions(spec, SPECS)
    stream, api = "TICKETING_EVENTS", "$JS.API"
    durables = [f"{spec.name}-{event.slug}" for event in CONSUMES[spec.name]]
    assert sorted(durable_consumers(spec)) == sorted(durables)

    # Everything it uses is permitted.
    uses = event_subjects(PUBLISHES[spec.name]) | {
        f"{api}.STREAM.{action}.{name}"
        for action in ("CREATE", "UPDATE")
        for name in (stream, "TICKETING_DEAD_LETTERS")
    }
    for event in CONSUMES[spec.name]:
        durable = f"{spec.name}-{event.slug}"
        uses |= {
            f"{api}.CONSUMER.INFO.{stream}.{durable}",
            f"{api}.CONSUMER.CREATE.{stream}.{durable}.ticketing.events.{event.subject_suffix}",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.1.2.3.1700000000000000000.0",
            f"ticketing.dead.{spec.name}.{event.subject_suffix}",
        }
    if spec.name in FOLLOWS_REVOCATIONS:
        uses |= {
            f"{api}.CONSUMER.CREATE.{stream}.Zq8aRevoke.ticketing.events.session.revoked",
            f"{api}.CONSUMER.INFO.{stream}.Zq8aRevoke",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.Zq8aRevoke",
        }
    assert [subject for subject in uses if not granted.may_publish(subject)] == []
    assert granted.may_subscribe(f"_INBOX.{spec.name}.Zq8aInbox.1")

    # Nothing else: no other event, no other service's consumer, dead letters or inbox.
    others = [other for other in SPECS if other.name != spec.name]
    refused = event_subjects(set(EventType) - PUBLISHES[spec.name]) | {
        f"{api}.STREAM.DELETE.{stream}",
        f"{api}.STREAM.PURGE.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.CONSUMER.DELETE.{stream}.Zq8aRevoke",
        f"{api}.CONSUMER.CREATE.{stream}.Zq8aRevoke.ticketing.events.order.created",
        f"{api}.CONSUMER.CREATE.{stream}",
        "$JS.API.INFO",
    }
    for other in others:
        refused |= {f"ticketing.dead.{other.name}.order.created"}
        for event in CONSUMES[other.name]:
            durable = f"{other.name}-{event.slug}"
            refused |= {
                f"{api}.CONSUMER.INFO.{stream}.{durable}",
                f"{api}.CONSUMER.CREATE.{stream}.{durable}.ticketing.events.{event.subject_suffix}",
                f"{api}.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.ACK.{stream}.{durable}.1.2.3.1700000000000000000.0",
            }
        assert not granted.may_subscribe(f"_INBOX.{other.name}.Zq8aInbox.1")
    assert [subject for subject in refused if granted.may_publish(subject)] == []
    for subject in ("ticketing.events.>", "ticketing.events.order.created", "_INBOX.x", ">"):
        assert not granted.may_subscribe(subject)


# ---------------------------------------------------------------- the passwords in the cluster


def nats_users_refs(manifests: Rendered) -> set[tuple[str, str, str, str]]:
    """(workload, container, variable, key) of every variable taken from ``nats-users``."""
    return {
        (doc["metadata"]["name"], container["name"], variable["name"], ref["key"])
        for doc in manifests.workloads()
        for container in pod_containers(doc)
        for variable in container.get("env", [])
        if (ref := variable.get("valueFrom", {}).get("secretKeyRef", {})).get("name") == NATS_USERS
    }


@pytest.mark.parametrize("target", TARGETS)
def test_the_nats_pods_get_every_password_the_rendered_config_reads(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    """nats-server refuses to start while a variable nats.conf reads is unset: the NATS
    container takes the whole of ``nats-users``, whose keys (declared for dev, created by
    the documented command in prod) are exactly the variables the config reads."""
    needs_every_spec()
    manifests = rendered[target]
    config = manifests.get("ConfigMap", "nats-config")["data"]["nats.conf"]
    variables = {match["variable"] for match in PASSWORD_REFERENCE.finditer(config)}
    users = [ADMIN_USER, *(spec.name for spec in SPECS if spec.uses_nats)]
    assert variables == {password_variable(user) for user in users}

    pod = manifests.get("StatefulSet", "nats")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"secretRef": {"name": NATS_USERS}} in container.get("envFrom", [])
    assert variables == dev_secrets[NATS_USERS].keys()
    # nats-server parses an environment value like a configuration value.
    assert all(value[:1].isalpha() for value in dev_secrets[NATS_USERS].values())
    docs = (ROOT / "docs" / "deploy.md").read_text()
    command = docs[docs.index(f"kubectl create secret generic {NATS_USERS}") :]
    command = command[: command.index("\n\n")]
    assert {f"--from-literal={variable}=" for variable in variables} == set(
        re.findall(r"--from-literal=[A-Z_]+=", command)
    )


@pytest.mark.parametrize("target", TARGETS)
def test_each_service_on_the_bus_gets_its_own_nats_password_and_nothing_else_does(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    needs_every_spec()
    manifests = rendered[target]
    on_the_bus = [spec for spec in SPECS if spec.uses_nats]
    assert nats_users_refs(manifests) == {
        (spec.name, spec.name, "NATS_PASSWORD", password_variable(spec.name)) for spec in on_the_bus
    }
    for spec in on_the_bus:
        container = api_container(manifests.get("Deployment", spec.name), spec)
        values = environment(container, manifests, dev_secrets)
        # The user is the spec's name: NATS_USER unset or that name, SERVICE_NAME likewise.
        assert values.get("NATS_USER", spec.name) == spec.name
        assert values.get("SERVICE_NAME", spec.name) == spec.name
    # Only the NATS pods take the whole Secret.
    takers = {
        doc["metadata"]["name"]
        for doc in manifests.workloads()
        for container in pod_containers(doc)
        for source in container.get("envFrom", [])
        if source.get("secretRef", {}).get("name") == NATS_USERS
    }
    assert takers == {"nats"}
