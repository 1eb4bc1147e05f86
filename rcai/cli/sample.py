"""`rcai sample`: super-resolve one image with a trained run."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import RcaiError
from .common import JsonOpt, out as stdout, print_json
from .defaults import BENCH
from .main import app

@app.command()
def sample(
    run: str = typer.Option(..., "--run", help="Run folder of `rcai train` (or `rcai search`)."),
    image: str = typer.Option(..., "--image", help="Low-resolution input image (PNG/JPEG)."),
    out: str = typer.Option(..., "--out", "-o", help="Where to write the super-resolved PNG."),
    sampler: str = typer.Option(BENCH["sampler"], "--sampler", help="Sampler: ddpm | ddim (the same default as `rcai bench`)."),
    sample_steps: Optional[int] = typer.Option(BENCH["steps"], "--sample-steps", help="Sampling steps (default: T for ddpm, 50 for ddim)."),
    seed: int = typer.Option(0),
    json: bool = JsonOpt,
) -> None:
    """Super-resolve IMAGE by the preset's scale with the run's model (bicubic upsample, then the
    diffusion loop conditioned on it). Any image size that the UNet can halve at every level works."""
    import io

    import numpy as np
    from PIL import Image

    from ..data import load_rgb
    from ..data.files import resize_bicubic
    from ..diffusion import TorchDenoiser, sample as run_sample
    from ..io import atomic_write_bytes
    from ..train.evaluate import to_uint8
    from ..train.setup import schedule_of

    model, spec = load_run_model(Path(run))
    preset = spec.preset
    lr = load_rgb(image)
    scale = preset.hr_size // preset.lr_size
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if h % 2 ** (preset.levels - 1) or w % 2 ** (preset.levels - 1):
        raise RcaiError(f"{image}: size {lr.shape[1]}x{lr.shape[0]} times {scale} must be divisible by {2 ** (preset.levels - 1)}")
    lr_up = resize_bicubic(lr, (w, h)).astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
    from ..deploy.runtime import default_steps

    steps_arg = default_steps(sampler, preset.T) if sample_steps is None else sample_steps
    t0 = time.perf_counter()
    result = run_sample(TorchDenoiser(model.eval()), lr_up, schedule_of(preset), sampler=sampler, steps=steps_arg, seed=seed,
                        clip_x0=True, progress=not json, residual=preset.residual, prediction=preset.prediction)
    seconds = time.perf_counter() - t0
    buf = io.BytesIO()
    Image.fromarray(to_uint8(result.image[0])).save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    summary = {"out": out, "width": w, "height": h, "sampler": sampler, "steps": len(result.timesteps), "seconds": seconds,
               "subnet": spec.hash, "preset": preset.name}
    if json:
        print_json(summary)
        return
    stdout.print(f"wrote {out} ({w}x{h}, {sampler}, {len(result.timesteps)} steps, {seconds:.1f} s)")


def load_run_model(run: Path):
    """The trained model of a run folder: subnet.json + model.pt (train) or subnet.pt (search)."""
    from ..io import load_torch
    from ..space.subnet import SubnetSpec

    spec_path = run / "subnet.json"
    weights = next((run / n for n in ("model.pt", "subnet.pt") if (run / n).exists()), None)
    if not spec_path.exists() or weights is None:
        raise RcaiError(f"{run}: not a finished run (needs subnet.json and model.pt or subnet.pt)")
    spec = SubnetSpec.load(spec_path)
    model = spec.build()
    model.load_state_dict(load_torch(weights, "weights file"))
    return model, spec
