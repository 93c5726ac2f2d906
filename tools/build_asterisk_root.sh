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
# debootstrap can leave the target's /proc mounted (seen here: a daemon its package scripts
# started kept it busy at exit). The mount then moves with the root, and a later copy of the
# root (tools/clone_check.sh) reads the host's whole /proc, kcore included, until the disk is
# full. So: stop what it left running in the target (ours: debootstrap started it), unmount.
release_target() {
    local dir p r; dir=$(readlink -f "$1")
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case $r in "$dir" | "$dir"/*) kill "${p#/proc/}" 2>/dev/null || true ;; esac
    done
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
[ ! -d "$root.partial" ] || release_target "$root.partial"
rm -rf --one-file-system "$root.partial"
mkdir -p "$(dirname "$root")"
echo "building Asterisk 22 root in $root (debootstrap sid, about a minute)"
debootstrap --variant=minbase --components=main,contrib \
    --include=asterisk,asterisk-modules \
    sid "$root.partial" http://deb.debian.org/debian >"$root.partial.log" 2>&1 || {
        release_target "$root.partial"; tail -20 "$root.partial.log" >&2; exit 1; }
release_target "$root.partial"
# Directories the package does not create but MixMonitor/ARI/sounds need (FACTS.md).
mkdir -p "$root.partial/var/spool/asterisk/recording" "$root.partial/usr/local/share/asterisk/sounds" \
         "$root.partial/run/asterisk"
rm -rf "$root"
mv "$root.partial" "$root"
mv "$root.partial.log" "$root.build.log"
chroot "$root" asterisk -V
touch "$stamp"
