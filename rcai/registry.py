"""A named registry (timm-style): ops, presets, softmax variants, penalties, samplers, targets, cost
models, proxies, search strategies, RL reward forms, executors and pipeline search stages are all
registered by name, so a new one is added — and tested — by registering it."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import RcaiError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, on_register: Callable[[str, T], None] | None = None) -> Callable[[T], T]:
        """Decorator: `@REG.register("name")`. Registering another object under a taken name is an error."""

        def deco(obj: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not obj and _qualname(old) != _qualname(obj):  # a reloaded module may re-register
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if on_register is not None:
                on_register(name, obj)
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RcaiError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', id(obj))}"
