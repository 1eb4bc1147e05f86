"""Subnet -> predictor graph straight from the architecture: the graph `encode_onnx` builds from the
subnet's ONNX export, without exporting the subnet (~1000x faster end to end on tiny, many subnets
at once; benchmarks/results/predictor_speed.md).

The encoded graph of a subnet is a concatenation of pieces: the fixed skeleton (noise embedding,
stem, FiLMs, down/up, merges, residual adds, head) and, for every active slot, the nodes of its
chosen op. The pieces are read once per (preset, batch) from a few labelling exports that together
use every choice of every slot, in which each slot's inputs and output pass through marker nodes
(a custom op, turned into Identity before encoding, then dropped): a node between the markers of
slot p belongs to the piece (p, choice); a node that reads a marker gets its producer from what the
marker stands for: the slot's input, or the slot's output (the input again for `skip`). A subnet's
graph is then the skeleton with the chosen pieces spliced in, built with array ops for a batch.

Each piece is checked identical in every labelling export that uses it, and tests check the result
equal (x, edge_index, g, op) to `encode_onnx` of the exported subnet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import onnx
import torch
from torch_geometric.data import Data

from ..errors import RcaiError
from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, onnx_bytes
from ..presets import Preset
from ..space.space import SearchSpace
from . import ops
from .batch import GraphBatch, make_batch
from .graph import NODE_DIM, graph_nodes, node_features

MARK_DOMAIN = "rcai.mark"
Owner = tuple[str, str] | None  # (slot path, choice) or None for the skeleton
Addr = tuple[Owner, int]  # a node: its owner and its index among the owner's nodes
# Where a node's input comes from: ("node", Addr) | ("in", path, k) (slot input k) | ("out", path)
Ref = tuple


class _Mark(torch.autograd.Function):
    """Identity that exports as one `rcai.mark::Mark` node tagged `path|in|k` or `path|out|0`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, tag: str) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def symbolic(g, x, tag: str):
        out = g.op(f"{MARK_DOMAIN}::Mark", x, tag_s=tag)
        out.setType(x.type())
        return out


def _marked(slot) -> Callable[..., torch.Tensor]:
    inner = slot.forward

    def forward(*args: torch.Tensor) -> torch.Tensor:
        args = [_Mark.apply(a, f"{slot.path}|in|{k}") for k, a in enumerate(args)]
        return _Mark.apply(inner(*args), f"{slot.path}|out|0")

    return forward


def subnet_onnx(preset: Preset, arch: Mapping[str, str], batch: int = 1, mark: bool = False) -> onnx.ModelProto:
    """One denoising step of the subnet, graph only (export_params=False): the predictor's input.
    `mark` wraps every searchable slot in marker nodes (labelling exports)."""
    from ..model.mixed import FixedOp
    from ..space.subnet import SubnetSpec

    torch.manual_seed(0)
    model = SubnetSpec(preset, dict(arch)).build().eval()
    if mark:
        for m in model.modules():
            if isinstance(m, FixedOp) and m.path in arch:
                m.forward = _marked(m)
    data = onnx_bytes(model, denoiser_inputs(preset, batch), DENOISER_INPUTS, DENOISER_OUTPUTS, export_params=False)
    return onnx.load_from_string(data)


@dataclass
class _Piece:
    """The nodes of one owner, in order, and the slots nested in it (items: ("node", i) | ("slot", path))."""

    items: list = field(default_factory=list)
    op: list[int] = field(default_factory=list)
    num: list[list[float]] = field(default_factory=list)  # raw numeric features (before log1p)
    tot: list[tuple[float, ...]] = field(default_factory=list)  # flops, params, bytes, out_numel
    srcs: list[list[Ref]] = field(default_factory=list)  # producers of each node's data inputs
    out: Ref | None = None  # the slot's output (slot pieces)

    def same(self, other: "_Piece") -> bool:
        return (self.items, self.op, self.num, self.tot, self.srcs, self.out) == (
            other.items, other.op, other.num, other.tot, other.srcs, other.out)


