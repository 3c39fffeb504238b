"""Typed reading of decoded Stripe parameters, with Stripe's 400s for bad ones.

Every endpoint names the parameters it accepts; anything else is Stripe's
``parameter_unknown``, so a typo in a client fails here as it would against
Stripe instead of being silently ignored. Errors raised while reading are
validation failures: the idempotency layer does not save them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ticketing_stripe_sandbox.errors import invalid_params, parameter_missing, parameter_unknown
from ticketing_stripe_sandbox.forms import Form, param_name

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500


class Params:
    """The parameters of one request (or one nested hash of it)."""

    def __init__(
        self,
        values: Mapping[str, Form],
        allowed: Collection[str],
        path: Sequence[str] = (),
    ) -> None:
        self.values = values
        self.path = tuple(path)
        for key in values:
            if key not in allowed:
                raise parameter_unknown(self.name(key))

    def name(self, key: str) -> str:
        return param_name([*self.path, key])

    def has(self, key: str) -> bool:
        return key in self.values

    def string(
        self, key: str, *, required: bool = False, choices: Collection[str] | None = None
    ) -> str | None:
        value = self.values.get(key)
        if value is None:
            if required:
                raise parameter_missing(self.name(key))
            return None
        if not isinstance(value, str):
            raise invalid_params(
                f"Invalid string: {value!r}", param=self.name(key), code="parameter_invalid_string"
            )
        if required and value == "":
            raise invalid_params(
                f"You passed an empty string for '{self.name(key)}'. We assume empty values "
                "are an attempt to unset a parameter; however '"
                f"{self.name(key)}' cannot be unset. You should remove '{self.name(key)}' "
                "from your request or supply a non-empty value.",
                param=self.name(key),
                code="parameter_invalid_empty",
            )
        if choices is not None and value not in choices:
            raise invalid_params(
                f"Invalid {self.name(key)}: must be one of {', '.join(sorted(choices))}",
                param=self.name(key),
                code="parameter_invalid_string",
            )
        return value

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            value = int(text, 10)
        except ValueError:
            raise invalid_params(
                f"Invalid integer: {text}", param=self.name(key), code="parameter_invalid_integer"
            ) from None
        if minimum is not None and value < minimum:
            raise invalid_params(
                f"This value must be greater than or equal to {minimum}.",
                param=self.name(key),
                code="parameter_invalid_integer",
            )
        return value

    def boolean(self, key: str) -> bool | None:
        text = self.string(key)
        if text is None:
            return None
        if text not in ("true", "false"):
            raise invalid_params(
                f"Invalid boolean: {text}", param=self.name(key), code="parameter_invalid_boolean"
            )
        return text == "true"

    def hash(self, key: str, allowed: Collection[str]) -> Params | None:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise invalid_params(
                "Invalid object", param=self.name(key), code="parameter_invalid_string"
            )
        return Params(value, allowed, (*self.path, key))

    def strings(self, key: str) -> list[str] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid_params("Invalid array", param=self.name(key))
        return [item for item in value if isinstance(item, str)]

    def metadata(self, key: str = "metadata") -> dict[str, str] | None:
        """``metadata[k]=v`` pairs; a blank value unsets ``k`` (kept here as ``""``), a blank
        ``metadata=`` unsets them all (an empty dict)."""
        value = self.values.get(key)
        if value is None:
            return None
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid_params("Invalid hash", param=self.name(key))
        if len(value) > METADATA_MAX_KEYS:
            raise invalid_params(
                f"Invalid {key}: metadata can have at most {METADATA_MAX_KEYS} keys.",
                param=self.name(key),
            )
        result: dict[str, str] = {}
        for name, item in value.items():
            if not isinstance(item, str):
                raise invalid_params("Invalid string", param=param_name([key, name]))
            if len(name) > METADATA_KEY_MAX:
                raise invalid_params(
                    f"Metadata keys can have at most {METADATA_KEY_MAX} characters.",
                    param=param_name([key, name]),
                )
            if len(item) > METADATA_VALUE_MAX:
                raise invalid_params(
                    f"Metadata values can have at most {METADATA_VALUE_MAX} characters.",
                    param=param_name([key, name]),
                )
            result[name] = item
        return result

    def expand(self) -> list[str]:
        return self.strings("expand") or []
