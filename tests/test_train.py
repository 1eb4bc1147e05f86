import pytest
import torch

from rcai.diffusion import diffusion_loss
from rcai.errors import RcaiError
from rcai.model.unet import UNet
from rcai.space.space import SearchSpace
from rcai.train import rundir as rundir_mod
from rcai.train.evaluate import EvalConfig
from rcai.train.rundir import RunDir
from rcai.train.setup import schedule_of
from rcai.train.trainer import TrainConfig, train


def test_a_few_steps_lower_the_loss_on_the_tiny_preset(tiny):
    torch.manual_seed(0)
    model = UNet(tiny, SearchSpace(tiny).base_arch())
    schedule = schedule_of(tiny)
    from rcai.train.setup import splits_of

    items = [splits_of(tiny, None).train[i] for i in range(4)]  # real crops of the built-in photos
    lr_up, hr = torch.stack([it["lr_up"] for it in items]), torch.stack([it["hr"] for it in items])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_at(seed):
        return diffusion_loss(model, schedule, lr_up, hr, generator=torch.Generator().manual_seed(seed), residual=tiny.residual)

    with torch.no_grad():
        before = sum(loss_at(s).item() for s in range(4))
    for step in range(40):
        loss = loss_at(100 + step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sum(loss_at(s).item() for s in range(4))
    assert after < 0.8 * before


def _cfg(**kw):
    return TrainConfig(**{**dict(preset="micro", steps=6, batch_size=2, ckpt_every=3, log_every=1, eval=EvalConfig(steps=2, max_images=1)), **kw})


def test_train_resume_after_kill_equals_uninterrupted(tmp_path, monkeypatch):
    full = train(_cfg(), tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    orig = rundir_mod.RunDir.save_checkpoint

    def die_after_first(self, state):
        orig(self, state)
        if state["step"] == 3:
            raise Killed

    monkeypatch.setattr(rundir_mod.RunDir, "save_checkpoint", die_after_first)
    with pytest.raises(Killed):
        train(_cfg(), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(rundir_mod.RunDir, "save_checkpoint", orig)
    with pytest.raises(RcaiError, match="--resume"):
        train(_cfg(), tmp_path / "resumed", progress=False)
    with pytest.raises(RcaiError, match="different config"):
        train(_cfg(lr=0.5), tmp_path / "resumed", resume=True, progress=False)
    resumed = train(_cfg(), tmp_path / "resumed", resume=True, progress=False)
    a, b = torch.load(tmp_path / "full" / "model.pt"), torch.load(tmp_path / "resumed" / "model.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert resumed["psnr"] == pytest.approx(full["psnr"])
    for name in ("config.json", "subnet.json", "metrics.json", "samples.png", "log.jsonl"):
        assert (tmp_path / "resumed" / name).exists()


def test_cli_train_then_sample_writes_an_sr_image(tmp_path):
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "rcai", "train", "--preset", "micro", "--out", str(run), "--steps", "2", "--batch-size", "2",
           "--eval-steps", "2", "--eval-images", "1", "--json"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype("uint8")).save(tmp_path / "lr.png")
    out = tmp_path / "sr.png"
    p = subprocess.run([sys.executable, "-m", "rcai", "sample", "--run", str(run), "--image", str(tmp_path / "lr.png"), "--out", str(out),
                        "--sample-steps", "3"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert Image.open(out).size == (48, 40)
    bad = subprocess.run([sys.executable, "-m", "rcai", "sample", "--run", str(run), "--image", str(tmp_path / "none.png"), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "none.png" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_cosine_lr_decays_to_zero_and_a_bad_schedule_is_refused():
    from rcai.train.lr import set_lr

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = [set_lr(opt, 2e-3, "cosine", s, 10) for s in range(11)]
    assert lrs[0] == pytest.approx(2e-3) and lrs[5] == pytest.approx(1e-3) and lrs[10] == pytest.approx(0.0, abs=1e-18)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert opt.param_groups[0]["lr"] == lrs[-1]
    assert set_lr(opt, 2e-3, "constant", 9, 10) == 2e-3
    with pytest.raises(RcaiError, match="lr schedule must be one of"):
        _cfg(lr_schedule="step")


def test_the_lr_schedule_is_what_the_trainer_steps_with(tmp_path):
    a = train(_cfg(lr_schedule="constant"), tmp_path / "constant", progress=False)
    b = train(_cfg(), tmp_path / "cosine", progress=False)
    wa, wb = torch.load(tmp_path / "constant" / "model.pt"), torch.load(tmp_path / "cosine" / "model.pt")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert a["quality"]["gain_db"] != b["quality"]["gain_db"]


def _weights(run):
    return torch.load(run / "model.pt", weights_only=True)


def test_constant_lr_run_extended_equals_one_longer_run(tmp_path):
    """The rungs of a multi-fidelity search: 6 steps, then resumed to 10, is the 10-step run, EMA and
    the logged learning curve included."""
    kw = dict(lr_schedule="constant", ema=0.9, eval_at=(3, 6, 10))
    long = train(_cfg(steps=10, **kw), tmp_path / "long", progress=False)
    short = train(_cfg(steps=6, eval_at=(3, 6), **{k: v for k, v in kw.items() if k != "eval_at"}), tmp_path / "ext", progress=False)
    ext = train(_cfg(steps=10, **kw), tmp_path / "ext", resume=True, progress=False)
    assert short["quality"]["gain_db"] != ext["quality"]["gain_db"]
    assert ext["quality"] == long["quality"]
    for k, v in _weights(tmp_path / "long").items():
        assert torch.equal(v, _weights(tmp_path / "ext")[k]), k
    curve = lambda run: [(r["step"], r["quality"]) for r in RunDir(run).read_log() if "quality" in r]  # noqa: E731
    assert [s for s, _ in curve(tmp_path / "long")] == [3, 6, 10]
    assert curve(tmp_path / "long") == curve(tmp_path / "ext")


def test_cosine_run_cannot_be_extended(tmp_path):
    train(_cfg(steps=4), tmp_path / "r", progress=False)
    with pytest.raises(RcaiError, match="different config"):
        train(_cfg(steps=8), tmp_path / "r", resume=True, progress=False)


def test_ema_weights_are_what_is_saved_and_differ_from_the_last(tmp_path):
    train(_cfg(lr_schedule="constant", ema=0.5), tmp_path / "r", progress=False)
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    saved = _weights(tmp_path / "r")
    assert all(torch.equal(saved[k], state["ema"]["module"][k]) for k in saved)
    assert any(not torch.equal(saved[k], state["model"][k]) for k in saved if saved[k].is_floating_point())


@pytest.mark.parametrize("bad", [dict(ema=1.0), dict(ema=-0.1), dict(eval_at=(0,)), dict(eval_at=(2.5,))])
def test_bad_ema_or_eval_steps_are_one_line_errors(bad):
    with pytest.raises(RcaiError):
        _cfg(**bad)
