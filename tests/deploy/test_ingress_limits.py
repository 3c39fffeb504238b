"""In Kubernetes, ingress-nginx bounds request bodies to the services' own limit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ticketing_common.app import MAX_BODY_BYTES

INFRA = Path(__file__).resolve().parents[2] / "infra" / "k8s"
BODY_SIZE = "nginx.ingress.kubernetes.io/proxy-body-size"
_NGINX_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def _nginx_size(value: str) -> int:
    """nginx's size syntax: a number with an optional k/m/g suffix (powers of 1024)."""
    match = re.fullmatch(r"(\d+)([kmg]?)", value.strip().lower())
    assert match, f"not an nginx size: {value!r}"
    return int(match[1]) * _NGINX_UNITS[match[2]]


def _ingresses() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(INFRA.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Ingress"
    ]


def test_every_ingress_limits_the_body_to_the_services_limit() -> None:
    ingresses = _ingresses()

    assert ingresses
    for ingress in ingresses:
        annotations = ingress["metadata"].get("annotations", {})
        name = ingress["metadata"]["name"]
        assert BODY_SIZE in annotations, f"Ingress {name} has no body size limit"
        assert _nginx_size(annotations[BODY_SIZE]) == MAX_BODY_BYTES, name
