#!/usr/bin/env bash
# Refresh the vendored axe-core (tests/e2e/vendor/axe-core) from the npm package of that name;
# then update AXE_VERSION and AXE_SHA256 in tests/e2e/browser.py. Needs npm (network).
set -euo pipefail
version=${1:?usage: tools/vendor_axe.sh VERSION   e.g. 4.14.1}
dest=$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/vendor/axe-core
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null && tar xzf "axe-core-$version.tgz")
mkdir -p "$dest"
cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$dest/"
echo "axe-core $version: sha256 $(sha256sum "$dest/axe.min.js" | cut -d' ' -f1)"
