"""Reading a served app's ``/metrics`` in tests: ``await scraped(client)`` is every
sample of one scrape, ``value(samples, name, **labels)`` one of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ticketing_common.metrics import METRICS_PATH


@dataclass(frozen=True)
class Sample:
    family: str
    name: str
    labels: Mapping[str, str]
    value: float


async def scraped(client: httpx.AsyncClient) -> list[Sample]:
    """One scrape of the app's ``/metrics``, parsed."""
    response = await client.get(METRICS_PATH)
    response.raise_for_status()
    return [
        Sample(family.name, sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The sample with that name and those labels (others may be there too); None if none
    or if several match."""
    found = [
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    return found[0] if len(found) == 1 else None


def families(samples: list[Sample]) -> set[str]:
    """The metric names in a scrape (a counter's without its ``_total``)."""
    return {sample.family for sample in samples}
