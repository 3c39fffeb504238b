"""The metrics' catalog (docs/operations.md#metrics) against the code that registers them and the
Grafana dashboard that queries them: nothing queried is undocumented, nothing
documented is missing from the code, nothing registered is undocumented."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRIC_CLASSES = {"Counter", "Gauge", "Histogram"}
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def documented() -> set[str]:
    """The first cell of each table row of docs/operations.md#metrics that names a metric."""
    text = (ROOT / "docs" / "operations.md").read_text()
    return set(re.findall(r"^\| `(ticketing_[a-z_]+)` \|", text, flags=re.MULTILINE))


def _name_of(call: ast.Call) -> str | None:
    """The metric name a call registers: ``Counter("name", ...)``, or an ``Outcomes``
    subclass' ``super().__init__(metrics, "name", ...)``."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in METRIC_CLASSES and call.args:
        first = call.args[0]
        return str(first.value) if isinstance(first, ast.Constant) else None
    if isinstance(func, ast.Attribute) and func.attr == "__init__" and len(call.args) > 1:
        second = call.args[1]
        if isinstance(second, ast.Constant) and str(second.value).startswith("ticketing_"):
            return str(second.value)
    return None


def registered() -> set[str]:
    sources = [*ROOT.glob("libs/common/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    names: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and (name := _name_of(node)) is not None:
                names.add(name)
    return names


def queried() -> set[str]:
    dashboard = json.loads((ROOT / "infra" / "grafana" / "ticketing.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {_family(name) for name in re.findall(r"ticketing_[a-z_]+", " ".join(exprs))}


def _family(series: str) -> str:
    """``ticketing_x_total`` -> ``ticketing_x`` when that is a registered metric."""
    for suffix in SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in registered_names:
            return series.removesuffix(suffix)
    return series


registered_names = registered()


def test_every_registered_metric_is_documented_and_every_documented_one_registered() -> None:
    assert registered_names
    assert documented() == registered_names


def test_the_dashboard_queries_only_documented_metrics() -> None:
    assert queried() <= documented()


def test_the_dashboard_shows_every_documented_metric() -> None:
    assert documented() <= queried()
