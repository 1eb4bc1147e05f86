"""Optional rich progress bars, on stderr (stdout stays clean for results); off by default."""
from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _shown(enabled: bool) -> bool:
    """Only on a terminal: elsewhere a transient bar draws nothing but a blank line, before an error too."""
    return enabled and _console().is_terminal


def track(items: Sequence[T], description: str, enabled: bool) -> Iterator[T]:
    if not _shown(enabled):
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, transient=True, console=_console())


def bar(enabled: bool):
    """A rich Progress (context manager) with a `status` field, or None when disabled."""
    if not _shown(enabled):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), transient=True, console=_console())
