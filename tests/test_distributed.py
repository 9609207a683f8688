"""`cybersentinel predict --engine dask` on the shared two-worker LocalCluster: the same rows, order and scores as
the local engine bit for bit on uneven inputs, s3:// in and out through a local moto server, a rerun replaces the
output, a killed worker never leaves a partial output that claims to be complete, and mismatched versions are a
clear error. The command line's default start-up never imports Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_dask import dask_client, s3_server  # noqa: F401
from fixtures_model import model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.core.files import sha256_file
from cybersentinel.scoring.batch import read_csv, read_parquet, score_batches
from cybersentinel.scoring.detector import Detector

HOSTS = ["example.com", "paypal.com.secure-login.example.tk", "github.com", "192.0.2.7", "xn--pypal-4ve.com",
         "login.microsoftonline.com.verify-account.ru", "en.wikipedia.org", "a-b-c-d-e.example.net"]
GARBAGE = [None, "", "   ", "not a url", "http://exa mple.com/", "\x00\x01\x02", "%%%", "http://", "x" * 70_000,
           "http://[::1]/", "\ufffd\ufffd.com"]


def urls(n: int, seed: int) -> list[str | None]:
    """``n`` URLs: plausible ones with random paths, and garbage and nulls spread among them."""
    rng = np.random.default_rng(seed)
    out: list[str | None] = []
    for i in range(n):
        if i % 13 == 5:
            out.append(GARBAGE[int(rng.integers(len(GARBAGE)))])
            continue
        host = HOSTS[int(rng.integers(len(HOSTS)))]
        path = "/".join(rng.choice(list("abcdefgh0123"), size=int(rng.integers(0, 12))).tolist())
        out.append(f"{rng.choice(['http://', 'https://', ''])}{host}/{path}?id={int(rng.integers(1e6))}")
    return out


def uneven_inputs(folder: Path, seed: int = 0) -> Path:
    """Several Parquet files of uneven sizes and row groups, one empty, and a CSV file with a malformed record."""
    folder.mkdir(parents=True)
    for name, n, group in (("a.parquet", 2_300, 1_000), ("b.parquet", 0, 1_000), ("c.parquet", 700, 300),
                           ("d.parquet", 1, 1)):
        values = urls(n, seed + n)
        pq.write_table(pa.table({"url": pa.array(values, pa.string()), "row": np.arange(n, dtype=np.int64)}),
                       folder / name, row_group_size=group)
    rows = [f"{i},{u}" for i, u in enumerate(urls(400, seed)) if u is not None and "\x00" not in u and "," not in u]
    rows.insert(7, '3,"unclosed,quote,field,here')
    (folder / "e.csv").write_text("row,url\n" + "\n".join(rows[:50]) + "\n")
    (folder / "f.csv").write_bytes(b"")
    (folder / "g.csv").write_text("row,url,note\n")
    return folder


def local_engine(path: Path, detector: Detector) -> pd.DataFrame:
    """What `cybersentinel predict` (the local engine) outputs for one file, as a frame."""
    with open(path, "rb") as stream:
        batches = read_csv(stream, "url", 256) if path.suffix == ".csv" else read_parquet(stream, "url", 256)
        tables = list(score_batches(batches, detector, detector.default_decider, True, workers=2))
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables else None


def dask_parts(out: Path | str, manifest: dict, fs=None) -> dict[str, pd.DataFrame]:
    """The output rows per input file, from the parts in partition order."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for part in manifest["parts"]:
        path = f"{str(out).rstrip('/')}/{part['part']}"
        table = pq.read_table(fs.open(path, "rb") if fs else path)
        frames.setdefault(Path(part["input"]).name, []).append(table.to_pandas())
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}


def assert_same_output(local: pd.DataFrame, distributed: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(distributed, local, check_exact=True)
    assert np.array_equal(distributed["score"].to_numpy().view(np.uint64), local["score"].to_numpy().view(np.uint64))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dask_engine_gives_the_local_engines_rows_order_and_scores(dask_client, model_dir: Path,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    inputs, out = uneven_inputs(tmp_path / "in"), tmp_path / "out"
    command = ["predict", "--engine", "dask", "--scheduler", dask_client.scheduler.address, "-i", str(inputs),
               "-o", str(out), "--model-dir", str(model_dir), "--no-feeds", "--rows-per-partition", "1000",
               "--chunk-size", "128"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["engine"] == "dask" and manifest["scheduler"] == dask_client.scheduler.address
    assert manifest["model"]["manifest_sha256"] == sha256_file(model_dir / "model.json")
    # a.parquet's 3 row groups make 3 partitions of at most 1,000 rows; the empty file is an empty partition
    assert [(Path(p["input"]).name, p["row_groups"]) for p in manifest["parts"]] == [
        ("a.parquet", [0]), ("a.parquet", [1]), ("a.parquet", [2]), ("b.parquet", [0]), ("c.parquet", [0, 1, 2]),
        ("d.parquet", [0]), ("e.csv", None), ("f.csv", None), ("g.csv", None)]
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json"] + [f"part-{i:05d}.parquet" for i in range(9)]
    assert manifest["input_rows"] is None  # the CSV's rows are known once read, not from a footer
    assert [p["input_rows"] for p in manifest["parts"][:6]] == [1000, 1000, 300, 0, 700, 1]
    assert all(p["input_rows"] == p["output_rows"] for p in manifest["parts"][:6])

    detector = Detector.from_dir(model_dir)
    parts = dask_parts(out, manifest)
    for name in ("a.parquet", "c.parquet", "d.parquet", "e.csv"):
        assert_same_output(local_engine(inputs / name, detector), parts[name])
    empty = parts["b.parquet"]
    assert len(empty) == 0 and {"url", "row", "score", "verdict", "error"} <= set(empty.columns)
    assert len(parts["f.csv"]) == 0 and len(parts["g.csv"]) == 0 and "note" in parts["g.csv"].columns
    assert (parts["a.parquet"]["error"] != "").sum() > 100  # garbage and nulls got an error, not dropped
    assert manifest["output_rows"] == 2_300 + 700 + 1 + len(parts["e.csv"])

    # A rerun over fewer files replaces the output: no partition of the first run is left behind.
    (inputs / "a.parquet").unlink()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    again = json.loads((out / "_manifest.json").read_text())
    assert again["partitions"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json"] + [f"part-{i:05d}.parquet" for i in range(6)]
    assert_same_output(local_engine(inputs / "c.parquet", detector), dask_parts(out, again)["c.parquet"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_s3_input_and_output(dask_client, s3_server, model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    import s3fs

    from cybersentinel.ops.distributed import score_distributed

    fs = s3fs.S3FileSystem(**s3_server)
    fs.mkdir("scores-test")
    inputs = uneven_inputs(tmp_path / "in", seed=3)
    for path in inputs.iterdir():
        fs.put(str(path), f"scores-test/logs/{path.name}")
    manifest = score_distributed("s3://scores-test/logs/*.parquet", "s3://scores-test/scored", model_dir=model_dir,
                                 client=dask_client, scheduler_name="shared", chunk_size=500, rows_per_piece=1500,
                                 storage_options=s3_server)
    assert manifest["input_rows"] == manifest["output_rows"] == 2_300 + 700 + 1
    assert sorted(Path(p).name for p in fs.ls("scores-test/scored")) == \
        ["_manifest.json"] + [f"part-{i:05d}.parquet" for i in range(5)]
    assert json.loads(fs.cat("scores-test/scored/_manifest.json")) == manifest
    assert "secret" not in json.dumps(manifest) and s3_server["secret"] not in json.dumps(manifest)
    detector = Detector.from_dir(model_dir)
    parts = dask_parts("scores-test/scored", manifest, fs)
    for name in ("a.parquet", "c.parquet", "d.parquet"):
        assert_same_output(local_engine(inputs / name, detector), parts[name])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_worker_never_leaves_a_partial_output_presented_as_complete(dask_client, model_dir: Path,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    from cybersentinel.ops.distributed import MANIFEST, DistributedError, score_distributed

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(6):
        values = urls(12_000, seed=100 + i)
        pq.write_table(pa.table({"url": pa.array(values, pa.string())}), inputs / f"log-{i}.parquet")
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["manifest"] = score_distributed(str(inputs), str(out), model_dir=model_dir, client=dask_client,
                                                    scheduler_name="shared", chunk_size=2_000)
        except DistributedError as exc:
            outcome["error"] = exc

    job = threading.Thread(target=run)
    job.start()
    deadline = time.monotonic() + 300
    while not any(dask_client.processing().values()) or not list(out.glob("part-*.parquet")):
        assert time.monotonic() < deadline and job.is_alive(), "scoring never started"
        time.sleep(0.05)
    victim = next(iter(dask_client.processing()))
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    job.join(timeout=400)
    assert not job.is_alive()
    if "error" in outcome:  # failed clearly: then nothing claims to be complete
        assert not (out / MANIFEST).exists()
    else:  # Dask retried the lost partitions: the output is whole
        manifest = json.loads((out / MANIFEST).read_text())
        assert manifest == outcome["manifest"]
        assert manifest["input_rows"] == manifest["output_rows"] == 6 * 12_000
        assert sorted(p.name for p in out.iterdir()) == [MANIFEST] + [f"part-{i:05d}.parquet" for i in range(6)]
        detector = Detector.from_dir(model_dir)
        parts = dask_parts(out, manifest)
        for i in (0, 5):
            assert_same_output(local_engine(inputs / f"log-{i}.parquet", detector), parts[f"log-{i}.parquet"])
    dask_client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the other tests


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_workers_running_other_versions_are_a_clear_error(dask_client, model_dir: Path, tmp_path: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from cybersentinel.ops import distributed as engine

    real = engine.code_versions()
    monkeypatch.setattr(engine, "code_versions", lambda: {**real, "cybersentinel": "0.0.0-client"})
    inputs = uneven_inputs(tmp_path / "in")
    with pytest.raises(engine.DistributedError, match=r"could not load the model: worker .* runs .*0\.1\.0.*0\.0\.0"):
        engine.score_distributed(str(inputs), str(tmp_path / "out"), model_dir=model_dir, client=dask_client,
                                 scheduler_name="shared")
    assert not (tmp_path / "out" / engine.MANIFEST).exists()


def test_row_groups_make_partitions_of_bounded_size(tmp_path: Path) -> None:
    import fsspec

    from cybersentinel.ops.distributed import plan_pieces

    pq.write_table(pa.table({"url": [f"h{i}.example" for i in range(10)]}), tmp_path / "x.parquet", row_group_size=3)
    pq.write_table(pa.table({"url": pa.array([], pa.string())}), tmp_path / "y.parquet")
    pieces = plan_pieces(fsspec.filesystem("file"), [str(tmp_path / "x.parquet"), str(tmp_path / "y.parquet")],
                         "url", 6)
    assert [(p.index, Path(p.path).name, p.row_groups, p.rows) for p in pieces] == [
        (0, "x.parquet", (0, 1), 6), (1, "x.parquet", (2, 3), 4), (2, "y.parquet", (0,), 0)]
    source = str(tmp_path / "x.parquet")
    rows = [len(b.urls) for p in pieces[:2] for b in read_parquet(source, "url", 100, p.row_groups)]
    assert rows == [6, 4]


def test_the_command_lines_start_up_does_not_import_dask() -> None:
    code = "import sys; import cybersentinel.cli.app; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('dask', 'distributed', 's3fs')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_command_line_starts_its_own_cluster_and_reads_s3_from_the_aws_variables(
        s3_server, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    fs.mkdir("env-test")
    inputs = uneven_inputs(tmp_path / "in", seed=5)
    fs.put(str(inputs / "c.parquet"), "env-test/in/c.parquet")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["client_kwargs"]["endpoint_url"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    result = CliRunner().invoke(app, ["predict", "--engine", "dask", "--workers", "1", "-i", "s3://env-test/in/",
                                      "-o", "s3://env-test/out", "--model-dir", str(model_dir), "--no-feeds"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(fs.cat("env-test/out/_manifest.json"))
    assert manifest["scheduler"] == "LocalCluster(n_workers=1, threads_per_worker=1)" and manifest["output_rows"] == 700
    local = local_engine(inputs / "c.parquet", Detector.from_dir(model_dir))
    assert_same_output(local, dask_parts("env-test/out", manifest, fs)["c.parquet"])
