#!/usr/bin/env bash
# RUN-5: render sounds/manifest.tsv into sounds/ja/<name>.wav (8 kHz, 16-bit, mono PCM WAV,
# what Asterisk's format_wav reads) with Open JTalk. Only prompts whose text changed are
# rendered again (sounds/ja/.manifest.sha256). The contrib voice is fetched into .build/
# without touching the system's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
OUT=sounds/ja
SUMS=$OUT/.manifest.sha256
DIC=/var/lib/mecab/dic/open-jtalk/naist-jdic
VOICE_DIR=$TOP/.build/voice
VOICE=$VOICE_DIR/usr/share/hts-voice/nitech-jp-atr503-m001/nitech_jp_atr503_m001.htsvoice

need=()
command -v open_jtalk >/dev/null || need+=(open-jtalk)
[ -d "$DIC" ] || need+=(open-jtalk-mecab-naist-jdic)
command -v sox >/dev/null || need+=(sox)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -f "$VOICE" ]; then
    apt_dir=$TOP/.build/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$VOICE_DIR"
    echo "deb http://deb.debian.org/debian bookworm contrib" > "$apt_dir/contrib.list"
    opts=(-o "Dir::Etc::SourceList=$apt_dir/contrib.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
          -o APT::Get::List-Cleanup=0)
    apt-get "${opts[@]}" update -qq
    (cd "$apt_dir" && apt-get "${opts[@]}" download hts-voice-nitech-jp-atr503-m001 2>/dev/null)
    dpkg -x "$apt_dir"/hts-voice-nitech-jp-atr503-m001_*.deb "$VOICE_DIR"
fi

mkdir -p "$OUT"
touch "$SUMS"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rendered=0
new_sums=$tmp/sums
while IFS=$'\t' read -r name text; do
    case "$name" in ''|'#'*) continue ;; esac
    [[ "$name" =~ ^[a-z0-9_]+$ ]] || { echo "bad prompt name: $name" >&2; exit 1; }
    sum=$(printf '%s' "$text" | sha256sum | cut -d' ' -f1)
    echo "$sum  $name" >> "$new_sums"
    if [ -f "$OUT/$name.wav" ] && grep -qx "$sum  $name" "$SUMS"; then continue; fi
    printf '%s\n' "$text" > "$tmp/in.txt"
    open_jtalk -x "$DIC" -m "$VOICE" -ow "$tmp/raw.wav" "$tmp/in.txt"
    # 8 kHz mono 16-bit; trim the synthesiser's leading/trailing silence, keep 0.2 s padding.
    sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$OUT/$name.wav" \
        silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse pad 0.2 0.2
    rendered=$((rendered + 1))
done < sounds/manifest.tsv
mv "$new_sums" "$SUMS"
echo "sounds: $rendered prompt(s) rendered, $(wc -l < "$SUMS") in the manifest"