def _label(model: onnx.ModelProto, arch: Mapping[str, str]) -> tuple[dict[Owner, _Piece], dict[str, list[Ref]]]:
    """Split a marked export into pieces; also every slot's input refs."""
    tags: dict[str, tuple[str, str, int]] = {}
    for n in model.graph.node:
        if n.domain == MARK_DOMAIN:
            path, kind, k = n.attribute[0].s.decode().split("|")
            tags[n.output[0]] = (path, kind, int(k))
            n.op_type, n.domain = "Identity", ""
            del n.attribute[:]
    # The exporter typed the markers' outputs; plain exports carry no value_info: shapes must be inferred alike.
    kept = [v for v in model.graph.value_info if v.name not in tags]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    gr, nodes = graph_nodes(model)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    pieces: dict[Owner, _Piece] = {None: _Piece()}
    addr: dict[int, Addr] = {}
    inputs: dict[str, list[Ref]] = {}
    stack: list[Owner] = [None]

    def ref(name: str) -> Ref:
        if name not in producer:
            return ("none",)
        j = producer[name]
        out = nodes[j].output[0]
        if out in tags:
            path, kind, k = tags[out]
            return ("in", path, k) if kind == "in" else ("out", path)
        if addr[j][0] not in stack:  # a node read outside its own piece and the pieces nested in it
            raise RcaiError(f"arch encoder: node {nodes[j].name} of {addr[j][0]} is read from outside it")
        return ("node", addr[j])

    for k, n in enumerate(nodes):
        data_in = [i for i in n.input if i and i not in gr.const]
        if n.output[0] in tags:
            path, kind, _ = tags[n.output[0]]
            if kind == "in":
                if stack[-1] != (path, arch[path]):  # first input marker: enter the slot
                    pieces[stack[-1]].items.append(("slot", path))
                    stack.append((path, arch[path]))
                    pieces[stack[-1]] = _Piece()
                inputs.setdefault(path, []).append(ref(data_in[0]) if data_in else ("none",))
            else:
                pieces[stack[-1]].out = ref(data_in[0]) if data_in else ("none",)
                stack.pop()
            continue
        piece = pieces[stack[-1]]
        f, fl, pa, by, no = node_features(n, gr, len(data_in))
        addr[k] = (stack[-1], len(piece.op))
        piece.items.append(("node", len(piece.op)))
        piece.op.append(ops.OP_INDEX.get(n.op_type, ops.N_OPS - 1))
        piece.num.append([float(v) for v in f])
        piece.tot.append((fl, pa, by, no))
        piece.srcs.append([ref(i) for i in data_in])
    return pieces, inputs


def _cover(space: SearchSpace) -> list[dict[str, str]]:
    """A few architectures that together use every choice of every slot."""
    todo = {(s.path, c) for s in space.all_slots() for c in s.choices}

    def needed(s, c) -> bool:
        return (s.path, c) in todo or any(needed(t, d) for t in s.choices[c].slots for d in t.choices)

    archs = []
    while todo:
        arch = space.pick(lambda s: next((c for c in s.choices if needed(s, c)), next(iter(s.choices))))
        todo -= set(arch.items())
        archs.append(arch)
    return archs


@dataclass
class Chunk:
    """Encoded graphs of several subnets, nodes numbered consecutively across graphs."""

    op: np.ndarray  # [N] op index
    num: np.ndarray  # [N, len(NUMERIC_FEATURES)] float32 (log1p)
    src: np.ndarray  # [E] edges in chunk numbering, sorted by (dst, src)
    dst: np.ndarray
    n_nodes: np.ndarray  # [B]
    n_edges: np.ndarray  # [B]
    g: np.ndarray  # [B, GLOBAL_DIM] float32

    def batch(self) -> GraphBatch:
        t = torch.from_numpy
        return make_batch(t(self.op), t(self.num), t(self.src), t(self.dst), t(self.n_nodes), t(self.g))

    def graphs(self) -> list[Data]:
        out = []
        node0 = np.concatenate([[0], np.cumsum(self.n_nodes)])
        edge0 = np.concatenate([[0], np.cumsum(self.n_edges)])
        for b in range(len(self.n_nodes)):
            a, z, ea, ez = node0[b], node0[b + 1], edge0[b], edge0[b + 1]
            op = self.op[a:z]
            x = np.zeros((z - a, NODE_DIM), dtype=np.float32)
            x[np.arange(z - a), op] = 1.0
            x[:, ops.N_OPS :] = self.num[a:z]
            ei = np.stack([self.src[ea:ez] - a, self.dst[ea:ez] - a])
            out.append(Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(ei), g=torch.from_numpy(self.g[b : b + 1]),
                            op=torch.from_numpy(op), num_nodes=int(z - a)))
        return out


