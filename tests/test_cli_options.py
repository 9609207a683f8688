"""Command-line consistency: `--version`, and one name (--feeds-dir) for the feed snapshot folder in every
command; the old --feeds of `predict` and `etl load` still works, hidden, with a warning."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import typer
from fixtures_model import model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import COMMANDS, app
from cybersentinel.cli.options import feeds_dir_or_alias


def commands(group: click.Command, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every command under ``group``, asked as Click asks (the top level builds its commands on first use)."""
    found = {path: group}
    if hasattr(group, "list_commands"):
        context = typer.Context(group)
        for name in group.list_commands(context):
            found |= commands(group.get_command(context, name), (*path, name))
    return found


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cybersentinel {version('cybersentinel')}"


def test_every_visible_feeds_folder_option_is_called_feeds_dir() -> None:
    named = {}
    for path, command in commands(typer.main.get_command(app)).items():
        for param in command.params:
            visible = [o for o in param.opts if "feeds" in o and o != "--no-feeds"]
            if visible and not getattr(param, "hidden", False):
                named[" ".join(path)] = visible
    assert named and all(opts == ["--feeds-dir"] for opts in named.values()), named
    assert {"predict", "serve", "monitor", "etl load", "intel lookup", "blocklist export"} <= set(named)


def test_the_deprecated_spelling_wins_only_when_given(capsys) -> None:
    assert feeds_dir_or_alias(Path("a"), None) == Path("a")
    assert feeds_dir_or_alias(None, Path("b")) == Path("b")
    assert "deprecated" in capsys.readouterr().err


def test_predict_still_accepts_feeds_and_names_the_new_option(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(app, ["predict", "--model-dir", str(model_dir), "--feeds", str(tmp_path / "none"),
                                      "-o", str(tmp_path / "out.csv")], input="example.com\n")
    assert result.exit_code != 0
    assert "--feeds is deprecated" in result.output and "--feeds-dir" in result.output  # read the alias's folder
    assert "cannot read the feeds" in result.output


def test_predict_loads_no_other_command_code() -> None:
    """The top level builds a command only when it runs: `predict` starts without the other commands' modules
    (service, ETL, registry, drift) or the retry library (tenacity, which loads asyncio)."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cybersentinel.cli.app import app\n"
            "result = CliRunner().invoke(app, ['predict', '--help'])\nassert result.exit_code == 0, result.output\n"
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=120).stdout.split())
    assert "cybersentinel.cli.predict" in loaded
    others = {f"cybersentinel.cli.{module}" for module, _ in COMMANDS.values()} - {"cybersentinel.cli.predict"}
    assert not loaded & (others | {"cybersentinel.ops.service", "cybersentinel.ops.etl", "tenacity", "asyncio"})


def test_a_file_a_command_cannot_write_is_one_line_and_status_2(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """A directory, or a folder that is a file, as the output: one line naming it, status 2 (1 is `drift`'s
    "drift found"), no traceback, nothing written."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    urls = tmp_path / "urls.txt"
    urls.write_text("http://example.com/\n")
    for output in (tmp_path / "a-folder", tmp_path / "a-file" / "out.csv"):
        result = CliRunner().invoke(app, ["predict", "--model-dir", str(model_dir), "--no-feeds", "-i", str(urls),
                                          "-o", str(output)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"Error: {tmp_path}/a-") and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output
    assert list((tmp_path / "a-folder").iterdir()) == []
    devnull = CliRunner().invoke(app, ["predict", "--model-dir", str(model_dir), "--no-feeds", "-i", str(urls),
                                       "-o", "/dev/null"])
    assert devnull.exit_code == 0 and Path("/dev/null").is_char_device()


def test_serve_log_level_is_one_of_uvicorns() -> None:
    """An unknown level is a usage error (status 2) naming the option, not a traceback from logging; the choices
    are the names uvicorn accepts, its own `trace` included."""
    from uvicorn.config import LOG_LEVELS

    from cybersentinel.cli.serve import LogLevel

    assert set(LogLevel) == set(LOG_LEVELS)
    result = CliRunner().invoke(app, ["serve", "--log-level", "bogus"])
    assert result.exit_code == 2, result.output
    assert "--log-level" in result.output and "'bogus' is not one of" in result.output
    assert "Traceback" not in result.output


def test_monitor_reads_the_default_feeds_as_predict_does(model_dir: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    """One decision everywhere: run where data/feeds exists, `predict` and `monitor` both read it unless told
    --no-feeds, so an address listed there is malicious from either door. The followed proxy log also holds a
    path alone (`GET /`), which is skipped, not fatal."""
    feeds = tmp_path / "data" / "feeds"
    feeds.mkdir(parents=True)
    (feeds / "spamhaus_drop.txt").write_text("1.10.16.0/20 ; SBL256894\n")
    monkeypatch.chdir(tmp_path)
    url, model = "http://1.10.16.5/x", ["--model-dir", str(model_dir)]
    predicted = CliRunner().invoke(app, ["predict", *model, "-o", "-", "--output-format", "jsonl"], input=url + "\n")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout.splitlines()[0])["verdict"] == "malicious"
    log, alerts = tmp_path / "access.log", tmp_path / "alerts.jsonl"
    when = "[24/Nov/2026:03:00:00 +0000]"
    log.write_text(f'9.9.9.9 - - {when} "GET {url} HTTP/1.1" 200 5 "-" "-"\n'
                   f'9.9.9.9 - - {when} "GET / HTTP/1.1" 400 0 "-" "-"\n')
    result = CliRunner().invoke(app, ["monitor", str(log), "--once", *model, "--alerts", str(alerts)])
    assert result.exit_code == 0, result.output
    alert = json.loads(alerts.read_text())
    assert (alert["url"], alert["verdict"], alert["feeds"]) == (url, "malicious", ["spamhaus_drop"])
    assert '"hostless_skipped": 1' in result.output
    alerts.unlink()
    result = CliRunner().invoke(app, ["monitor", str(log), "--once", *model, "--alerts", str(alerts), "--no-feeds"])
    assert result.exit_code == 0 and "spamhaus_drop" not in alerts.read_text(), result.output
