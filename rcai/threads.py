"""CPU threads, once: the rule a thread count obeys and torch's intra-op threads set for a block."""
from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import RcaiError


def require_threads(threads: int | None, who: str = "--threads", default: str = "the target's default") -> None:
    """A thread count is >= 1 or left out (None: `default`); else one line naming `who`."""
    if threads is not None and int(threads) < 1:
        raise RcaiError(f"{who} must be >= 1 (or left out: {default}), got {threads}")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` for the block (None: unchanged)."""
    require_threads(threads)
    if threads is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
