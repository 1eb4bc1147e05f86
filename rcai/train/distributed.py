"""Data-parallel training with torch.distributed, for every training that runs under `torchrun`
(the bilevel DARTS search, the one-shot supernet): gloo on CPUs, NCCL with one GPU per rank
(cuda:LOCAL_RANK). Gradients are averaged across ranks by all-reduce, so every rank applies the same
update; rank 0 broadcasts the initial state."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


class process_group:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL where the search
    trains on CUDA GPUs, gloo on CPUs; a no-op otherwise, or when the caller has joined one already."""

    def __init__(self, train_device: str = "cpu") -> None:
        self.train_device = train_device

    def __enter__(self):
        self.owned = False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
            dev = rank_device(self.train_device)
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            self.owned = True
        return self

    def __exit__(self, *exc):
        if self.owned:
            dist.destroy_process_group()
        return False


def rank_device(train_device: str) -> torch.device:
    """This rank's training device: under torchrun, `auto` and `cuda` mean the GPU of LOCAL_RANK
    (one per rank); an explicit cuda:<i> or cpu is taken as given."""
    from ..train.device import cuda_count, resolve_train_device

    dev = resolve_train_device(train_device)
    if dev.type == "cuda" and ":" not in train_device and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % cuda_count()}")
    return dev


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_grads(params: list[torch.nn.Parameter]) -> None:
    rank, size = world()
    if size == 1:
        return
    # a single-path step (gdas, paired) gives grads only to the ops it sampled, a different set on each
    # rank: agree first on which params any rank touched, then reduce exactly those, in the same order
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    dist.all_reduce(used, op=dist.ReduceOp.SUM)
    for p, u in zip(params, used.tolist()):
        if u > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= size


def broadcast_(tensors: list[torch.Tensor]) -> None:
    if world()[1] > 1:
        for t in tensors:
            dist.broadcast(t, src=0)
