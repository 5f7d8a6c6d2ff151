"""The base of every request body: unknown fields, non-finite numbers and text that is not valid
Unicode are refused at the edge, as a 422 naming the field, before anything else sees them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _lone_surrogate(text: str) -> int | None:
    """Position of the first lone UTF-16 surrogate (JSON's ``"\\ud800"``), which no UTF-8 text holds."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        at = _lone_surrogate(value)
        if at is not None:
            raise ValueError(f"{where} is not valid Unicode text: a lone surrogate (U+{ord(value[at]):04X}) at "
                             f"character {at}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_text(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} key")
            _check_text(item, f"{where}[{key!r}]")


class RequestBody(BaseModel):
    """A request body: extra fields, ``NaN``/``Infinity`` and lone surrogates are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_text(cls, value: Any, info: ValidationInfo) -> Any:
        _check_text(value, info.field_name or "value")
        return value
