"""`cybersentinel monitor`: follow an access log and alert on (and optionally block) what is judged malicious."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cybersentinel.cli.options import (
    AllowFiles,
    AllowNames,
    AllowTop,
    DecisionLogDir,
    FeedbackDb,
    LogRetentionDays,
    LogRotateRows,
    LogRotateSeconds,
    ModelSha256,
    UseFeedback,
    with_feedback,
)
from cybersentinel.ops.monitor import LOG_FORMATS, Scorer, SiteHostNeededError, run_monitor

if TYPE_CHECKING:  # `cybersentinel --help` stays free of the feeds' imports
    from cybersentinel.intel.feeds import IntelIndex


def _model_scorer(model_dir: Path, index: Any, allow: Any, block: Any = None, model_sha256: str | None = None
                  ) -> tuple[Scorer, dict[str, Any], dict[str, str], dict[str, int]]:
    """The served decision (model, feeds, allowlist, local block list), as predict and the service give it, the
    model's manifest, and the public DNS resolvers and popular sites pinned with it."""
    from cybersentinel.core.files import EVALUATION_RECORD
    from cybersentinel.scoring.detector import Detector

    detector = Detector.from_dir(model_dir, model_sha256, EVALUATION_RECORD)
    decider = detector.decider(index, allow, block)

    def score(urls: list[str]) -> list[dict[str, Any]]:
        return detector.score_values(urls, decider=decider).to_pylist()

    return score, detector.manifest, detector.resolvers, detector.popularity


def _check_blocklist(path: Path | None) -> None:
    """Read the block list before the model loads and anything starts: a file that is not one is a bad option."""
    from cybersentinel.ops.blocklist import InputError
    from cybersentinel.ops.monitor import load_blocklist

    try:
        load_blocklist(path)
    except InputError as err:
        raise typer.BadParameter(str(err), param_hint="--blocklist") from None


def _default_feeds_dir() -> Path | None:
    """`predict`'s default, so both doors give one decision: data/feeds when it is a folder here, else none."""
    from cybersentinel.intel.feeds import DEFAULT_FEEDS_DIR

    return DEFAULT_FEEDS_DIR if DEFAULT_FEEDS_DIR.is_dir() else None


def _feeds_index(folder: Path | None) -> IntelIndex | None:
    """The feeds' index, None without a folder; a folder that cannot be read is a bad option, as for `predict`."""
    if folder is None:
        return None
    from cybersentinel.intel.feeds import FeedError, IntelIndex

    try:
        return IntelIndex.from_dir(folder)
    except (FeedError, OSError) as err:
        raise typer.BadParameter(f"cannot read the feeds: {err}", param_hint="--feeds-dir") from err


ALERTED_FROM = {"suspicious": ("malicious", "suspicious"), "malicious": ("malicious",)}  # --alert-on: the verdicts


