#!/usr/bin/env bash
# Build deploy/Containerfile for one platform with buildah, start it with podman, check /health.
#
#   sudo deploy/container-check.sh amd64|arm64        (or: make container-check ARCH=arm64)
#
# Settings (environment):
#   VOXBUS_CONTAINER_BASE  base image (default: the Containerfile's, debian:bookworm-slim from a
#                          registry). Where no container registry is reachable, "debootstrap"
#                          makes a Debian 12 minbase root for the platform and imports it instead.
#   VOXBUS_CONTAINER_DIR   scratch folder (default ${XDG_CACHE_HOME:-~/.cache}/voxbus-container)
#   VOXBUS_CONTAINER_PORT  host port for the check (default 18600)
# arm64 on an x86-64 machine runs under qemu-user through binfmt_misc (as deploy/arm64/emulate.sh
# sets up); the check then gives the container a Pi 4's /proc/cpuinfo and QEMU_CPU=cortex-a72, which
# onnxruntime needs under qemu (see emulate.sh). On a real arm64 machine neither is used.
#
# What this machine needed, all handled here: vfs storage and chroot isolation for buildah (no
# overlay, no user namespaces); podman's runtime runc with no default ulimits (crun and podman's
# default RLIMIT_NOFILE/NPROC fail without CAP_SYS_RESOURCE); the host's local CAs for pip in the
# build (a TLS-intercepting network), passed as PIP_CERT.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:-$(dpkg --print-architecture)}
WORK=${VOXBUS_CONTAINER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voxbus-container}
PORT=${VOXBUS_CONTAINER_PORT:-18600}
IMAGE=localhost/voxbus:$ARCH
NAME=voxbus-check-$ARCH

say() { printf 'container: %s\n' "$*"; }
die() { printf 'container: error: %s\n' "$*" >&2; exit 1; }

case "$ARCH" in amd64|arm64) ;; *) die "platform '$ARCH' is not amd64 or arm64";; esac
[ "$(id -u)" -eq 0 ] || die "needs root (buildah/podman storage, debootstrap): sudo $0 $ARCH"
mkdir -p "$WORK"

missing=()
for pkg in buildah podman runc debootstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "$ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  for pkg in qemu-user-static binfmt-support; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get could not install ${missing[*]}"
fi

printf '[containers]\ndefault_ulimits = []\n' > "$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf
BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs --runtime runc)

# The image binds 0.0.0.0, which needs API keys; this check publishes the port on the host's loopback only.
run_args=(-e VOXBUS_AUTH__MODE=none)
if [ "$ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  bfm=/proc/sys/fs/binfmt_misc
  [ -e "$bfm/register" ] || mount -t binfmt_misc binfmt_misc "$bfm" 2>/dev/null || true
  [ -e "$bfm/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  grep -q '^flags:.*F' "$bfm/qemu-aarch64" 2>/dev/null \
    || die "no qemu-aarch64 binfmt handler with flag F: arm64 containers cannot run on this $(uname -m) machine"
  n=$(getconf _NPROCESSORS_CONF); : > "$WORK/cpuinfo-pi4"
  for ((i=0; i<n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i" >> "$WORK/cpuinfo-pi4"
  done
  run_args+=(-e QEMU_CPU=cortex-a72 -v "$WORK/cpuinfo-pi4:/proc/cpuinfo:ro")
fi

build_args=()
base=${VOXBUS_CONTAINER_BASE:-}
if [ "$base" = debootstrap ]; then
  base=localhost/voxbus-base:bookworm-$ARCH
  if ! "${PODMAN[@]}" image exists "$base"; then
    root=$WORK/base-$ARCH
    grep -q " $root/" /proc/mounts && die "something is mounted under $root"
    rm -rf "$root"
    say "debootstrap bookworm $ARCH into $root"
    debootstrap --arch="$ARCH" --variant=minbase bookworm "$root" > "$WORK/debootstrap-$ARCH.log" 2>&1 \
      || die "debootstrap failed; see $WORK/debootstrap-$ARCH.log"
    tar -C "$root" --exclude='./proc/*' -c . | "${PODMAN[@]}" import --arch "$ARCH" - "$base" >/dev/null
  fi
fi
[ -n "$base" ] && build_args+=(--build-arg "BASE=$base")
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  build_args+=(--volume "$PIP_CERT:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi

say "building $IMAGE for linux/$ARCH (log: $WORK/build-$ARCH.log)"
t0=$SECONDS
"${BUILDAH[@]}" bud --isolation chroot --platform "linux/$ARCH" "${build_args[@]}" \
  -f "$REPO/deploy/Containerfile" -t "$IMAGE" "$REPO" > "$WORK/build-$ARCH.log" 2>&1 \
  || die "build failed: $(tail -1 "$WORK/build-$ARCH.log") (log: $WORK/build-$ARCH.log)"
say "built in $((SECONDS - t0)) s: $("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Architecture}}, user {{.Config.User}}, {{.Size}} bytes')"

"${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
"${PODMAN[@]}" run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" "${run_args[@]}" "$IMAGE" >/dev/null \
  || die "podman run failed"
trap '"${PODMAN[@]}" stop -t 30 "$NAME" >/dev/null 2>&1; "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1' EXIT
code=000
for _ in $(seq 1 120); do
  code=$(curl -s -o "$WORK/health-$ARCH.json" -w '%{http_code}' -m 5 "http://127.0.0.1:$PORT/health" || true)
  [ "$code" = 200 ] && break
  sleep 5
done
[ "$code" = 200 ] || die "/health answered $code after 10 min; logs: podman logs $NAME"
say "/health 200 as $("${PODMAN[@]}" exec "$NAME" id -un) on $("${PODMAN[@]}" exec "$NAME" uname -m): $(head -c 200 "$WORK/health-$ARCH.json")"
