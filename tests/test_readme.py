"""The README and the manual pages under docs/ say true things: every `rcai` command line in them
parses against the CLI as it is (options exist, values have the right types, files are not needed to
parse), the README shows every command once with its `--help` working, it stays a short page, and its
cheap lines run on the shipped files (the expensive ones run in their own tests: the pipeline,
profile, search, training)."""
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from rcai.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands(page: Path = ROOT / "README.md") -> list[str]:
    """`rcai ...` lines of a page's code blocks, continuation lines joined, comments dropped."""
    out, block, pending = [], False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            block = not block
            continue
        if not block:
            continue
        text = (pending + " " + line.strip()) if pending else line.strip()
        pending = ""
        code = text.split("  #")[0].split(" # ")[0].strip()
        if code.endswith("\\"):
            pending = code[:-1].strip()
            continue
        if code.startswith("rcai "):
            out.append(code)
    return out


def unparsed(ctx) -> list[str]:
    """What a group left for its subcommand (newer click keeps the subcommand's name apart)."""
    return list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)


def parse(args: list[str]):
    """Resolve the subcommand and parse its options the way `rcai` would, without running it (typer
    vendors its own click, so groups are told by their `resolve_command`)."""
    group = typer.main.get_command(app)
    ctx = group.make_context("rcai", list(args))
    cmd, rest = group, unparsed(ctx)
    while hasattr(cmd, "resolve_command") and rest:
        name, sub, rest = cmd.resolve_command(ctx, rest)
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd, rest = sub, unparsed(ctx)
    assert not rest, f"left unparsed: {rest}"
    return ctx


COMMANDS = readme_commands()
DOC_COMMANDS = sorted({c for page in PAGES[1:] for c in readme_commands(page)} - set(COMMANDS))


def command_paths(group=None, path=()) -> list[tuple[str, ...]]:
    """Every command of the CLI as its words (`("profile",)`, `("profile", "check")`); a group that
    runs without a subcommand (`rcai profile`, `rcai space`) is a command too."""
    group = group or typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        if not hasattr(cmd, "commands"):
            out.append((*path, name))
            continue
        if cmd.invoke_without_command:
            out.append((*path, name))
        out += command_paths(cmd, (*path, name))
    return out


def command_of(line: str) -> tuple[str, ...]:
    """The longest command path a line starts with."""
    words = tuple(shlex.split(line)[1:])
    return max((p for p in command_paths() if words[:len(p)] == p), key=len, default=())


def test_the_readme_is_short_and_shows_every_command():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
    assert (ROOT / "README.md").read_text().startswith("# rcai\n\n```bash\nmake demo")
    shown = {command_of(c) for c in COMMANDS}
    assert set(command_paths()) <= shown, f"commands with no README example: {sorted(set(command_paths()) - shown)}"
    assert len(DOC_COMMANDS) >= 10 and any(c.startswith("rcai pipeline") for c in COMMANDS)


@pytest.mark.parametrize("line", COMMANDS + DOC_COMMANDS)
def test_every_readme_command_parses(line):
    parse(shlex.split(line)[1:])


@pytest.mark.parametrize("path", sorted({command_of(c) for c in COMMANDS} - {()}), ids=" ".join)
def test_the_help_of_every_readme_command(path):
    from typer.testing import CliRunner

    done = CliRunner().invoke(app, [*path, "--help"])
    assert done.exit_code == 0, done.output
    assert "Usage: rcai " + " ".join(path) in " ".join(done.output.split())


def test_a_wrong_option_does_not_parse():  # the check above can fail
    with pytest.raises(Exception, match="No such option: --latency-budget"):
        parse(["search", "--latency-budget", "150"])
    with pytest.raises(Exception, match="valid number"):
        parse(["search", "--latency-budget-ms", "fast"])


CHEAP = ("rcai space   --preset tiny", "rcai --version")


@pytest.mark.parametrize("start", CHEAP)
def test_cheap_readme_lines_run(start):
    line = next((c for c in COMMANDS if c.startswith(start)), None) or start
    done = subprocess.run([sys.executable, "-m", "rcai", *shlex.split(line)[1:]], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
