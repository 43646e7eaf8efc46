#!/usr/bin/env bash
# Install voxbus as a systemd service from this checkout (Raspberry Pi OS / Debian 12).
#
#   sudo bash deploy/install-service.sh            set up, build the model, install and start
#   bash deploy/install-service.sh --render FILE   only write the unit for this checkout to FILE
#
# Steps: the `voxbus` system user (home /var/lib/voxbus, group audio); deploy/setup.sh (system
# packages and .venv in this checkout) with the default model built into /var/lib/voxbus/models; deploy/voxbus.service with /opt/voxbus replaced by this checkout's path into
# /etc/systemd/system/; `systemctl enable --now voxbus`. Idempotent.
# The checkout must be readable by the voxbus user (e.g. /opt/voxbus, not a home folder:
# the unit has ProtectHome=true).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SVC_USER=voxbus
STATE=/var/lib/voxbus
UNIT=/etc/systemd/system/voxbus.service

say() { printf 'install-service: %s\n' "$*"; }
die() { printf 'install-service: error: %s\n' "$*" >&2; exit 1; }

render() {   # the unit with this checkout's path
  sed "s#/opt/voxbus#${REPO}#g" "$REPO/deploy/voxbus.service" > "$1"
}

if [ "${1:-}" = "--render" ]; then
  [ -n "${2:-}" ] || die "--render needs a file name"
  render "$2"; exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (user, unit, systemctl): sudo bash $0"
case "$REPO" in /home/*|/root/*) die "the checkout is under $REPO, which the unit hides (ProtectHome=true); move it to /opt/voxbus";; esac
command -v systemctl >/dev/null || die "no systemctl: this machine does not run systemd"

if ! id "$SVC_USER" >/dev/null 2>&1; then
  say "creating system user $SVC_USER"
  useradd --system --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin --user-group "$SVC_USER"
fi
usermod -a -G audio "$SVC_USER"
install -d -o "$SVC_USER" -g "$SVC_USER" -m 0750 "$STATE" "$STATE/models"

# setup.sh builds the default model into $VOXBUS_MODELS_DIR, the folder the unit uses.
VOXBUS_MODELS_DIR="$STATE/models" bash "$REPO/deploy/setup.sh"
chown -R "$SVC_USER:$SVC_USER" "$STATE"
runuser -u "$SVC_USER" -- test -r "$REPO/.venv/bin/python" -a -r "$REPO/deploy/ensure_model.py" \
  || die "user $SVC_USER cannot read $REPO; make it world-readable (chmod -R o+rX $REPO)"

render "$UNIT.tmp" && mv "$UNIT.tmp" "$UNIT"
systemctl daemon-reload
systemctl enable --now voxbus
say "installed $UNIT; status: systemctl status voxbus; logs: /var/log/voxbus/ and journalctl -u voxbus"
