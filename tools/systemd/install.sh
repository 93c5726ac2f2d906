#!/usr/bin/env bash
# Install the systemd units for this checkout on a PBX host with systemd (REL-9):
#   tools/systemd/install.sh [TOP]     (TOP defaults to this checkout)
# then `systemctl enable --now callguard.target`. On a machine without systemd, `make run`
# supervises the same services with supervisord instead (tools/stack.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=${1:-$(cd "$here/../.." && pwd)}
dest=${SYSTEMD_DIR:-/etc/systemd/system}
for unit in "$here"/*.service "$here"/*.target; do
    sed "s|@TOP@|$top|g" "$unit" > "$dest/$(basename "$unit")"
done
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "installed into $dest; run: systemctl enable --now callguard.target"
