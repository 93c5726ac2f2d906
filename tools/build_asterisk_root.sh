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
# The mount table (/proc/self/mounts, or $2 for the tests) writes a space in a mount point as
# \040, a tab \011, a newline \012 and a backslash \134: decoded before the comparison, else a
# checkout whose path has a space keeps the root's /proc mounted. The deepest go first (a
# mount comes after the one it is on, so the table read backwards).
release_target() {
    local dir p r m i mounts=(); dir=$(readlink -f "$1")
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case $r in "$dir" | "$dir"/*) kill "${p#/proc/}" 2>/dev/null || true ;; esac
    done
    while read -r _ m _; do
        printf -v m '%b' "${m//\\/\\0}"  # every \ooo as \0ooo, what %b decodes
        if [ "$m" = "$dir" ] || [[ $m == "$dir"/* ]]; then mounts+=("$m"); fi
    done < "${2:-/proc/self/mounts}"
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
    done
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
rm -rf --one-file-system "$root"
mv "$root.partial" "$root"
mv "$root.partial.log" "$root.build.log"
chroot "$root" asterisk -V
touch "$stamp"