def monitor(
    log: Annotated[Path, typer.Argument(help="Log to follow: a web server's or proxy's access log, a resolver's "
                                        "query log, Suricata's eve.json or a Zeek log.", dir_okay=False)],
    log_format: Annotated[str, typer.Option("--format", help=f"Log format: {', '.join(LOG_FORMATS)}. Zeek's "
                                            "tab-separated logs need their #fields header: follow them with "
                                            "--from-start.")] = "auto",
    site_host: Annotated[str | None, typer.Option(help="Host name of the site a web server log belongs to "
                                                  "(paths are scored as http://HOST/path).")] = None,
    home_net: Annotated[list[str] | None, typer.Option("--home-net", help="A network of the clients a Suricata or "
                                                       "Zeek log watches (CIDR, repeatable): only their requests to "
                                                       "servers outside, and their DNS queries, are scored. Given, "
                                                       "these replace the default: the non-global addresses (10/8, "
                                                       "172.16/12, 192.168/16, fc00::/7...).")
                        ] = None,
    alerts: Annotated[Path | None, typer.Option(help="Append JSON-line alerts here (default: stdout).")] = None,
    alert_on: Annotated[str, typer.Option(help="The lowest verdict alerted: suspicious or malicious (a resolver's "
                                          "log of CDN and tracker names brings many suspicious ones).")
                        ] = "suspicious",
    blocklist: Annotated[Path | None, typer.Option(help="Block list CSV kept up to date (reloaded at start; "
                                                   "input for `blocklist export`).")] = None,
    render: Annotated[list[str] | None, typer.Option(help="Also rewrite a rendered block list, FORMAT=PATH "
                                                     "(repeatable), e.g. nftables=/etc/nftables.d/cs.nft; FORMAT "
                                                     "is one of `blocklist export`'s.")] = None,
    feeds_dir: Annotated[Path | None, typer.Option(file_okay=False, help="Feed snapshots for IP and domain lookups "
                                                   "(and the Tranco list that keeps popular sites from being "
                                                   "blocked); default: data/feeds when it exists, as `predict`."
                                                   )] = None,
    no_feeds: Annotated[bool, typer.Option("--no-feeds", help="Judge with the model alone (no feed lookups).")
                        ] = False,
    allow_names: AllowNames = None,
    allow_files: AllowFiles = None,
    allow_top: AllowTop = 10_000,
    feedback_db: FeedbackDb = None,
    feedback: UseFeedback = True,
    model_dir: Annotated[Path, typer.Option(help="Model folder for scoring.")] = Path("models"),
    model_sha256: ModelSha256 = None,
    from_start: Annotated[bool, typer.Option(help="Read the existing log first, not only new lines.")] = False,
    once: Annotated[bool, typer.Option("--once", help="Read the log from its start to its end, then stop.")] = False,
    max_lines: Annotated[int | None, typer.Option(min=1, help="Stop after this many lines.")] = None,
    duration: Annotated[float | None, typer.Option(min=0.0, help="Stop after this many seconds.")] = None,
    show_malformed: Annotated[bool, typer.Option(help="Show a short escaped excerpt of each malformed line in the "
                                                 "report (default: line numbers and counts only).")] = False,
    metrics_port: Annotated[int | None, typer.Option(min=0, max=65535, help="Serve Prometheus metrics on this port "
                                                     "(http://HOST:PORT/metrics) while following.")] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
    decision_log: DecisionLogDir = None,
    log_rotate_rows: LogRotateRows = 1_000_000,
    log_rotate_seconds: LogRotateSeconds = 3600.0,
    log_retention_days: LogRetentionDays = 30.0,
) -> None:
    """Follow an access log; alert on malicious URLs and listed addresses; keep a block list current."""
    from rich.console import Console

    from cybersentinel.ops.blocklist import FORMATS

    console = Console(stderr=True)
    if alert_on not in ALERTED_FROM:
        raise typer.BadParameter(f"choose from {', '.join(ALERTED_FROM)}", param_hint="--alert-on")
    if log_format not in LOG_FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(LOG_FORMATS)}", param_hint="--format")
    networks = []
    for cidr in home_net or ():
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--home-net") from None
    targets = {}
    for item in render or ():
        fmt, _, target = item.partition("=")
        if fmt not in FORMATS or not target:
            raise typer.BadParameter(f"{item!r}: expected FORMAT=PATH with FORMAT one of {', '.join(FORMATS)}",
                                     param_hint="--render")
        targets[fmt] = Path(target)
    if targets and blocklist is None:
        raise typer.BadParameter("--render needs --blocklist (the state it is rendered from)", param_hint="--render")
    _check_blocklist(blocklist)
    index = _feeds_index(None if no_feeds else feeds_dir or _default_feeds_dir())
    from cybersentinel.core.files import ModelIntegrityError
    from cybersentinel.ops.blocklist import Guard
    from cybersentinel.scoring.policy import SiteList, read_site_list

    try:
        allow = read_site_list(allow_files or [], allow_names or [], "allowlist")
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--allow-file") from err
    allow, block = with_feedback(allow, SiteList(), feedback, feedback_db)
    try:
        score, manifest, resolvers, pinned = _model_scorer(model_dir, index, allow, block, model_sha256)
    except (FileNotFoundError, ModelIntegrityError, ValueError) as err:
        raise typer.BadParameter(f"cannot load the model: {err}", param_hint="--model-dir") from err
    popularity = index.popularity if index is not None and index.popularity else pinned  # the decision's own list
    if allow_top and not popularity:
        console.print("[yellow]warning:[/yellow] no Tranco list in the feeds and none pinned with the model: popular "
                      "sites are protected only by the allowlist")
    guard = Guard(allow, popularity, allow_top, addresses=resolvers)
    with contextlib.ExitStack() as stack:
        registry = None
        if metrics_port is not None:
            from prometheus_client import CollectorRegistry, start_http_server

            registry = CollectorRegistry()  # this run's own, not the library's process-wide default
            try:
                server, _ = start_http_server(metrics_port, metrics_host, registry)
            except OSError as err:
                raise typer.BadParameter(f"cannot listen on {metrics_host}:{metrics_port}: {err}",
                                         param_hint="--metrics-port") from err
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
            console.print(f"metrics: http://{metrics_host}:{server.server_port}/metrics")
        decisions = None
        if decision_log is not None:
            from cybersentinel.ops.decisions import DecisionLog, LogSettings

            decisions = DecisionLog(LogSettings(decision_log, log_rotate_rows, log_rotate_seconds, log_retention_days),
                                    manifest["sha256"])
            stack.callback(decisions.close)  # the open file is finished and renamed into place
        out = stack.enter_context(open(alerts, "a", encoding="utf-8")) if alerts else sys.stdout
        try:
            report = run_monitor(log, score, index=index, fmt=log_format, site_host=site_host, alerts=out,
                                 blocklist=blocklist, render=targets, from_start=from_start, once=once,
                                 max_lines=max_lines, duration=duration, guard=guard, show_malformed=show_malformed,
                                 registry=registry, alert_verdicts=ALERTED_FROM[alert_on],
                                 model=(manifest["name"], manifest["sha256"][:12]), decisions=decisions,
                                 home_net=networks)
        except SiteHostNeededError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
    console.print_json(json.dumps(report))
    if skipped := report.get("not_from_home_skipped", 0):
        home = "the --home-net networks" if networks else "a non-global address"
        console.print(f"{skipped} request{'s were' if skipped > 1 else ' was'} not from a home client ({home}) to a "
                      "server outside, and named no site: name every network of your clients with --home-net (given, "
                      "it replaces the default non-global addresses)")
