"""Typed configs: frozen dataclasses that round-trip through JSON (saved in every run folder)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from .errors import RcaiError

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """Mixin for dataclass configs: `to_dict()` and `from_dict(d)`; unknown keys and bad values are
    one-line RcaiErrors, JSON lists come back as tuples where the field is a tuple."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any], where: str | None = None) -> C:
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(fields)
        if unknown:
            raise RcaiError(f"{where}: unknown keys {sorted(unknown)} (unknown {cls.__name__} fields; known: {sorted(fields)})")
        values = {k: tuple(v) if isinstance(v, list) and "tuple" in str(fields[k].type) else v for k, v in d.items()}
        try:
            return cls(**values)
        except TypeError as e:
            raise RcaiError(f"{where}: {e}") from None
