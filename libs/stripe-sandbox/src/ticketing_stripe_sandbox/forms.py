"""Stripe's form encoding: ``metadata[order_id]=…``, ``expand[0]=…``, ``expand[]=…``.

The SDK sends v1 parameters as ``application/x-www-form-urlencoded`` bodies (POST)
or query strings (GET) with nested keys in brackets; lists are indexed
(``expand[0]``), and ``[]`` appends. ``decode`` turns the pairs into nested dicts
and lists; ``Params`` reads typed values out of them and names the parameter at
fault the way Stripe does (``payment_method_data[card][token]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeAlias
from urllib.parse import parse_qsl

# A value of Stripe's JSON objects and of decoded parameters.
Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None
Form: TypeAlias = str | list["Form"] | dict[str, "Form"]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
APPEND = ""


class FormError(ValueError):
    """A key that cannot be decoded (``a[b``) or used both as a value and a hash."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Invalid parameter: {key}")
        self.key = key


def pairs_of(raw: bytes | str) -> list[tuple[str, str]]:
    """The decoded ``key=value`` pairs of a body or query string, blanks kept (a blank
    value means "unset" to Stripe, e.g. ``metadata[key]=``)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return parse_qsl(text, keep_blank_values=True)


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Form]:
    """Nested parameters from form pairs: ``a[b][c]=v`` → ``{"a": {"b": {"c": "v"}}}``."""
    root: dict[str, Form] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise FormError(key)
        path = [match.group(1), *_PART.findall(match.group(2))]
        _insert(root, path, value, key)
    return {name: _lists(value) for name, value in root.items()}


def _insert(node: dict[str, Form], path: Sequence[str], value: str, key: str) -> None:
    head, rest = path[0], path[1:]
    if head == APPEND:
        # ``expand[]=a&expand[]=b``: each occurrence is the next index.
        head = str(len(node))
    if not rest:
        if isinstance(node.get(head), dict):
            raise FormError(key)
        node[head] = value
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise FormError(key)
    _insert(child, rest, value, key)


def _lists(value: Form) -> Form:
    """Hashes whose keys are all indexes become lists, in index order."""
    if not isinstance(value, dict):
        return value
    converted = {key: _lists(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def fingerprint(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """What the idempotency layer compares: the same parameters in any order are the same."""
    return tuple(sorted(pairs))


def param_name(path: Sequence[str]) -> str:
    """``["payment_method_data", "card", "token"]`` → ``payment_method_data[card][token]``."""
    return path[0] + "".join(f"[{part}]" for part in path[1:])
