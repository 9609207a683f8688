"""The DVC remote: an S3 bucket named in .dvc/config (the default remote ``storage``).

For a laptop and the tests, ``cybersentinel remote up`` starts a local S3-compatible server (moto, as in
DVC's own test fixtures) on 127.0.0.1, creates the bucket and writes the endpoint and placeholder keys to
``.dvc/config.local`` (git-ignored); ``remote down`` stops it. The local server keeps objects in memory:
stopping it discards them. ``remote check`` probes whichever S3 store is configured (AWS S3, MinIO,
DagsHub or the local server) and says what to fix when it is down or refuses the credentials.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cybersentinel.core.redact import redact
from cybersentinel.core.retry import one_line

LOCAL_HOST = "127.0.0.1"


DEFAULT_PORT = 5577


# moto accepts any key pair unless IAM checks are switched on; these are placeholders, not secrets.
LOCAL_KEYS = {"access_key_id": "cybersentinel-local", "secret_access_key": "cybersentinel-local"}


STATE_FILE = Path(".dvc/tmp/s3-server.json")


class RemoteError(RuntimeError):
    """The remote cannot be used; the message names it and says what to check."""


@dataclass(frozen=True)
class S3Remote:
    name: str
    url: str
    endpoint: str | None
    access_key_id: str | None
    secret_access_key: str | None
    profile: str | None
    region: str | None

    @property
    def bucket(self) -> str:
        return urlparse(self.url).netloc

    @property
    def where(self) -> str:
        return f"remote '{self.name}' ({redact(self.url)}" + (f" at {redact(self.endpoint)})" if self.endpoint else ")")


@contextmanager
def open_repo(repo: str | Path) -> Iterator[Any]:
    """DVC's view of ``repo``; a folder outside any DVC repository (or no folder at all) is a RemoteError."""
    from dvc.config import ConfigError
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        dvc_repo = Repo(str(repo))
    except NotDvcRepoError as exc:
        raise RemoteError(f"{Path(repo).absolute()}: not a DVC repository") from exc
    except ConfigError as exc:  # the offending line is left out: config.local holds the remote's keys
        detail = re.sub(r"\('.*'\)", "(...)", one_line(exc))
        raise RemoteError(f"{Path(repo).absolute()}: DVC cannot read its configuration (.dvc/config, "
                          f".dvc/config.local or the user's): {detail}") from None
    with dvc_repo:
        yield dvc_repo


def dvc_remote(repo: str | Path = ".", name: str | None = None) -> S3Remote:
    """The named (or default) remote as DVC sees it: .dvc/config merged with config.local and user config."""
    with open_repo(repo) as dvc_repo:
        config = dvc_repo.config
        name = name or config["core"].get("remote")
        if not name:
            raise RemoteError("no default DVC remote: set one with `dvc remote add -d storage s3://<bucket>/<path>`")
        if name not in config["remote"]:
            raise RemoteError(f"no DVC remote named '{name}' in .dvc/config (known: {sorted(config['remote'])})")
        conf: dict[str, Any] = config["remote"][name]
    if not conf["url"].startswith("s3://"):
        raise RemoteError(f"remote '{name}' is {redact(conf['url'])}, not an s3:// URL")
    return S3Remote(name, conf["url"], conf.get("endpointurl"), conf.get("access_key_id"),
                    conf.get("secret_access_key"), conf.get("profile"), conf.get("region"))


