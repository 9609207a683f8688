"""The service image for real: the repository's Dockerfile built with podman (rootful, runc) on a Debian bookworm
base made with debootstrap (no registry is reachable), run as its non-root user, healthy by its own HEALTHCHECK,
scoring URLs over HTTP, and holding the model and nothing else of ours (no data, no secrets, no build settings).
`scripts/image.sh` is what `make image` runs. Cold, the base takes about 2 min and the build about 5 min: the suite
starts the build in the background when collection ends and runs these tests last (fixtures_image.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from fixtures_image import MODEL_FILES, REPO, built_image, skip_reason

from cybersentinel.core.files import sha256_file
from cybersentinel.mlops.remote import free_port

PODMAN = ["podman", "--cgroup-manager=cgroupfs"]
RUNTIME = ["--runtime", "/usr/sbin/runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# Hosts that take the service's less common paths: IPv4 in hex (WHATWG parsing by ada-url), a Cyrillic
# look-alike of a brand (confusable-homoglyphs), an IDNA name, a plain IP.
URLS = ["http://0x7f.0x1/admin", "https://xn--pple-43d.com/id", "https://аpple.com.verify-account.tk/login",
        "https://en.wikipedia.org/wiki/Phishing", "http://192.168.4.20/login.php", "github.com/iterative/dvc"]

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    """Built in the background since the end of collection (fixtures_image.py); these tests run last."""
    if reason := skip_reason():
        pytest.skip(reason)
    return built_image()


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[tuple[str, str]]:
    """The image's own command and user, on a free port of the host's loopback (podman here needs the host's
    network namespace, so the port is the server's own rather than a published one)."""
    port = free_port()
    name = f"cybersentinel-test-{port}"
    podman("run", *RUNTIME, "--network=host", "--detach", "--name", name, "--env", f"CYBERSENTINEL_PORT={port}",
           image, "cybersentinel", "serve", "--host", "127.0.0.1", "--workers", "2")
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        logs = podman("logs", name, check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        podman("rm", "--force", "--time", "5", name, check=False)


def test_the_container_runs_as_its_user_and_its_healthcheck_passes(container: tuple[str, str]) -> None:
    name, base = container
    assert podman("inspect", "--format", "{{.Config.User}}", name).stdout.strip() == "10001:10001"
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    deadline = time.monotonic() + 180  # the HEALTHCHECK's start period is 120 s
    while (check := podman("healthcheck", "run", name, check=False)).returncode != 0:
        assert time.monotonic() < deadline, f"never healthy: {check.stdout}{check.stderr}"
        assert podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true", "container exited"
        time.sleep(1)
    assert podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() == "healthy"
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"


def test_the_container_scores_urls_over_http(container: tuple[str, str]) -> None:
    name, base = container
    deadline = time.monotonic() + 180
    while podman("healthcheck", "run", name, check=False).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(1)
    manifest = json.loads((REPO / "models" / "model.json").read_text())
    response = httpx.post(f"{base}/v1/score", json={"urls": URLS}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == manifest["sha256"][:12]  # the model of this checkout
    assert [r["url"] for r in body["results"]] == URLS
    assert {r["verdict"] for r in body["results"]} <= {"malicious", "suspicious", "benign"}
    assert all(not r["error"] and 0 <= r["score"] <= 1 for r in body["results"]), body["results"]
    by_url = {r["url"]: r for r in body["results"]}
    assert "imitating `apple`" in by_url["https://xn--pple-43d.com/id"]["reasons"]  # confusable-homoglyphs
    assert "loopback" in by_url["http://0x7f.0x1/admin"]["reasons"]  # 0x7f.0x1 is 127.0.0.1 (ada-url)
    text = httpx.post(f"{base}/v1/score", content="\n".join(URLS), headers={"content-type": "text/plain"})
    assert [r["score"] for r in text.json()["results"]] == [r["score"] for r in body["results"]]
    assert "<html" in httpx.get(f"{base}/").text.lower()


def test_the_image_holds_the_model_and_no_data_or_secrets(image: str) -> None:
    run = [*PODMAN, "run", *RUNTIME, "--network=none", "--rm", "--user", "0", image]
    # Everything under /app is the model, its metrics and the kernels compiled at build (the numba cache).
    app_files = subprocess.run([*run, "find", "/app", "-type", "f", "-not", "-path", "/app/.numba-cache/*"],
                               capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert sorted(app_files) == sorted([f"/app/models/{n}" for n in MODEL_FILES] + ["/app/reports/metrics.json"])
    hashes = subprocess.run([*run, "sha256sum", *[f"/app/models/{n}" for n in MODEL_FILES]], capture_output=True,
                            text=True, check=True, timeout=120).stdout.split()
    assert hashes[::2] == [sha256_file(REPO / "models" / n) for n in MODEL_FILES]
    # No credentials, DVC, git or MLflow state anywhere; no datasets outside the installed packages' own files.
    secrets = ["(", "-name", ".env", "-o", "-name", "config.local", "-o", "-name", "mlflow.db", "-o", "-name",
               "credentials", "-o", "-name", "id_rsa*", "-o", "-name", ".dvc", "-o", "-name", ".git", "-o", "-name",
               "dvc.lock", "-o", "-name", ".netrc", "-o", "-name", "pip.conf", ")"]
    data = ["(", "-name", "*.parquet", "-o", "-name", "*.csv*", "-o", "-name", "*.jsonl", "-o", "-name", "*.arff",
            ")", "-not", "-path", "*/site-packages/*"]
    for pattern in (secrets, data):
        found = subprocess.run([*run, "find", "/", "-xdev", *pattern], capture_output=True, text=True, check=True,
                               timeout=120).stdout.split()
        assert found == [], found
    # Build settings (the host's pip index, CA bundle) stay in the build stage.
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert not [e for e in config["Env"] if e.startswith("PIP_") or any(
        word in e.split("=")[0] for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))], config["Env"]
    assert config["User"] == "10001:10001"
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])
