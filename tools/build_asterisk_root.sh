#!/usr/bin/env bash
# RUN-1: provision a project-local Asterisk 22 root (Debian sid) when the host has no Asterisk.
# Idempotent: an existing, complete root is kept. Usage: build_asterisk_root.sh DIR
set -euo pipefail
root=${1:?usage: build_asterisk_root.sh DIR}
stamp="$root/.callguard-root-complete"
if [ -f "$stamp" ]; then
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing (make deps installs it)" >&2; exit 1; }
rm -rf "$root.partial"
mkdir -p "$(dirname "$root")"
echo "building Asterisk 22 root in $root (debootstrap sid, about a minute)"
debootstrap --variant=minbase --components=main,contrib \
    --include=asterisk,asterisk-modules \
    sid "$root.partial" http://deb.debian.org/debian >"$root.partial.log" 2>&1 || {
        tail -20 "$root.partial.log" >&2; exit 1; }
# Directories the package does not create but MixMonitor/ARI/sounds need (FACTS.md).
mkdir -p "$root.partial/var/spool/asterisk/recording" "$root.partial/usr/local/share/asterisk/sounds" \
         "$root.partial/run/asterisk"
rm -rf "$root"
mv "$root.partial" "$root"
mv "$root.partial.log" "$root.build.log"
chroot "$root" asterisk -V
touch "$stamp"