def s3_client(remote: S3Remote) -> Any:
    """A boto3 client that fails fast (one attempt, short timeouts) so a dead remote costs seconds."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:  # an endpointurl that is no URL is a ValueError, an unknown profile a ProfileNotFound
        session = boto3.Session(profile_name=remote.profile) if remote.profile else boto3.Session()
        return session.client("s3", endpoint_url=remote.endpoint, region_name=remote.region or "us-east-1",
                              aws_access_key_id=remote.access_key_id, aws_secret_access_key=remote.secret_access_key,
                              config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}))
    except (ValueError, BotoCoreError) as exc:
        raise RemoteError(f"{remote.where}: cannot use its settings ({one_line(exc)}). Check endpointurl (a URL "
                          "such as http://127.0.0.1:9000), region and profile in .dvc/config.local "
                          "(`dvc config --list --show-origin`).") from None


UNREACHABLE_HINT = ("Check that the server is running (`cybersentinel remote up` or `make s3-up` for the local one), "
                    "the endpointurl in .dvc/config.local (`dvc config --list --show-origin`) and the network.")


CREDENTIALS_HINT = ("Check access_key_id/secret_access_key in .dvc/config.local (`dvc remote modify --local "
                    "{name} access_key_id ...`), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE, and that "
                    "the key may read and write the bucket.")


def check_remote(remote: S3Remote) -> None:
    """Raise RemoteError explaining why the remote's bucket cannot be used; return quietly if it can."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    client = s3_client(remote)
    try:
        client.head_bucket(Bucket=remote.bucket)
    except NoCredentialsError as exc:
        hint = CREDENTIALS_HINT.format(name=remote.name)
        raise RemoteError(f"{remote.where}: no credentials found. {hint}") from exc
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 404 or code in {"404", "NoSuchBucket"}:
            raise RemoteError(f"{remote.where}: bucket '{remote.bucket}' does not exist. Create it (`cybersentinel "
                              "remote up` does for the local server) or fix the url in .dvc/config.") from exc
        if status in {401, 403}:
            detail = _credential_error(client, remote) or f"HTTP {status} {code}".strip()
            raise RemoteError(f"{remote.where} refused the credentials ({detail}). "
                              + CREDENTIALS_HINT.format(name=remote.name)) from exc
        raise RemoteError(f"{remote.where}: {code or status}: {one_line(exc)}") from exc
    except EndpointConnectionError as exc:  # one_line: botocore quotes the endpoint URL, user-info and all
        raise RemoteError(f"{remote.where} is unreachable ({one_line(exc)}). {UNREACHABLE_HINT}") from exc
    except BotoCoreError as exc:  # timeouts, bad endpoint URLs, proxy errors
        raise RemoteError(f"{remote.where}: {type(exc).__name__}: {one_line(exc)}. {UNREACHABLE_HINT}") from exc


