#!/usr/bin/env bash
# voxbus on arm64 under emulation: a Debian bookworm arm64 root file system, the README's
# set-up command in it exactly as on a Pi, then the smoke suite (deploy/arm64/smoke.py),
# the same suite on this machine, and a comparison of the transcripts.
#
#   sudo deploy/arm64/emulate.sh            (or: make arm64)
#
# Needs root (debootstrap, chroot, mounts) and Debian's package registry; installs its own
# tools from Debian (debootstrap, qemu-user-static, binfmt-support, proot). How arm64 code runs:
#   binfmt  the kernel hands aarch64 ELF files to qemu-aarch64-static (binfmt_misc, flag F),
#           the root is entered with chroot. Used when binfmt_misc can be mounted.
#   proot   `proot -q qemu-aarch64-static`: no kernel support needed. Debian 12's proot 5.1.0
#           does not translate faccessat2/statx, which bookworm's dash, coreutils and apt use:
#           the second stage passes only with DEBOOTSTRAP_DIR set (else "cannot open
#           /usr/share/debootstrap/functions"), and apt in the root then fails its signature
#           check (NO_PUBKEY: it cannot see its keyrings). For machines with a newer proot.
#           Force it with VOXBUS_ARM64_MODE=proot.
#   native  on an aarch64 machine nothing is emulated.
#
# Settings (environment):
#   VOXBUS_ARM64_DIR     scratch folder for the root file systems and results
#                        (default ${XDG_CACHE_HOME:-~/.cache}/voxbus-arm64); never inside the repo
#   VOXBUS_EVAL_DIR      the eval clips (default ../shared/eval beside the checkout)
#   VOXBUS_ARM64_MIRROR  Debian mirror for debootstrap (default: debootstrap's own)
#   VOXBUS_ARM64_REUSE=1 keep the last run's root (setup already done) instead of a fresh copy
#   VOXBUS_ARM64_HOST=0  skip the smoke suite on this machine (then no comparison)
#   VOXBUS_ARM64_SMOKE_ARGS  more arguments for deploy/arm64/smoke.py in the root, e.g.
#                        "--skip build transcribe" with REUSE to rerun only the stack steps
# The emulated CPU is a Cortex-A72 (QEMU_CPU), and /proc/cpuinfo in the root is a Pi 4's.
# Times measured in the emulated root are evidence that it runs, never a Pi's speed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${VOXBUS_ARM64_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voxbus-arm64}
EVAL=${VOXBUS_EVAL_DIR:-$REPO/../shared/eval}
SUITE=bookworm
BASE=$WORK/base
ROOT=$WORK/root
RESULTS=$WORK/results
GUEST_REPO=/home/pi/voxbus          # ../shared/eval from here is /home/pi/shared/eval
GUEST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'arm64: %s\n' "$*"; }
die() { printf 'arm64: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root for debootstrap, chroot and mounts; run: sudo $0"
[ -f "$EVAL/MANIFEST.tsv" ] || die "no eval clips at $EVAL (MANIFEST.tsv missing); set VOXBUS_EVAL_DIR"
case "$WORK/" in "$REPO"/*) die "VOXBUS_ARM64_DIR ($WORK) is inside the checkout; root file systems must not be committed";; esac
mkdir -p "$WORK" "$RESULTS"

# --- host tools, from Debian ---------------------------------------------------
host_tools() {
  local want=(debootstrap qemu-user-static binfmt-support proot) missing=() pkg
  [ "$(uname -m)" = aarch64 ] && want=(debootstrap)
  for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand"
    say "installing host tools: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get could not install ${missing[*]}"
  fi
}

# --- how aarch64 binaries run here ---------------------------------------------
pick_mode() {
  if [ -n "${VOXBUS_ARM64_MODE:-}" ]; then echo "$VOXBUS_ARM64_MODE"; return; fi
  if [ "$(uname -m)" = aarch64 ]; then echo native; return; fi
  local bfm=/proc/sys/fs/binfmt_misc
  [ -e "$bfm/register" ] || mount -t binfmt_misc binfmt_misc "$bfm" 2>/dev/null || true
  if [ -e "$bfm/register" ]; then
    [ -e "$bfm/qemu-aarch64" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    # F: the kernel opened the interpreter at registration, so it works inside a chroot.
    if grep -q '^enabled' "$bfm/qemu-aarch64" 2>/dev/null && grep -q '^flags:.*F' "$bfm/qemu-aarch64"; then
      echo binfmt; return
    fi
  fi
  echo proot
}

MOUNTED=()
mount_root() {   # $1 = root (binfmt / native modes)
  local r=$1
  [ -L "$r/proc" ] && { rm -f "$r/proc"; mkdir "$r/proc"; }   # debootstrap's symlink inside containers
  mount -t proc proc "$r/proc" && MOUNTED+=("$r/proc")
  # qemu-user shows aarch64 programs the host's x86 /proc/cpuinfo; onnxruntime's cpuinfo then
  # finds no ARM processor and `import onnxruntime` dies with SIGSEGV. Show it a Pi 4's instead
  # (Cortex-A72, one entry per host processor, as /sys/devices/system/cpu/present says).
  fake_cpuinfo "$WORK/cpuinfo-pi4"
  mount --bind "$WORK/cpuinfo-pi4" "$r/proc/cpuinfo"
  mount --rbind /dev "$r/dev" && mount --make-rslave "$r/dev" && MOUNTED+=("$r/dev")
  mount --rbind /sys "$r/sys" && mount --make-rslave "$r/sys" && MOUNTED+=("$r/sys")
}
fake_cpuinfo() {
  local n i
  n=$(getconf _NPROCESSORS_CONF)
  : > "$1"
  for ((i=0; i<n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i" >> "$1"
  done
  printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4 (emulated)\n' >> "$1"
}
unmount_all() {
  local i
  for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do umount -R -l "${MOUNTED[$i]}" 2>/dev/null || true; done
  MOUNTED=()
}
trap unmount_all EXIT

# in_root ROOT COMMAND: a login-like shell in the arm64 root, with a clean environment.
in_root() {
  local r=$1; shift
  local envs=(env -i HOME=/root USER=root LOGNAME=root PATH="$GUEST_PATH" LANG=C.UTF-8 TERM=dumb
              DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180
              # qemu emulates a Cortex-A72 (a Pi 4's core): no dot-product, no SVE, so onnxruntime
              # takes the int8 kernels a Pi 4 takes (its default CPU, "max", has both).
              QEMU_CPU=cortex-a72)
  # pip trusts its own CA list (certifi) unless told otherwise: the system's, with the host's CAs.
  [ "${GUEST_CA:-0}" = 1 ] && envs+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
  case "$MODE" in
    binfmt|native) chroot "$r" "${envs[@]}" /bin/bash -c "$*" ;;
    proot) fake_cpuinfo "$WORK/cpuinfo-pi4"
           proot -0 -q "qemu-aarch64-static -cpu cortex-a72" -r "$r" -b /dev -b /sys -b /proc \
             -b "$WORK/cpuinfo-pi4:/proc/cpuinfo" -w / "${envs[@]}" /bin/bash -c "$*" ;;
    *) die "unknown VOXBUS_ARM64_MODE '$MODE' (binfmt, proot or native)" ;;
  esac
}

assert_unmounted() {
  if grep -q " $1/" /proc/mounts; then die "something is still mounted under $1; not removing it"; fi
}

# --- 1. the base root file system (cached) ---------------------------------------
make_base() {
  [ -f "$BASE/.voxbus-base" ] && { say "base root file system: $BASE (cached)"; return; }
  local tmp=$BASE.tmp t0=$SECONDS
  assert_unmounted "$tmp"; rm -rf "$tmp"
  say "debootstrap --foreign $SUITE arm64 into $tmp"
  # make: the README's commands are make targets. Everything else is setup.sh's to install.
  debootstrap --foreign --arch=arm64 --variant=minbase --include=ca-certificates,make \
    "$SUITE" "$tmp" ${VOXBUS_ARM64_MIRROR:-} > "$RESULTS/debootstrap-1.log" 2>&1 \
    || die "debootstrap (first stage) failed; see $RESULTS/debootstrap-1.log"
  say "second stage under emulation ($MODE)"
  [ "$MODE" = proot ] && cp /usr/bin/qemu-aarch64-static "$tmp/usr/bin/"
  local ok=1
  case "$MODE" in
    proot) proot -0 -q qemu-aarch64-static -r "$tmp" -w / /usr/bin/env DEBOOTSTRAP_DIR=/debootstrap \
             /debootstrap/debootstrap --second-stage > "$RESULTS/debootstrap-2.log" 2>&1 || ok=0 ;;
    *) chroot "$tmp" /debootstrap/debootstrap --second-stage > "$RESULTS/debootstrap-2.log" 2>&1 || ok=0 ;;
  esac
  [ $ok = 1 ] || die "debootstrap second stage failed under $MODE: $(tail -1 "$RESULTS/debootstrap-2.log")"
  touch "$tmp/.voxbus-base"; mv "$tmp" "$BASE"
  say "base root file system ready in $((SECONDS - t0)) s"
}

# --- 2. a fresh root with the checkout in it ---------------------------------------
make_root() {
  if [ "${VOXBUS_ARM64_REUSE:-0}" = 1 ] && [ -f "$ROOT/.voxbus-base" ]; then
    say "reusing $ROOT (VOXBUS_ARM64_REUSE=1)"
  else
    assert_unmounted "$ROOT"; rm -rf "$ROOT"
    cp -a "$BASE" "$ROOT"
    mkdir -p "$ROOT$GUEST_REPO"
  fi
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # This machine's local CAs (a network that intercepts TLS), so that apt and pip in the root
  # trust what the host trusts. A Pi on an ordinary network needs none of this.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    GUEST_CA=1
  fi
  # The checkout as it is now (uncommitted changes included), without the host's venv and git.
  # (With VOXBUS_ARM64_REUSE=1 it is copied over the last one, whose .venv setup.sh then reuses.)
  mkdir -p "$ROOT$GUEST_REPO" "$ROOT/home/pi/shared/eval"
  tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude='__pycache__' --exclude=./.pytest_cache -cf - . \
    | tar -C "$ROOT$GUEST_REPO" -xf -
  tar -C "$EVAL" -cf - MANIFEST.tsv asr/librispeech | tar -C "$ROOT/home/pi/shared/eval" -xf -
}

# --- 3. the README's set-up and the smoke suite, in the root -------------------------
run_guest() {
  local t0=$SECONDS rc=0
  if [ "${GUEST_CA:-0}" = 1 ]; then
    in_root "$ROOT" "update-ca-certificates >/dev/null" || die "update-ca-certificates failed in the arm64 root"
  fi
  say "in the arm64 root: bash deploy/setup.sh (log: $RESULTS/setup-arm64.log)"
  in_root "$ROOT" "uname -m; cd $GUEST_REPO && bash deploy/setup.sh" > "$RESULTS/setup-arm64.log" 2>&1 || rc=$?
  echo "$((SECONDS - t0))" > "$RESULTS/setup-arm64.seconds"
  [ $rc = 0 ] || die "deploy/setup.sh failed in the arm64 root (exit $rc): $(tail -1 "$RESULTS/setup-arm64.log")"
  say "setup done in $((SECONDS - t0)) s (emulated); smoke suite (log: $RESULTS/smoke-arm64.log)"
  t0=$SECONDS; rc=0
  # websockets for the smoke's client only, outside the venv: the gateway must find its own.
  in_root "$ROOT" "cd $GUEST_REPO && { [ -d /opt/smoke-client/websockets ] || .venv/bin/pip install -q --target /opt/smoke-client websockets; } && \
    .venv/bin/python deploy/arm64/smoke.py --models-dir /root/.local/share/voxbus/models \
      --eval ../shared/eval --out /tmp/smoke-arm64.json --ws-lib /opt/smoke-client \
      --merge /tmp/smoke-arm64.json ${VOXBUS_ARM64_SMOKE_ARGS:-}" \
    > "$RESULTS/smoke-arm64.log" 2>&1 || rc=$?
  cp "$ROOT/tmp/smoke-arm64.json" "$RESULTS/smoke-arm64.json" 2>/dev/null \
    || die "the smoke suite wrote no result (exit $rc): $(tail -1 "$RESULTS/smoke-arm64.log")"
  say "arm64 smoke finished in $((SECONDS - t0)) s (emulated), exit $rc"
}

run_host() {
  [ "${VOXBUS_ARM64_HOST:-1}" = 1 ] || return 0
  local py=$REPO/.venv/bin/python
  [ -x "$py" ] || { say "no $REPO/.venv: running bash deploy/setup.sh on this machine first"; (cd "$REPO" && bash deploy/setup.sh); }
  say "the same smoke suite on this machine ($(uname -m)) for the comparison"
  local client=$WORK/host-smoke-client
  [ -d "$client/websockets" ] || "$REPO/.venv/bin/pip" install -q --target "$client" websockets
  "$py" "$REPO/deploy/arm64/smoke.py" --models-dir "$WORK/host-models" --eval "$EVAL" \
    --out "$RESULTS/smoke-host.json" --ws-lib "$client" > "$RESULTS/smoke-host.log" 2>&1 \
    || say "host smoke suite failed; see $RESULTS/smoke-host.log"
}

host_tools
MODE=$(pick_mode)
say "mode: $MODE; scratch: $WORK"
make_base
make_root
[ "$MODE" = proot ] || mount_root "$ROOT"
run_guest
unmount_all
run_host
args=("$RESULTS/smoke-arm64.json")
[ -f "$RESULTS/smoke-host.json" ] && args+=(--host "$RESULTS/smoke-host.json")
python3 "$REPO/deploy/arm64/summary.py" "${args[@]}" --setup-seconds "$(cat "$RESULTS/setup-arm64.seconds")" \
  --mode "$MODE" --out "$RESULTS/summary.md"
