"""What every resource answers the same way: ``expand``, Stripe's list object with
its pages, and retrieving one object by id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ticketing_stripe_sandbox.errors import StripeError, invalid_params
from ticketing_stripe_sandbox.forms import Form, Json
from ticketing_stripe_sandbox.models import Charge, PaymentIntent, Refund
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account

# Which fields of which object ``expand`` may replace by the object they name.
EXPANDABLE: dict[str, dict[str, str]] = {
    "payment_intent": {"latest_charge": "charge", "payment_method": "payment_method"},
    "charge": {"payment_intent": "payment_intent"},
    "refund": {"charge": "charge", "payment_intent": "payment_intent"},
    "payment_method": {},
}
LIST_PARAMS = ("limit", "starting_after", "ending_before", "expand")

Listed = PaymentIntent | Charge | Refund


# -- expand --------------------------------------------------------------------------


def expansions(params: Params, object_type: str, *, listed: bool = False) -> list[str]:
    """The ``expand[]`` paths of a request, checked against what ``object_type`` (or a list
    of them) can expand; a wrong one is Stripe's 400, before anything runs."""
    paths = params.expand()
    for path in paths:
        parts = path.split(".")
        if listed:
            if parts[0] != "data":
                raise _cannot_expand(parts[0])
            parts = parts[1:]
        current = object_type
        for part in parts:
            target = EXPANDABLE[current].get(part)
            if target is None:
                raise _cannot_expand(part)
            current = target
    return paths


def _cannot_expand(field: str) -> StripeError:
    return invalid_params(f"This property cannot be expanded ({field}).", param="expand")


def expand(account: Account, obj: dict[str, Json], paths: Sequence[str]) -> dict[str, Json]:
    """``obj`` with the fields ``paths`` name replaced by the objects they refer to."""
    result = dict(obj)
    for path in paths:
        _expand_path(account, result, path.split("."))
    return result


def _expand_path(account: Account, obj: dict[str, Json], parts: Sequence[str]) -> None:
    head, rest = parts[0], parts[1:]
    value = obj.get(head)
    if head == "data" and isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and rest:
                _expand_path(account, item, rest)
        return
    if isinstance(value, str):
        found = account.lookup(value)
        if found is None:
            return
        obj[head] = value = found
    if isinstance(value, dict) and rest:
        _expand_path(account, value, rest)


# -- lists ---------------------------------------------------------------------------


def list_page(
    account: Account,
    objects: Sequence[Listed],
    params: Params,
    paths: Sequence[str],
    url: str,
) -> dict[str, Json]:
    """Stripe's list object over ``objects`` (newest first) with ``limit``,
    ``starting_after`` and ``ending_before``, expanded by ``paths``."""
    limit = params.integer("limit", minimum=1)
    if limit is None:
        limit = 10
    if limit > 100:
        raise invalid_params(
            "This value must be less than or equal to 100.",
            param="limit",
            code="parameter_invalid_integer",
        )
    starting_after = params.string("starting_after")
    ending_before = params.string("ending_before")
    ids = [o.id for o in objects]
    selected = list(objects)
    if starting_after:
        if starting_after not in ids:
            raise _no_such_object(starting_after, "starting_after")
        selected = selected[ids.index(starting_after) + 1 :]
        page = selected[:limit]
    elif ending_before:
        if ending_before not in ids:
            raise _no_such_object(ending_before, "ending_before")
        selected = selected[: ids.index(ending_before)]
        page = selected[-limit:]
    else:
        page = selected[:limit]
    listed: dict[str, Json] = {
        "object": "list",
        "data": [o.to_json() for o in page],
        "has_more": len(selected) > len(page),
        "url": url,
    }
    return expand(account, listed, paths)


def _no_such_object(object_id: str, param: str) -> StripeError:
    return invalid_params(f"No such object: '{object_id}'", param=param, code="resource_missing")


# -- retrieve ------------------------------------------------------------------------


def retrieve(
    account: Account, form: Mapping[str, Form], object_id: str, kind: str
) -> dict[str, Json]:
    params = Params(form, ("expand", "client_secret") if kind == "payment_intent" else ("expand",))
    paths = expansions(params, kind)
    found: Listed
    if kind == "payment_intent":
        found = account.payment_intent(object_id)
    elif kind == "charge":
        found = account.charge(object_id)
    else:
        found = account.refund(object_id)
    return expand(account, found.to_json(), paths)