def _credential_error(client: Any, remote: S3Remote) -> str | None:
    """HEAD responses carry no error body; a listing says whether the key is unknown or the signature wrong."""
    from botocore.exceptions import ClientError

    try:
        client.list_objects_v2(Bucket=remote.bucket, MaxKeys=1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ") or None
    return None


def unsynced_outputs(repo: str | Path, remote: S3Remote, targets: list[str] | None = None) -> dict[str, str]:
    """The cached outputs of dvc.lock and the .dvc files (or of ``targets``) that a fresh clone could not pull:
    output path -> what is wrong. Empty when every file of every output is on the remote.

    `dvc push` only warns (and exits 0) when an output is missing from the local cache, and `dvc status --cloud`
    leaves such outputs out; this looks at each output's objects in the cache and on the remote instead.
    """
    from dvc.exceptions import CollectCacheError

    problems: dict[str, str] = {}
    with open_repo(repo) as dvc_repo:
        outs = dvc_repo.index.targets_view(targets).outs if targets else dvc_repo.index.outs
        for out in outs:
            if not out.use_cache or not out.can_push or out.stage.is_repo_import:
                continue
            path = str(out)
            rebuild = _rebuild_hint(out)
            if not out.hash_info:
                problems[path] = f"has no hash in {out.stage.relpath}: run {rebuild}"
                continue
            try:  # a directory's listing (.dir object) is fetched from the remote when the cache lacks it
                used = out.get_used_objs(push=True, remote=remote.name)
            except CollectCacheError:
                problems[path] = (f"its directory listing ({out.hash_info.value}, named in {out.stage.relpath}) is "
                                  f"neither in the local cache nor on the remote{_absent(out)}: rebuild it "
                                  f"({rebuild}), then push")
                continue
            objects = set().union(*used.values()) if used else set()
            status = dvc_repo.cloud.status(objects, remote=remote.name)
            if status.missing:
                problems[path] = (f"{_files(status.missing)} of {_files(objects)} file(s) are neither in the local "
                                  f"cache nor on the remote{_absent(out)}: rebuild it ({rebuild}), then push")
            elif status.new:
                problems[path] = (f"{_files(status.new)} of {_files(objects)} file(s) are in the local cache but not "
                                  "on the remote: run `make push`")
    return problems


def _rebuild_hint(out: Any) -> str:
    """How to make an output again: `dvc repro` for a stage's; for a .dvc file's, the command its ``meta:
    rebuild:`` names (data/feeds.dvc: `make feeds`, which regenerates the same snapshot from the feeds mirror),
    else `dvc add`, which only helps while the workspace still holds the data."""
    stage = out.stage
    if not stage.is_data_source:
        return f"`dvc repro {stage.addressing}`"
    command = stage.meta.get("rebuild") if isinstance(stage.meta, dict) else None
    step = f"`{command}`" if command else f"`dvc add {out}`"
    return f"{step}, commit {stage.relpath} if it changed"


def _absent(out: Any) -> str:
    return "" if out.exists else f" and {out} is not in the workspace either"


def _files(objects: set[Any]) -> int:
    """How many files the objects are, not counting a directory's listing (unless it is all there is)."""
    return sum(not obj.isdir for obj in objects) or len(objects)


def describe_unsynced(remote: S3Remote, problems: dict[str, str]) -> str:
    lines = "".join(f"\n  {path}: {what}" for path, what in sorted(problems.items()))
    return f"{len(problems)} output(s) are not on {remote.where}, so a fresh clone cannot pull them:{lines}"


def write_local_config(repo: Path, name: str, settings: dict[str, str]) -> None:
    """Endpoint and keys go to .dvc/config.local, which git ignores, never to .dvc/config."""
    with open_repo(repo) as dvc_repo, dvc_repo.config.edit("local") as conf:
        conf["remote"].setdefault(name, {}).update(settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def _serving(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOCAL_HOST, port)) == 0


def server_running(pid: int, port: int) -> bool:
    """Whether ``pid`` is still the moto server we started on ``port`` (not a zombie, not a reused pid)."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").is_dir():  # Linux: no dependency on procps
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
    else:
        result = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True,
                                check=False)
        state, _, command = result.stdout.strip().partition(" ")
    return bool(state) and not state.startswith("Z") and "moto.server" in command and str(port) in command


def _port(state: dict[str, Any]) -> int:
    return int(urlparse(state["endpoint"]).port or 0)


def read_state(repo: Path) -> dict[str, Any] | None:
    """What `remote up` recorded, None if nothing; RemoteError naming the file if it is not such a record."""
    path = repo / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise _bad_state(path, one_line(exc)) from exc
    if not _valid_state(state):
        raise _bad_state(path, 'expected {"pid": <pid>, "endpoint": "http://127.0.0.1:<port>", ...}')
    return state


def _valid_state(state: Any) -> bool:
    # pid > 0: os.kill(0 or -1, ...) would signal a whole process group or every process we may signal
    if not (isinstance(state, dict) and type(state.get("pid")) is int and state["pid"] > 0
            and isinstance(state.get("endpoint"), str)):
        return False
    try:
        return bool(urlparse(state["endpoint"]).port)
    except ValueError:  # a port that is not a number or out of range
        return False


def _bad_state(path: Path, detail: str) -> RemoteError:
    # The file is left in place: it may be the only record of a server that still runs.
    return RemoteError(f"{path} is not a state file of `cybersentinel remote up` ({detail}); stop its server by "
                       "hand if one still runs, then delete the file")


def start_server(repo: Path, port: int, timeout: float = 30.0) -> dict[str, Any]:
    """Start moto on 127.0.0.1:port in its own session (it outlives this command); record its pid."""
    if _serving(port):
        raise RemoteError(f"port {port} on {LOCAL_HOST} is already in use: pick another with --port")
    log_path = repo / STATE_FILE.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", LOCAL_HOST, "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while not _serving(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RemoteError(f"the local S3 server did not start on {LOCAL_HOST}:{port}; see {log_path}")
        time.sleep(0.2)
    from cybersentinel.core.files import write_json

    state = {"pid": process.pid, "endpoint": f"http://{LOCAL_HOST}:{port}", "log": str(log_path)}
    write_json(repo / STATE_FILE, state)
    return state


def stop_server(repo: Path) -> tuple[dict[str, Any], bool] | None:
    """Stop the server `remote up` started (by its recorded pid) and forget it: its state and whether it was
    still running (False: the pid has exited or now names another process, which is left alone); None if no
    server is recorded."""
    state = read_state(repo)
    if state is None:
        return None
    pid, port = int(state["pid"]), _port(state)
    running = server_running(pid, port)
    if running:
        _terminate(pid, port)
    (repo / STATE_FILE).unlink()
    return state, running


def _terminate(pid: int, port: int) -> None:
    """SIGTERM, then SIGKILL after 10 s; a server that exits in between is no error."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while server_running(pid, port) and time.monotonic() < deadline:
            time.sleep(0.1)
            with suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if this process started it
        if server_running(pid, port):
            os.kill(pid, signal.SIGKILL)


def local_up(repo: Path, port: int, name: str | None = None) -> tuple[S3Remote, dict[str, Any]]:
    """Start (or reuse) the local server, create the remote's bucket, point the remote at it."""
    remote = dvc_remote(repo, name)
    state = read_state(repo)
    if not (state and server_running(int(state["pid"]), _port(state)) and _serving(_port(state))):
        state = start_server(repo, port)
    write_local_config(repo, remote.name, {"endpointurl": state["endpoint"], **LOCAL_KEYS})
    remote = dvc_remote(repo, remote.name)
    client = s3_client(remote)
    if remote.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=remote.bucket)
    check_remote(remote)
    return remote, state
