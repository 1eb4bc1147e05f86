"""Fast collation of encoded graphs into one disjoint-union batch with sparse (CSR) adjacency in
both directions: a handful of tensor ops per batch instead of per-graph Python work, which
dominates inference on small graphs."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch_geometric.data import Data

from .ops import N_OPS


@dataclass
class GraphBatch:
    op: torch.Tensor  # [N] op index (position of the 1 in the one-hot block of Data.x)
    num: torch.Tensor  # [N, len(NUMERIC_FEATURES)] numeric block of Data.x
    fwd: torch.Tensor  # CSR [N, N]: fwd[i, j] = 1 if node j feeds node i (aggregate producers)
    bwd: torch.Tensor  # CSR [N, N]: bwd[j, i] = 1 for the same edges (aggregate consumers)
    pool: torch.Tensor  # CSR [B, N]: pool[b, i] = 1 if node i is in graph b (sum pooling)
    spread: torch.Tensor  # CSR [N, B]: its transpose (copy a per-graph vector to the graph's nodes)
    sizes: torch.Tensor  # [B, 1] node count of each graph (at least 1), float
    g: torch.Tensor  # [B, GLOBAL_DIM]

    @property
    def num_graphs(self) -> int:
        return self.g.shape[0]


def _csr(rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """CSR matrix of ones; `rows` must be sorted (non-decreasing)."""
    crow = torch.zeros(n_rows + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)
    with warnings.catch_warnings():  # "CSR support is in beta": the ops used here are tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, torch.ones(len(cols)), (n_rows, n_cols), check_invariants=False)


def _op_index(d: Data) -> torch.Tensor:
    op = getattr(d, "op", None)
    return op if op is not None else d.x[:, :N_OPS].argmax(1)


def collate(graphs: list[Data]) -> GraphBatch:
    n_nodes = torch.tensor([d.num_nodes for d in graphs], dtype=torch.long)
    n_edges = torch.tensor([d.edge_index.shape[1] for d in graphs], dtype=torch.long)
    offsets = torch.cumsum(n_nodes, 0) - n_nodes
    ei = torch.cat([d.edge_index for d in graphs], 1) + torch.repeat_interleave(offsets, n_edges)
    # each graph's edges are sorted by (dst, src), so the union is too
    return make_batch(torch.cat([_op_index(d) for d in graphs]), torch.cat([d.x[:, N_OPS:] for d in graphs]),
                      ei[0], ei[1], n_nodes, torch.cat([d.g for d in graphs]))


def make_batch(op: torch.Tensor, num: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_nodes: torch.Tensor,
               g: torch.Tensor) -> GraphBatch:
    """The batch of graphs with `n_nodes` nodes each, numbered consecutively; edges (src -> dst, batch
    numbering) sorted by (dst, src)."""
    n = int(n_nodes.sum())
    order = torch.argsort(src, stable=True)
    b = len(n_nodes)
    batch = torch.repeat_interleave(torch.arange(b), n_nodes)
    return GraphBatch(
        op=op,
        num=num,
        fwd=_csr(dst, src, n, n),
        bwd=_csr(src[order], dst[order], n, n),
        pool=_csr(batch, torch.arange(n), b, n),
        spread=_csr(torch.arange(n), batch, n, b),
        sizes=n_nodes.clamp(min=1).float().unsqueeze(1),
        g=g,
    )
