"""`--host` over real SSH: an OpenSSH server started here on 127.0.0.1 (free port, throw-away keys,
its own host key, checked through the client's own known_hosts), the real `rcai profile` CLI through it,
a killed worker / a killed profile resumed, and hostile host strings and paths that must run nothing."""
from __future__ import annotations

import csv
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rcai.errors import RcaiError
from rcai.targets.transport import SshTransport, parse_host

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen")
ROOT = Path(__file__).resolve().parents[1]
NEED = "openssh-server/openssh-client not installed (apt-get install -y openssh-server openssh-client; .ci/run and `make test` do)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Server:
    def __init__(self, d: Path):
        self.dir, self.port, self.user = d, _free_port(), getpass.getuser()
        host_pub = _keygen(d / "host_key")
        (d / "authorized_keys").write_text(_keygen(d / "client_key") + "\n")
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {d / 'sshd.pid'}\n"
            f"AllowUsers {self.user}\nLogLevel ERROR\n")
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        self.config = d / "ssh_config"
        self.write_client_config(d / "known_hosts")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "wb"))
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")

    def write_client_config(self, known_hosts: Path) -> None:
        """The client's own ssh config: this key, this known_hosts, host keys checked strictly."""
        self.config.write_text(
            f"Host 127.0.0.1\n  IdentityFile {self.dir / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not (os.path.exists(SSHD) and SSH_KEYGEN and shutil.which("ssh")):
        pytest.skip(NEED)
    server = Server(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def env(sshd, tmp_path):
    """Environment of an `rcai` run that reaches the test server; the remote python is this one."""
    e = dict(os.environ, RCAI_SSH_CONFIG=str(sshd.config), RCAI_REMOTE_PYTHON=sys.executable,
             RCAI_REMOTE_DIR=str(tmp_path / "remote"), OMP_NUM_THREADS="1",
             PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    e.pop("RCAI_REMOTE_HOST", None)
    return e


def _profile(args: list[str], env: dict, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rcai", "profile", "--preset", "micro", "--threads", "1", *args],
                            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.exists() else []


def _micro_ops() -> int:
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace

    return len(SearchSpace.of(get_preset("micro")).all_specs())


def _wait_rows(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while len(_rows(path)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def _pids_with(text: str) -> list[int]:
    """Processes (not sshd itself) whose command line holds `text`, a unique temp path of this test."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes() and "sshd" not in (p / "comm").read_text():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


# --- host strings (no server needed) --------------------------------------------------------

def test_parse_host():
    assert parse_host("pi@10.0.0.5:2222") == parse_host("10.0.0.5", user="pi", port=2222)
    assert str(parse_host("pi@10.0.0.5:2222")) == "pi@10.0.0.5:2222"
    assert parse_host("jetson").dest == "jetson" and parse_host("jetson").port is None
    assert parse_host("u@[::1]:22").host == "::1" and parse_host("u@[::1]:22").port == 22
    assert parse_host("fe80::1").host == "fe80::1"  # bare IPv6: no port
    for bad in ("-oProxyCommand=touch PWNED", "-p22", "pi@-oProxyCommand=x", "-x@host", "h:0", "h:99999", "h:x", "a\nb", ""):
        with pytest.raises(RcaiError):
            parse_host(bad)


def test_ssh_command_puts_the_destination_after_double_dash_and_quotes_the_remote_command():
    t = SshTransport("pi@host; touch PWNED:2222", remote_dir="/tmp/a b'; touch PWNED", python="/opt/py 3/python")
    cmd = t.command()
    i = cmd.index("--")
    assert cmd[i + 1] == "pi@host; touch PWNED" and len(cmd) == i + 3  # one destination, one remote command
    assert cmd[cmd.index("-p") + 1] == "2222" and i > cmd.index("-p")
    assert "StrictHostKeyChecking" not in " ".join(cmd)  # host keys as the user's config says
    import shlex

    assert shlex.split(cmd[-1])[0] == "/opt/py 3/python" and shlex.split(cmd[-1])[-2:] == ["/tmp/a b'; touch PWNED", "rcai.targets.worker"]


def test_worker_zip_alone_serves_onnxruntime_without_torch(tmp_path):
    """What the host gets: the zip of rcai, importable on its own; measuring with ONNX Runtime needs no torch."""
    from rcai.targets.transport import worker_zip

    z = tmp_path / "w.zip"
    z.write_bytes(worker_zip())
    assert worker_zip() == worker_zip()  # deterministic: one copy per code version on the host
    code = (f"import sys; sys.path.insert(0, {str(z)!r}); import rcai.targets.worker as w; from rcai.targets import get_target; "
            "assert w.__file__.startswith(sys.path[0]), w.__file__; get_target('onnxruntime', threads=1).info(); "
            "assert 'torch' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr


def test_lost_session_is_reopened_and_the_model_uploaded_again(tmp_path):
    """Local transport (the same worker in a subprocess): kill the worker, wipe its folder (a host that
    rebooted), and the next measurement reconnects, uploads the model again and succeeds."""
    import torch

    from rcai.targets import MeasureConfig, get_target

    path = tmp_path / "net.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 16, 16),), str(path), input_names=["x"], dynamo=False)
    host = tmp_path / "host"
    remote = get_target("remote", transport="local", remote_dir=str(host), target="onnxruntime", target_settings={"threads": 1})
    fast = MeasureConfig(warmup=1, min_repeats=3, max_repeats=6, chunk=3)
    p = remote.prepare(path)
    assert p.measure(fast).count >= 3
    pid = remote.session().ready["pid"]
    os.kill(pid, signal.SIGKILL)
    shutil.rmtree(host)
    assert p.measure(fast).count >= 3
    assert remote.session().ready["pid"] != pid and len(list(host.glob("model-*.onnx"))) == 1
    remote.close()


# --- a real sshd -----------------------------------------------------------------------------

def test_profile_micro_through_ssh_end_to_end(sshd, env, tmp_path):
    out = tmp_path / "t.csv"
    p = _profile(["--host", sshd.host, "--out", str(out), "--json"], env, tmp_path)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    rows = _rows(out)
    assert len(rows) == _micro_ops() == len({r["key"] for r in rows})
    assert all(float(r["median_ms"]) > 0 for r in rows)
    from rcai.cost.table import CostTable

    meta = CostTable.load(out).meta
    assert meta["backend"] == "onnxruntime" and meta["threads"] == 1
    assert meta["target_settings"]["host"] == sshd.host and meta["target_settings"]["transport"] == "ssh"
    import platform

    assert meta["host_facts"]["machine"] == platform.machine() and meta["host_facts"]["host"] == sshd.host  # Jetson: power mode too
    models = list((tmp_path / "remote").glob("model-*.onnx"))
    assert len(models) == len(rows) + 1  # every op plus the overhead model was measured over there


def test_killed_remote_worker_is_reconnected_and_killed_profile_resumes(sshd, env, tmp_path):
    out, n = tmp_path / "t.csv", _micro_ops()
    remote = str(tmp_path / "remote")
    p = _profile(["--host", sshd.host, "--out", str(out)], env, tmp_path)
    _wait_rows(out, 3, p)
    workers = [pid for pid in _pids_with(remote) if pid != p.pid]
    assert workers  # the remote worker (python -c BOOT DIR) and the local ssh client
    for pid in workers:  # connection and worker gone at once
        os.kill(pid, signal.SIGKILL)
    _wait_rows(out, 6, p)  # it reconnected and goes on
    p.send_signal(signal.SIGKILL)  # now kill rcai profile itself
    p.wait()
    before = {r["key"]: r for r in _rows(out)}
    assert 6 <= len(before) < n
    q = _profile(["--host", sshd.host, "--out", str(out)], env, tmp_path)
    _, stderr = q.communicate(timeout=300)
    assert q.returncode == 0, stderr
    rows = _rows(out)
    assert len(rows) == n == len({r["key"] for r in rows})  # none lost, none twice
    after = {r["key"]: r for r in rows}
    assert all(after[k] == r for k, r in before.items())  # finished rows were not measured again


def test_hostile_host_and_path_run_nothing(sshd, env, tmp_path, monkeypatch):
    from rcai.targets import TargetSpec, resolve_device

    for k in ("RCAI_SSH_CONFIG", "RCAI_REMOTE_PYTHON", "RCAI_REMOTE_DIR"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.chdir(tmp_path)
    for host in (f"127.0.0.1 -oProxyCommand=touch${{IFS}}PWNED", "-oProxyCommand=touch PWNED",
                 f"{sshd.user}@-oProxyCommand=touch PWNED", "'127.0.0.1'\"$(touch PWNED)\"", "127.0.0.1\ntouch PWNED"):
        with pytest.raises(RcaiError) as e:
            resolve_device(TargetSpec(device="cpu", host=host, threads=1)).info()
        assert "\n" not in str(e.value)
    p = _profile(["--host", f"{sshd.user}@127.0.0.1; touch PWNED", "--out", str(tmp_path / "x.csv")], env, tmp_path)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
    # a hostile remote dir reaches the host as one quoted argument: the worker runs in that very folder
    odd = tmp_path / "a b'\"; touch PWNED; $(touch PWNED)"
    target = resolve_device(TargetSpec(device="cpu", host=sshd.host, threads=1), remote_dir=str(odd))
    assert target.info().threads == 1
    target.close()
    assert list(odd.glob("rcai-worker-*.zip"))
    assert not list(tmp_path.rglob("PWNED")) and not (Path.home() / "PWNED").exists()


def test_unreachable_host_is_one_line_naming_it(sshd, env, tmp_path):
    host = f"{sshd.user}@127.0.0.1:{_free_port()}"  # nothing listens there; given by RCAI_REMOTE_HOST
    p = _profile(["--out", str(tmp_path / "x.csv")], dict(env, RCAI_REMOTE_HOST=host), tmp_path)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2 and len(stderr.strip().splitlines()) == 1 and host in stderr, stderr


def test_unknown_host_key_is_refused(sshd, env, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {_keygen(tmp_path / 'impostor')}\n")
    sshd.write_client_config(other)
    try:
        p = _profile(["--host", sshd.host, "--out", str(tmp_path / "x.csv")], env, tmp_path)
        _, stderr = p.communicate(timeout=120)
    finally:
        sshd.write_client_config(sshd.dir / "known_hosts")
    assert p.returncode == 2 and "Host key verification failed" in stderr, stderr
    assert not (tmp_path / "remote").exists()  # nothing ran over there


def test_bench_through_ssh(sshd, env, tmp_path):
    from rcai.deploy.export import export_subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    micro = get_preset("micro")
    model = tmp_path / "m.onnx"
    with pytest.warns(UserWarning, match="random init"):
        export_subnet_onnx(SubnetSpec(micro, SearchSpace.of(micro).base_arch()), None, model, verify=False)
    p = subprocess.run([sys.executable, "-m", "rcai", "bench", str(model), "--host", sshd.host, "--threads", "1",
                        "--sampler", "ddim", "--sample-steps", "3", "--loops", "1", "--no-psnr", "--json"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    import json

    res = json.loads(p.stdout)
    assert res["steps"] == 3 and res["step_count"] >= 3 and res["loop_ms"] > 0 and res["target"]["threads"] == 1
    assert any(sshd.host in n for n in res["notes"]) and res["model"] == str(model)
    assert list((tmp_path / "remote").glob("model-*.onnx.json"))  # the sidecar went with it
