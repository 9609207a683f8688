"""`cybersentinel retrain` (`make retrain`): the offline retraining loop. Refresh the feeds, fingerprint the
analyst feedback, `dvc repro`, compare the candidate with the champion on the test rows held out from both and on
the leave-one-collection-out table, promote only if it is better by the configured margin (params `retrain`),
write the comparison report, `dvc push`. A refused candidate is undone; with nothing new nothing changes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cybersentinel.tracking.registry import CHAMPION, PromotionError, check_alias

REPORT_DIR = Path("reports/tmp/retrain")  # git-ignored: the workflow posts it on the pull request


def _evaluate(model_dir: Path, rows: Any) -> dict[str, float]:
    from cybersentinel.model.estimators import load_detector
    from cybersentinel.tracking.registry import evaluate_on

    model, manifest = load_detector(model_dir)  # hash-verified
    return evaluate_on(model, manifest, rows)


def _move_registry_alias(repo: Path, alias: str) -> tuple[str, bool]:
    """Point MLflow's ``alias`` at the candidate's registered version, when it was registered. Returns a one-line
    note and whether the registry could be asked: an unreachable or failing registry is reported (URI redacted)
    without stopping the push and the report, and `retrain` then exits 2."""
    from cybersentinel.cli.registry import check_driver, version_of
    from cybersentinel.tracking.registry import (
        PromotionError,
        RegistryUnreachableError,
        client_for,
        registered_name,
        registry_errors,
        tracking_uri,
    )

    uri, name = tracking_uri(), registered_name()
    try:
        check_driver(uri)
        version = version_of(uri, name, repo / "models")
        with registry_errors(uri):
            client_for(uri).set_registered_model_alias(name, alias, version)
    except PromotionError as exc:  # not registered (trained with tracking off): nothing to move
        return f"registry alias not moved: {exc}", True
    except RegistryUnreachableError as exc:
        return f"registry alias not moved, the registry failed: {exc}", False
    return f"registry: {name} version {version} is now {alias!r}", True


def retrain_command(
    feeds: Annotated[bool, typer.Option("--refresh/--no-refresh", help="Refresh the feed snapshot first.")] = True,
    feeds_mirror: Annotated[Path | None, typer.Option("--mirror", envvar="CYBERSENTINEL_FEEDS_MIRROR",
                                                      help="Copy the feeds from this mirror instead of downloading.")
                            ] = None,
    push: Annotated[bool, typer.Option("--push/--no-push", help="dvc push a promoted model.")] = True,
    report_dir: Annotated[Path, typer.Option(help="Where report.md and comparison.json go.")] = REPORT_DIR,
    alias: Annotated[str, typer.Option(help="The registry alias a promoted candidate gets. Where a person approves "
                                            "it first (the scheduled workflow's pull request) give `challenger`: "
                                            "`fetch-model` and `serve --model-alias champion` then keep the "
                                            "approved model until `make promote` after the merge.")] = CHAMPION,
) -> None:
    """Retrain on what is new (data, feedback, feeds); promote the candidate only if it is better."""
    import pandas as pd

    from cybersentinel.core.files import atomic_path, sha256_file, write_json
    from cybersentinel.mlops import retrain as steps
    from cybersentinel.tracking.promotion import decide, report_markdown, shared_test_rows
    from cybersentinel.tracking.registry import METRICS

    try:
        check_alias(alias)  # before anything is retrained: MLflow would refuse to move it at the end
    except PromotionError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    repo = Path.cwd()  # run in the repository: the stages, params.yaml and the feedback store are relative to it
    report_dir = report_dir if report_dir.is_absolute() else repo / report_dir
    try:
        params, config = steps.retrain_params(repo / "params.yaml", METRICS)  # checked before anything runs
        steps.require_clean(repo)
        if feeds:
            typer.echo(steps.refresh_feeds_if_changed(repo, feeds_mirror))
        with tempfile.TemporaryDirectory(prefix="cybersentinel-champion-") as tmp:
            before = steps.keep_champion(repo, Path(tmp))
            before_feedback = json.loads((repo / "data/snapshot.json").read_text()).get("sources", {}) \
                if (repo / "data/snapshot.json").is_file() else {}
            feedback = steps.feedback_snapshots(params)
            typer.echo(f"feedback: {feedback['rows']} active corrections, snapshot {feedback['snapshot']}")
            try:
                steps.repro(repo)
                candidate_sanity = steps.sanity_counts(repo)
            except steps.RetrainError:
                if before:
                    steps.restore(repo)  # a failed repro leaves the champion in place, not half a candidate
                raise
            after_manifest = json.loads((repo / "models/model.json").read_text())
            # a new manifest with the same model file (a threshold, a pinned list) is a new decision, judged too
            same_manifest = before.get("manifest_sha256") == sha256_file(repo / "models/model.json")
            after_loco = json.loads((repo / "reports/generalisation.json").read_text())
            candidate = champion = None
            shared = pd.DataFrame()
            if before and before.get("test") and before["sha256"] != after_manifest["sha256"]:
                shared = shared_test_rows(pd.read_parquet(before["test"], columns=["url"]),
                                          pd.read_parquet(repo / "data/features/test.parquet"))
                if len(shared):
                    candidate, champion = _evaluate(repo / "models", shared), _evaluate(before["models"], shared)
            decision = decide(after_manifest["sha256"], before.get("sha256"), candidate, champion,
                              after_loco.get("loco_min_roc_auc"),
                              (before.get("generalisation") or {}).get("loco_min_roc_auc"),
                              metric=config["metric"], min_delta=float(config["min_delta"]),
                              loco_tolerance=float(config["loco_tolerance"]), shared_rows=len(shared),
                              candidate_sanity=candidate_sanity, champion_sanity=before.get("sanity"),
                              sanity_tolerance=config["sanity_tolerance"], same_manifest=same_manifest)
            nothing_new = same_manifest
            if not decision.promote and not nothing_new:
                steps.restore(repo)  # the champion stays, in the workspace and in dvc.lock
            notes, alias_moved = [], True
            if decision.promote:
                note, alias_moved = _move_registry_alias(repo, alias)
                notes.append(note)
                if push:
                    steps.push(repo)
                    notes.append("dvc push: done")
            old_feedback = sum(v.get("rows", 0) for k, v in before_feedback.items()
                               if k in feedback["sources"])
            summary = {
                "decision": decision.as_dict(), "notes": notes,
                "champion": {"sha256": before.get("sha256"), "loco": (before.get("generalisation") or {}).get("loco"),
                             "feedback": {"rows": old_feedback}},
                "candidate": {"sha256": after_manifest["sha256"], "loco": after_loco.get("loco"),
                              "feedback": {k: feedback[k] for k in ("rows", "snapshot")}},
            }
        if not nothing_new:  # with nothing new, nothing is written (not even the scratch report)
            write_json(report_dir / "comparison.json", summary)
            with atomic_path(report_dir / "report.md") as tmp:
                tmp.write_text(report_markdown(decision, summary["champion"], summary["candidate"])
                               + "".join(f"\n{note}\n" for note in notes), encoding="utf-8")
    except steps.RetrainError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None  # an error, as everywhere (1 is `drift`'s "drift found")
    typer.echo(f"{'promoted' if decision.promote else 'not promoted'}: {decision.reason}")
    for note in notes:
        typer.echo(note)
    if not alias_moved:  # pushed and reported, but MLflow's champion is still the old version: not a success
        typer.secho(f"error: the candidate was promoted but the registry's {alias!r} alias was not moved; run "
                    f"`cybersentinel promote --model-dir models --alias {alias}` once the registry answers",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
