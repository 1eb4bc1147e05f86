"""Issue 39, cost: one supernet training step against one from-scratch training step, timed in one
interleaved run on one thread (the ratio is what a cost in "trainings" rests on).

Rounds alternate: K steps of the base subnet, K steps of a near-budget subnet (the rank study's first,
0.6 x the base's fp32 loop), and K steps of the one-shot supernet (4 paths: largest, smallest, 2
random) in each weight sharing, all at the `cpu` protocol's batch and this CPU's training precision.
Per kind: the median step time over all timed steps (the first round is a warm-up). The supernet's cost
in from-scratch trainings = its steps x its step time / (the protocol's steps x the subnet's step
time). Run alone: `flock /tmp/rcai-timing.lock python benchmarks/oneshot_cost.py`; writes results/oneshot_cost.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from common import RESULTS, git_rev, load1, load_text, machine, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per kind and round")
    ap.add_argument("--supernet-steps", type=int, default=1600, help="the supernet's training length the cost is stated for")
    args = ap.parse_args()
    import torch

    from rcai.diffusion.training import noisy_batch, prediction_loss
    from rcai.model.oneshot import set_path
    from rcai.oneshot.config import SupernetConfig
    from rcai.oneshot.net import build_supernet
    from rcai.oneshot.train import sandwich_ends, step_paths
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec
    from rcai.targets.sysinfo import load_average
    from rcai.train.batches import BatchStream
    from rcai.train.device import TrainDevice
    from rcai.train.protocol import CPU
    from rcai.train.setup import schedule_of, splits_of

    torch.set_num_threads(1)
    started, load0 = machine(), load_average()
    preset = get_preset("tiny")
    space = SearchSpace.of(preset)
    dev = TrainDevice.of("cpu", "auto")
    schedule = schedule_of(preset)
    stream = BatchStream(splits_of(preset, None, 0, CPU.batch_size).train, CPU.batch_size, 0)
    batch = stream.next()
    plan = json.loads((RESULTS / "oneshot_plan.json").read_text())
    near = next(v for v in plan.values() if v["group"] == "rank")["choices"]
    largest, smallest = sandwich_ends(SupernetConfig())

    def subnet_step(arch):
        model = SubnetSpec(preset, arch).build().train()
        opt = torch.optim.Adam(model.parameters(), lr=CPU.lr)
        fwd = dev.forward(model)

        def step(i):
            nb = noisy_batch(schedule, *batch, torch.Generator().manual_seed(i), preset.residual, preset.prediction)
            opt.zero_grad(set_to_none=True)
            prediction_loss(fwd(nb.net_input, nb.noise_level), nb.target, preset.loss).backward()
            opt.step()
        return step

    def supernet_step(sharing):
        net = build_supernet(preset, sharing).train()
        opt = torch.optim.Adam(net.parameters(), lr=CPU.lr)
        fwd = dev.forward(net)

        def step(i):
            nb = noisy_batch(schedule, *batch, torch.Generator().manual_seed(i), preset.residual, preset.prediction)
            opt.zero_grad(set_to_none=True)
            for arch in step_paths(space, largest, smallest, 4, 0, i):
                set_path(net, arch)
                prediction_loss(fwd(nb.net_input, nb.noise_level), nb.target, preset.loss).backward()
            opt.step()
        return step

    kinds = {"base subnet": subnet_step(space.base_arch()), "near-budget subnet (0.6 x)": subnet_step(near),
             "supernet, shared weights": supernet_step("shared"), "supernet, independent weights": supernet_step("independent")}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    i = 0
    for r in range(args.rounds + 1):
        for name, step in kinds.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step(i)
                i += 1
                if r:  # round 0 warms up
                    times[name].append(time.perf_counter() - t0)
        print(f"round {r}: " + ", ".join(f"{k} {statistics.median(v) if v else float('nan'):.3f} s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = ["# One-shot supernet: what a training step costs (issue 39)", "",
             f"`benchmarks/oneshot_cost.py --rounds {args.rounds} --steps {args.steps}`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"Machine: {started}; load average (1/5/15 min) {load_text(load0)} at start, {load_text(load_average())} at the end; 1 torch thread, "
             f"{dev.precision}, batch {CPU.batch_size}; {args.rounds} interleaved rounds of {args.steps} steps per kind (after one warm-up round).", "",
             "| kind | median step (s) | x base step | p10-p90 (s) |", "|---|---:|---:|---:|"]
    for k, v in times.items():
        q = statistics.quantiles(v, n=10)
        lines.append(f"| {k} | {med[k]:.3f} | {med[k] / med['base subnet']:.2f} | {q[0]:.3f}-{q[-1]:.3f} |")
    for sharing in ("shared", "independent"):
        sn = args.supernet_steps * med[f"supernet, {sharing} weights"]
        lines.append("")
        lines.append(f"{sharing}: {args.supernet_steps} supernet steps = {sn / 60:.1f} min of one core = "
                     f"{sn / (CPU.steps * med['base subnet']):.2f} trainings of the base ({CPU.steps} steps), "
                     f"{sn / (CPU.steps * med['near-budget subnet (0.6 x)']):.2f} of a 0.6 x subnet.")
    write("oneshot_cost.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
