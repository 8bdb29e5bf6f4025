"""Field types and the strict base model shared by the request bodies of every domain."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from services.publisher import limits
from shared.http_limits import BIGINT_MAX


def _contact_id_text(value: Any) -> Any:
    """The seed sends numbers (13507); every contact id is kept as its decimal text."""
    if isinstance(value, bool):
        raise ValueError("contactId must be a string or an integer")
    return str(value) if isinstance(value, int) else value


ContactId = Annotated[
    str,
    BeforeValidator(_contact_id_text),
    Field(min_length=1, max_length=200),
    AfterValidator(limits.text),
]


Personalization = Annotated[dict[str, Any], AfterValidator(limits.personalization)]


Formulas = Annotated[dict[str, str], AfterValidator(limits.formulas)]


Attributes = Annotated[dict[str, Any], AfterValidator(limits.attributes)]


Subscriptions = Annotated[dict[str, bool], AfterValidator(limits.subscriptions)]


Tag = Annotated[str, Field(min_length=1, max_length=100)]


AppKey = Annotated[str, Field(min_length=1, max_length=100)]


SourceId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