class ArchEncoder:
    """Encodes subnets of one preset (at one input batch size) as `encode_onnx` of their export would."""

    def __init__(self, preset: Preset, batch: int = 1):
        self.preset, self.batch = preset, batch
        space = self.space = SearchSpace.of(preset)
        pieces: dict[Owner, _Piece] = {}
        inputs: dict[str, list[Ref]] = {}
        for arch in _cover(space):
            got, ins = _label(subnet_onnx(preset, arch, batch, mark=True), arch)
            for owner, piece in got.items():
                if owner in pieces and not pieces[owner].same(piece):
                    raise RcaiError(f"arch encoder: {owner or 'the skeleton'} encodes differently in two subnets")
                pieces.setdefault(owner, piece)
            for path, refs in ins.items():
                if inputs.setdefault(path, refs) != refs:
                    raise RcaiError(f"arch encoder: slot {path} reads different inputs in two subnets")
        self._compile(pieces, inputs)

    @classmethod
    def of(cls, preset: Preset, batch: int = 1) -> "ArchEncoder":
        """One encoder per (preset, batch): building it costs a few labelling exports."""
        return _encoder_of(preset, batch)

    # -- compile the pieces into arrays -------------------------------------------------------
    def _compile(self, pieces: dict[Owner, _Piece], inputs: dict[str, list[Ref]]) -> None:
        slots = {s.path: s for s in self.space.all_slots()}
        self.paths: list[str] = []  # slot positions in graph order
        self.pos: dict[str, int] = {}
        self.choice_index: list[dict[str, int]] = []
        self.parent: list[tuple[int, int]] = []  # (parent position, its choice that holds the slot) or (-1, -1)
        seg_owner: list[tuple[int, int]] = []  # (position, choice index) or (-1, -1)
        seg_addrs: list[list[Addr]] = []

        def walk(owner: Owner, cond: tuple[int, int]) -> None:
            piece = pieces[owner]
            run: list[Addr] = []
            for kind, v in piece.items:
                if kind == "node":
                    run.append((owner, v))
                    continue
                if run:
                    seg_owner.append(cond)
                    seg_addrs.append(run)
                    run = []
                p = len(self.paths)
                self.paths.append(v)
                self.pos[v] = p
                self.choice_index.append({c: i for i, c in enumerate(slots[v].choices)})
                self.parent.append(cond)
                for c, i in self.choice_index[p].items():
                    if (v, c) not in pieces:
                        raise RcaiError(f"arch encoder: no labelling export used {c!r} in slot {v}")
                    walk((v, c), (p, i))
            if run:
                seg_owner.append(cond)
                seg_addrs.append(run)

        walk(None, (-1, -1))
        if set(self.paths) != set(slots):
            raise RcaiError("arch encoder: the labelling exports did not reach every slot")
        bank = {a: i for i, a in enumerate(a for seg in seg_addrs for a in seg)}
        self.seg_pos = np.array([o[0] for o in seg_owner], dtype=np.int64)
        self.seg_choice = np.array([o[1] for o in seg_owner], dtype=np.int64)
        self.seg_len = np.array([len(s) for s in seg_addrs], dtype=np.int64)
        self.seg_start = np.concatenate([[0], np.cumsum(self.seg_len)[:-1]]).astype(np.int64)
        self.bank_seg = np.repeat(np.arange(len(seg_addrs)), self.seg_len)
        self.bank_within = np.arange(len(bank)) - self.seg_start[self.bank_seg]

        def node(a: Addr):
            return pieces[a[0]], a[1]

        self.bank_op = np.array([p.op[i] for p, i in map(node, bank)], dtype=np.int64)
        raw = np.asarray([p.num[i] for p, i in map(node, bank)], dtype=np.float64).reshape(len(bank), -1)
        self.bank_num = np.log1p(np.maximum(0.0, raw)).astype(np.float32)
        tot = np.asarray([p.tot[i] for p, i in map(node, bank)], dtype=np.float64).reshape(len(bank), 4)
        self.seg_tot = np.stack([tot[s : s + n].sum(0) for s, n in zip(self.seg_start, self.seg_len)])

        def resolve(r: Ref) -> Ref:
            """Slot inputs are the same for every choice: substitute them away."""
            while r[0] == "in":
                r = inputs[r[1]][r[2]]
            return r

        self.out_ref = {(path, c): resolve(pieces[(path, c)].out) for path in self.paths for c in slots[path].choices}
        static: list[tuple[int, int]] = []
        dynamic: dict[str, list[int]] = {}  # slot path -> destinations reading its output
        for a, b in bank.items():
            p, i = node(a)
            for r in map(resolve, p.srcs[i]):
                if r[0] == "node":
                    static.append((bank[r[1]], b))
                elif r[0] == "out":
                    dynamic.setdefault(r[1], []).append(b)
        self.static_src, self.static_dst = (np.array(v, dtype=np.int64) for v in zip(*static)) if static else (
            np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.dynamic = {p: np.array(v, dtype=np.int64) for p, v in dynamic.items()}
        self.bank_index = bank

    # -- encoding ------------------------------------------------------------------------------
    def choices(self, archs: Sequence[Mapping[str, str]]) -> np.ndarray:
        """[B, positions] choice index of every slot, -1 where inactive; validates each arch."""
        out = np.full((len(archs), len(self.paths)), -1, dtype=np.int64)
        for b, arch in enumerate(archs):
            row = out[b]
            used = 0
            for p, path in enumerate(self.paths):
                pp, pc = self.parent[p]
                active = pp < 0 or row[pp] == pc
                name = arch.get(path)
                if name is None:
                    if active:
                        raise RcaiError(f"subnet: no choice for slot {path!r}")
                    continue
                if not active:
                    continue  # reported below as an inactive slot
                i = self.choice_index[p].get(name)
                if i is None:
                    raise RcaiError(f"subnet: unknown op {name!r} for slot {path!r}; choices: {', '.join(self.choice_index[p])}")
                row[p] = i
                used += 1
            if used != len(arch):
                extra = sorted(set(arch) - {q for q, i in zip(self.paths, row) if i >= 0})
                raise RcaiError(f"subnet: unknown or inactive slots: {', '.join(extra[:5])}")
        return out

    def _active(self, ch: np.ndarray) -> np.ndarray:
        """[B, segments] whether each segment is in each subnet's graph."""
        picked = ch[:, np.maximum(self.seg_pos, 0)]
        return (self.seg_pos < 0) | (picked == self.seg_choice)

    def node_counts(self, ch: np.ndarray) -> np.ndarray:
        return self._active(ch) @ self.seg_len

    def encode_choices(self, ch: np.ndarray) -> Chunk:
        """The graphs of the subnets given as a choices() matrix."""
        act = self._active(ch)
        lens = act * self.seg_len
        n_nodes = lens.sum(1)
        seg_off = np.cumsum(lens, 1) - lens  # first node of each segment in its graph
        graph0 = np.cumsum(n_nodes) - n_nodes
        # nodes: the active segments' bank ranges, in order
        bi, ki = np.nonzero(act)
        ln = self.seg_len[ki]
        starts = np.cumsum(ln) - ln
        ids = np.repeat(self.seg_start[ki] - starts, ln) + np.arange(ln.sum())

        def glob_index(b: np.ndarray, bank: np.ndarray) -> np.ndarray:
            return graph0[b] + seg_off[b, self.bank_seg[bank]] + self.bank_within[bank]

        eb, ei = np.nonzero(act[:, self.bank_seg[self.static_dst]])
        src = [glob_index(eb, self.static_src[ei])]
        dst = [glob_index(eb, self.static_dst[ei])]
        outs: dict[str, np.ndarray] = {}

        def out_of(path: str) -> np.ndarray:
            """[B] bank id of the node producing slot `path`'s output (-1 where inactive)."""
            if path not in outs:
                p = self.pos[path]
                res = np.full(len(ch), -1, dtype=np.int64)
                for c, i in self.choice_index[p].items():
                    r = self.out_ref[(path, c)]
                    sel = ch[:, p] == i
                    if r[0] == "node":
                        res[sel] = self.bank_index[r[1]]
                    elif r[0] == "out":
                        res[sel] = out_of(r[1])[sel]
                outs[path] = res
            return outs[path]

        for path, dests in self.dynamic.items():
            prod = out_of(path)
            eb, ei = np.nonzero(act[:, self.bank_seg[dests]] & (prod >= 0)[:, None])
            src.append(glob_index(eb, prod[eb]))
            dst.append(glob_index(eb, dests[ei]))
        total = int(n_nodes.sum())
        key = np.sort(np.concatenate(dst) * total + np.concatenate(src))  # by (dst, src)
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]  # an edge once (encode_onnx: a set)
        dst_all, src_all = key // max(total, 1), key % max(total, 1)
        n_edges = np.bincount(np.searchsorted(graph0, dst_all, side="right") - 1, minlength=len(ch))
        tot = act.astype(np.float64) @ self.seg_tot
        g = np.log1p(np.column_stack([tot, n_nodes, n_edges]).astype(np.float64)).astype(np.float32)
        return Chunk(op=self.bank_op[ids], num=self.bank_num[ids], src=src_all, dst=dst_all,
                     n_nodes=n_nodes, n_edges=n_edges, g=g)

    def encode_many(self, archs: Sequence[Mapping[str, str]]) -> list[Data]:
        return self.encode_choices(self.choices(archs)).graphs() if archs else []

    def encode(self, arch: Mapping[str, str]) -> Data:
        return self.encode_many([arch])[0]

    def batches(self, archs: Sequence[Mapping[str, str]], max_nodes: int = 6000) -> Iterator[GraphBatch]:
        """GraphBatches of consecutive subnets, each of at most `max_nodes` nodes (at least one subnet),
        as LatencyPredictor.predict groups encoded graphs."""
        if not archs:
            return
        ch = self.choices(archs)
        counts = self.node_counts(ch)
        start, nodes = 0, 0
        for k, n in enumerate(counts):
            if k > start and nodes + n > max_nodes:
                yield self.encode_choices(ch[start:k]).batch()
                start, nodes = k, 0
            nodes += n
        yield self.encode_choices(ch[start:]).batch()


@lru_cache(maxsize=8)
def _encoder_of(preset: Preset, batch: int) -> ArchEncoder:
    return ArchEncoder(preset, batch)
