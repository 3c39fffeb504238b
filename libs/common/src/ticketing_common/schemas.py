"""The base of every JSON body and event payload: camelCase on the wire, snake_case in code.

Request and response bodies of every service, what the web client reads from the
APIs, and the event payloads all build on :class:`CamelModel`, so the wire
spelling of a field is decided once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A body as JSON spells it: ``userId`` on the wire, ``user_id`` in code.

    Input is read by either spelling, so code (and tests) build models by field
    name. Unknown fields are ignored, so a producer adding a field (a service to its
    API, a publisher to its event) never breaks an older reader.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )
