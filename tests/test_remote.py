"""The S3 remote for real: a local moto server on 127.0.0.1, `dvc push`, a fresh `git clone`, `dvc pull` of the
train stage and `cybersentinel predict` with no retraining; clear errors for a dead remote or refused keys."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures_pipeline import REPO, pipeline_env, share_numba_cache

from cybersentinel.core.files import sha256_file
from cybersentinel.mlops.remote import (
    LOCAL_KEYS,
    dvc_remote,
    free_port,
    read_state,
    server_running,
    write_local_config,
)

CLI = str(Path(sys.executable).parent / "cybersentinel")
URLS = ["http://paypal.com.account-verify.example.tk/login.php", "https://en.wikipedia.org/wiki/Phishing",
        "secure-update-appleid.com.signin.example.ru/verify", "github.com/iterative/dvc", "http://192.168.4.20/admin"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def clone_with_cache(source: Path, target: Path, share_cache: bool = True) -> Path:
    """A git clone of ``source`` with its pipeline outputs checked out: reading (and adding to) ``source``'s DVC
    cache, or from a private copy of its objects without the run-cache (so stages really run again)."""
    run(["git", "clone", "-q", str(source), str(target)], cwd=source.parent)
    share_numba_cache(source, target)
    if share_cache:
        run([sys.executable, "-m", "dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache")], cwd=target)
    else:
        shutil.copytree(source / ".dvc" / "cache" / "files", target / ".dvc" / "cache" / "files")
    run([sys.executable, "-m", "dvc", "checkout", "-q"], cwd=target)
    return target


def predict(cwd: Path, model_dir: Path, env: dict[str, str]) -> pd.DataFrame:
    pd.DataFrame({"url": URLS}).to_csv(cwd / "urls.csv", index=False)
    run([CLI, "predict", "-i", "urls.csv", "-o", "scored.csv", "--model-dir", str(model_dir)], cwd=cwd, env=env)
    return pd.read_csv(cwd / "scored.csv", keep_default_na=False)


@pytest.fixture(scope="module")
def pushed_repo(sample_repo: Path, sample_mirror: Path, tmp_path_factory: pytest.TempPathFactory):
    """A clone of the sample repository whose data and model sit in a local S3 server (stopped afterwards)."""
    repo = clone_with_cache(sample_repo, tmp_path_factory.mktemp("remote") / "origin")
    env = pipeline_env(repo, sample_mirror)
    run([CLI, "remote", "up", "--port", str(free_port())], cwd=repo, env=env)
    try:
        run([CLI, "remote", "push"], cwd=repo, env=env)
        yield repo, env
    finally:
        run([CLI, "remote", "down"], cwd=repo, env=env)


def remote_settings(repo: Path) -> dict[str, str]:
    """Endpoint and keys of the default remote, as DVC merges them (config.local is not in git)."""
    remote = dvc_remote(repo)
    return {"endpointurl": remote.endpoint, "access_key_id": remote.access_key_id,
            "secret_access_key": remote.secret_access_key}


@pytest.mark.slow
def test_fresh_clone_pulls_the_exact_model_and_predicts_without_training(pushed_repo, tmp_path: Path) -> None:
    origin, env = pushed_repo
    fresh = tmp_path / "fresh"
    run(["git", "clone", "-q", str(origin), str(fresh)], cwd=tmp_path)
    assert not (fresh / "models").exists()  # outputs live in the remote, not in git
    settings = remote_settings(origin)
    write_local_config(fresh, "storage", settings)

    run([CLI, "remote", "pull", "train"], cwd=fresh, env=env)
    manifest = json.loads((fresh / "models" / "model.json").read_text())
    assert sha256_file(fresh / "models" / "model.skops") == manifest["sha256"]
    assert manifest == json.loads((origin / "models" / "model.json").read_text())
    assert not (fresh / "data" / "features" / "train.parquet").exists()  # only the train stage's outputs

    run([CLI, "remote", "pull", "data/feeds.dvc"], cwd=fresh, env=env)  # the feed snapshot is versioned too
    for file in (origin / "data" / "feeds").iterdir():
        assert (fresh / "data" / "feeds" / file.name).read_bytes() == file.read_bytes(), file.name

    pulled = predict(fresh, fresh / "models", env)
    original = predict(tmp_path, origin / "models", env)
    assert pulled["score"].tolist() == original["score"].tolist()
    assert pulled["verdict"].tolist() == original["verdict"].tolist()
    assert set(pulled["verdict"]) <= {"malicious", "suspicious", "benign"}


@pytest.mark.slow
def test_artifact_get_downloads_a_gto_tagged_version(pushed_repo, tmp_path: Path) -> None:
    origin, env = pushed_repo
    run([str(Path(sys.executable).parent / "gto"), "register", "url-detector", "--version", "v0.1.0"], cwd=origin,
        env=env)
    assert "url-detector@v0.1.0" in run(["git", "tag", "-l"], cwd=origin).stdout
    # The remote's endpoint is not in git: hand it to `dvc artifacts get` as an extra config file.
    settings = remote_settings(origin)
    extra = tmp_path / "remote.conf"
    extra.write_text("['remote \"storage\"']\n" + "".join(f"    {k} = {v}\n" for k, v in settings.items()))
    out = tmp_path / "detector"
    run([sys.executable, "-m", "dvc", "artifacts", "get", str(origin), "url-detector", "--rev", "v0.1.0",
         "-o", str(out), "--config", str(extra)], cwd=tmp_path, env=env)
    assert sha256_file(out / "model.skops") == json.loads((out / "model.json").read_text())["sha256"]
    assert (out / "model.json").read_text() == (origin / "models" / "model.json").read_text()


def dvc_repo_with_remote(path: Path, endpoint: str, keys: dict[str, str]) -> Path:
    path.mkdir()
    run(["git", "init", "-q"], cwd=path)
    run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path)
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "storage", "s3://cybersentinel-test/store"], cwd=path)
    write_local_config(path, "storage", {"endpointurl": endpoint, **keys})
    return path


@pytest.mark.slow
def test_a_dead_remote_is_named_with_what_to_check(tmp_path: Path) -> None:
    repo = dvc_repo_with_remote(tmp_path / "repo", f"http://127.0.0.1:{free_port()}", LOCAL_KEYS)
    for command in (["remote", "check"], ["remote", "pull"]):
        result = run([CLI, *command], cwd=repo, check=False)
        assert result.returncode == 2
        assert "remote 'storage'" in result.stderr and "is unreachable" in result.stderr
        assert "cybersentinel remote up" in result.stderr and "endpointurl" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_refused_credentials_are_named_with_what_to_check(tmp_path: Path) -> None:
    port = free_port()
    # A real S3 server that checks keys (moto with IAM authentication on): unknown keys get 403.
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        repo = dvc_repo_with_remote(tmp_path / "repo", f"http://127.0.0.1:{port}",
                                    {"access_key_id": "AKIANOTAREALKEY00000", "secret_access_key": "wrong"})
        deadline = time.monotonic() + 20
        while (result := run([CLI, "remote", "check"], cwd=repo, check=False)).returncode and (
                "unreachable" in result.stderr and time.monotonic() < deadline):
            time.sleep(0.3)
        assert result.returncode == 2
        assert "remote 'storage'" in result.stderr and "refused the credentials" in result.stderr
        assert "InvalidAccessKeyId" in result.stderr and "access_key_id" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_up_is_idempotent_and_down_stops_the_server(tmp_path: Path) -> None:
    repo = dvc_repo_with_remote(tmp_path / "repo", "http://127.0.0.1:1", LOCAL_KEYS)
    port = free_port()
    run([CLI, "remote", "up", "--port", str(port)], cwd=repo)
    try:
        first = read_state(repo)
        run([CLI, "remote", "up", "--port", str(port)], cwd=repo)
        assert read_state(repo) == first  # the running server is reused
        assert remote_settings(repo)["endpointurl"] == f"http://127.0.0.1:{port}"
    finally:
        run([CLI, "remote", "down"], cwd=repo)
    assert read_state(repo) is None
    assert not server_running(first["pid"], port)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_committed_config_names_an_s3_default_remote_without_secrets() -> None:
    from dvc.config import Config

    config = Config.load_file(str(REPO / ".dvc" / "config"))  # the git-tracked file alone
    settings = config["remote"][config["core"]["remote"]]
    assert settings["url"].startswith("s3://")
    assert not {"endpointurl", "access_key_id", "secret_access_key", "session_token", "profile"} & set(settings)
    assert config["hydra"]["enabled"] == "true"
    ignored = run(["git", "check-ignore", ".dvc/config.local"], cwd=REPO, check=False)
    assert ignored.returncode == 0



def cache_object(repo: Path, md5: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_push_and_check_fail_unless_every_locked_output_is_on_the_remote(tmp_path: Path) -> None:
    """`dvc push` only warns when an output is missing from the cache; `remote push`/`remote check` fail instead."""
    repo = dvc_repo_with_remote(tmp_path / "repo", "http://127.0.0.1:1", LOCAL_KEYS)
    (repo / "feeds").mkdir()
    (repo / "feeds" / "a.txt").write_text("203.0.113.7\n")
    (repo / "feeds" / "b.txt").write_text("bad.example\n")
    (repo / "model.bin").write_bytes(b"weights")
    run([sys.executable, "-m", "dvc", "add", "-q", "feeds", "model.bin"], cwd=repo)
    run([CLI, "remote", "up", "--port", str(free_port())], cwd=repo)
    try:
        not_pushed = run([CLI, "remote", "check"], cwd=repo, check=False)
        assert not_pushed.returncode == 2, not_pushed.stdout
        assert "feeds: 2 of 2 file(s) are in the local cache but not on the remote" in not_pushed.stderr
        assert "model.bin: 1 of 1 file(s)" in not_pushed.stderr and "make push" in not_pushed.stderr

        # One file of the directory and its listing lost from the cache before the first push.
        listing = yaml.safe_load((repo / "feeds.dvc").read_text())["outs"][0]["md5"]
        file_md5 = hashlib.md5(b"203.0.113.7\n").hexdigest()
        cache_object(repo, file_md5).unlink()
        pushed = run([CLI, "remote", "push"], cwd=repo, check=False)
        assert pushed.returncode == 2, pushed.stdout + pushed.stderr
        assert "1 output(s) are not on remote 'storage'" in pushed.stderr
        assert "feeds: 1 of 2 file(s) are neither in the local cache nor on the remote" in pushed.stderr
        assert "`dvc add feeds`" in pushed.stderr and "model.bin" not in pushed.stderr  # model.bin did reach it
        assert "Traceback" not in pushed.stderr
        cache_object(repo, listing).unlink()
        checked = run([CLI, "remote", "check"], cwd=repo, check=False)
        assert checked.returncode == 2
        assert (f"feeds: its directory listing ({listing}, named in feeds.dvc) is neither in the local cache nor on "
                "the remote: rebuild it (`dvc add feeds`, commit feeds.dvc if it changed)") in checked.stderr

        # Nowhere at all (a snapshot made on another machine and never pushed): the .dvc file's `meta: rebuild:`
        # says how to make it again, as data/feeds.dvc names `make feeds`.
        with (repo / "feeds.dvc").open("a") as dvc_file:
            dvc_file.write("meta:\n  rebuild: make feeds\n")
        (repo / "feeds").rename(repo / "feeds.away")
        checked = run([CLI, "remote", "check"], cwd=repo, check=False)
        assert checked.returncode == 2 and "Traceback" not in checked.stderr
        assert (f"feeds: its directory listing ({listing}, named in feeds.dvc) is neither in the local cache nor "
                "on the remote and feeds is not in the workspace either: rebuild it (`make feeds`, commit feeds.dvc "
                "if it changed), then push") in " ".join(checked.stderr.split())
        (repo / "feeds.away").rename(repo / "feeds")

        run([sys.executable, "-m", "dvc", "add", "-q", "feeds"], cwd=repo)  # the files are back in the cache
        assert "rebuild: make feeds" in (repo / "feeds.dvc").read_text()  # `dvc add` keeps the meta
        pushed = run([CLI, "remote", "push"], cwd=repo)
        assert "every locked output is on remote 'storage'" in pushed.stdout
        assert "holds every locked output" in run([CLI, "remote", "check"], cwd=repo).stdout
        # A fresh copy of the cache-less repository pulls what the check vouched for.
        shutil.rmtree(repo / ".dvc" / "cache")
        shutil.rmtree(repo / "feeds")
        (repo / "model.bin").unlink()
        run([CLI, "remote", "pull"], cwd=repo)
        assert (repo / "feeds" / "a.txt").read_text() == "203.0.113.7\n"
        assert (repo / "model.bin").read_bytes() == b"weights"
    finally:
        run([CLI, "remote", "down"], cwd=repo)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The command failed with exit status 2 and a single `error: ...` line, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


SECRET = "s3cretTail"


def test_check_redacts_the_credentials_in_every_url_it_quotes(tmp_path: Path) -> None:
    endpoint = f"http://user:{SECRET}@127.0.0.1:{free_port()}"  # botocore quotes it in its own message
    repo = dvc_repo_with_remote(tmp_path / "repo", endpoint, LOCAL_KEYS)
    for command in (["remote", "check"], ["remote", "push"]):
        result = run([CLI, *command], cwd=repo, check=False)
        assert SECRET not in result.stdout + result.stderr
        error = one_line_error(result)
        assert "is unreachable" in error and "http://***@127.0.0.1" in error


def test_remote_errors_exit_with_status_2(tmp_path: Path) -> None:
    repo = dvc_repo_with_remote(tmp_path / "repo", "http://127.0.0.1:1", LOCAL_KEYS)
    assert "no DVC remote named 'nope'" in one_line_error(run([CLI, "remote", "check", "-r", "nope"], cwd=repo,
                                                              check=False))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run([CLI, "remote", "up", "--port", str(port)], cwd=repo, check=False)
    assert "is already in use" in one_line_error(result)


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_up_refuses_a_port_out_of_range(port: str, tmp_path: Path) -> None:
    repo = dvc_repo_with_remote(tmp_path / "repo", "http://127.0.0.1:1", LOCAL_KEYS)
    result = run([CLI, "remote", "up", "--port", port], cwd=repo, check=False)
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["up"], ["check"], ["push"], ["pull"]])
def test_a_folder_that_is_not_a_dvc_repository_is_named(command: list[str], tmp_path: Path) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        result = run([CLI, "remote", *command, "--repo", str(folder)], cwd=tmp_path, check=False)
        assert f"{folder}: not a DVC repository" in one_line_error(result)


def write_state(repo: Path, content: bytes) -> Path:
    path = repo / ".dvc" / "tmp" / "s3-server.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("content", [b"{bad", b'{"pid": "abc", "endpoint": "http://127.0.0.1:5577"}', b"[]",
                                     b'{"pid": 0, "endpoint": "http://127.0.0.1:5577"}', b"\xff\xfe",
                                     b'{"pid": 12, "endpoint": "http://127.0.0.1:notaport"}', b'{"pid": 12}'])
def test_down_names_a_corrupt_state_file(content: bytes, tmp_path: Path) -> None:
    path = write_state(tmp_path, content)
    error = one_line_error(run([CLI, "remote", "down"], cwd=tmp_path, check=False))
    assert str(path) in error and "remote up" in error
    assert path.read_bytes() == content  # its server may still run: the file is the only record of its pid


def test_down_does_not_claim_to_stop_a_process_that_is_not_the_server(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])  # a live process that is not moto
    try:
        path = write_state(tmp_path, json.dumps({"pid": other.pid, "endpoint": "http://127.0.0.1:5577"}).encode())
        result = run([CLI, "remote", "down"], cwd=tmp_path)
        assert "stopped the local S3 server" not in result.stdout
        assert f"pid {other.pid}" in result.stdout and "is not the local S3 server" in result.stdout
        assert not path.exists() and other.poll() is None  # stale state removed, the process left alone
    finally:
        other.kill()
        other.wait(10)
