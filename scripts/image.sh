#!/usr/bin/env bash
# Build (and run) the service image for real with Debian's podman + runc, without any registry:
#   scripts/image.sh base    a Debian bookworm base with Python 3.11 (debootstrap, imported into podman; kept)
#   scripts/image.sh build   the real Dockerfile on that base, pip pointed at the index this machine uses
#   scripts/image.sh run     the built image as its non-root user on 127.0.0.1:$PORT (detached; prints the id)
# Needs root (debootstrap, rootful podman). crun fails on hybrid cgroups and the default ulimits are refused
# here, hence cgroupfs, runc and explicit ulimits.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-localhost/cybersentinel-base:bookworm}
IMAGE=${IMAGE:-localhost/cybersentinel:dev}
PORT=${PORT:-8000}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PODMAN=(podman --cgroup-manager=cgroupfs)
RUNTIME=(--runtime /usr/sbin/runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

pip_setting() {  # a pip setting as this machine's pip sees it (environment first, then its config files)
  local env
  env="PIP_$(tr 'a-z-' 'A-Z_' <<<"$1")"
  if [[ -n "${!env:-}" ]]; then echo "${!env}"; return; fi
  python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'$/\1/p" | head -n1
}

base() {
  if "${PODMAN[@]}" image exists "$BASE_IMAGE"; then echo "$BASE_IMAGE exists"; return; fi
  local root
  root=$(mktemp -d)
  # the RETURN trap is global: it clears itself, or it fires again when build() returns, where root is unset
  trap 'rm -rf "$root"; trap - RETURN' RETURN
  debootstrap --variant=minbase bookworm "$root/rootfs" "$DEBIAN_MIRROR" >"$root/debootstrap.log" \
    || { tail -20 "$root/debootstrap.log"; exit 1; }
  # apt (not debootstrap's --include) resolves the dependencies; security updates as in the official images.
  echo "deb $DEBIAN_MIRROR-security bookworm-security main" >>"$root/rootfs/etc/apt/sources.list"
  chroot "$root/rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends python3.11 python3.11-venv python-is-python3 ca-certificates >/dev/null && apt-get clean'
  rm -rf "$root/rootfs/var/lib/apt/lists/"*  # the Dockerfile runs apt-get update itself
  tar -C "$root/rootfs" -c . | "${PODMAN[@]}" import --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  echo "$BASE_IMAGE imported"
}

build() {
  base
  local args=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE") index extra links cert path
  index=$(pip_setting index-url); extra=$(pip_setting extra-index-url)
  links=$(pip_setting find-links); cert=$(pip_setting cert)
  [[ -n "$index" ]] && args+=(--build-arg "PIP_INDEX_URL=$index")
  [[ -n "$extra" ]] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
  [[ -n "$links" ]] && args+=(--build-arg "PIP_FIND_LINKS=$links")
  # A CA bundle (a TLS-inspecting proxy's) is mounted, read-only and for the build only, at the same path.
  [[ -n "$cert" ]] && args+=(--build-arg "PIP_CERT=$cert" --volume "$cert:$cert:ro")
  for path in $extra $links; do  # local indexes and wheel folders: mounted read-only at the same path
    path=${path#file://}; path=${path%/simple}
    [[ -d "$path" ]] && args+=(--volume "$path:$path:ro")
  done
  # docker format: OCI images have no HEALTHCHECK
  "${PODMAN[@]}" build "${RUNTIME[@]}" --format docker --network=host "${args[@]}" -t "$IMAGE" .
}

run() {
  # --network=host (no netns support here): the container's 0.0.0.0:8000 is the host's, so bind the host's
  # loopback only; the feeds and metrics stay inside the image.
  "${PODMAN[@]}" run "${RUNTIME[@]}" --network=host --detach --rm --name "cybersentinel-$PORT" "$IMAGE" \
    cybersentinel serve --host 127.0.0.1 --port "$PORT" --workers 1
}

"${1:?usage: scripts/image.sh base|build|run}"
