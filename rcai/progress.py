"""One progress bar for all long work (rich, imported lazily, on stderr; a no-op when disabled).

    with progress_bar(enabled, "training", total=steps, done=start) as advance:
        advance(status=f"loss {loss:.4f}")
"""
from __future__ import annotations

from typing import Callable


class progress_bar:
    def __init__(self, enabled: bool, label: str, total: int, done: int = 0, transient: bool = True):
        self.enabled, self.label, self.total, self.done, self.transient = enabled, label, total, done, transient

    def __enter__(self) -> Callable[..., None]:
        if not self.enabled:
            return lambda status="": None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[status]}"), transient=self.transient, console=Console(stderr=True))
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total, completed=self.done, status="")
        return lambda status="": self.bar.update(task, advance=1, status=status)

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self.bar.stop()
        return False
