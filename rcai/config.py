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


def require_counts(values: Mapping[str, Any], what: str = "") -> None:
    """Each value a whole number >= 1 (bools are not), else one line naming it: `what` prefixes the
    name ("--" for a CLI option, "proxy " for a nested config)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RcaiError(f"{what}{name} must be a whole number >= 1, got {v!r}")


def counts_of(obj: Any, *names: str) -> dict[str, Any]:
    """{name: obj.name}: the fields of a config that `require_counts` checks."""
    return {n: getattr(obj, n) for n in names}
