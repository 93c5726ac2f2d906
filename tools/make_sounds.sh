#!/usr/bin/env bash
# RUN-5: render sounds/manifest.tsv into sounds/ja/<name>.wav with Open JTalk.
#
#   bash tools/make_sounds.sh          # (or `make sounds`) render what changed
#   FORCE=1 bash tools/make_sounds.sh  # render everything again
#
# Output: 8 kHz, 16-bit, mono PCM WAV (format tag 1, what Asterisk's format_wav reads), the
# synthesiser's leading/trailing silence trimmed and 0.2 s of digital silence put back at
# each end. sox runs without dither (-D) and repeatable (-R), so the same text always gives
# the same bytes and re-rendering does not churn the committed files.
#
# Only prompts whose text changed are rendered again: sounds/ja/.manifest.sha256 holds
# sha256(text) per name (checked by tests/unit/test_sounds.py) and a "# recipe" line, the hash
# of the voice file and of the render options below; a different recipe renders everything.
# WAVs in sounds/ja with no manifest line are removed.
#
# Tools: open-jtalk, open-jtalk-mecab-naist-jdic and sox come from apt (main) if missing.
# The voice, hts-voice-nitech-jp-atr503-m001 (CC BY 3.0, Nagoya Institute of Technology), is
# in Debian's contrib component, which the host's sources need not list: it is fetched with a
# private apt configuration under .build/apt (own sources list, lists and cache dirs; /etc/apt
# and /var/lib/apt are not touched) and unpacked with dpkg -x into .build/voice.
set -Eeuo pipefail
trap 'echo "make_sounds: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
TOP=$PWD
MANIFEST=sounds/manifest.tsv
OUT=sounds/ja
SUMS=$OUT/.manifest.sha256
DIC=/var/lib/mecab/dic/open-jtalk/naist-jdic
VOICE_PKG=hts-voice-nitech-jp-atr503-m001
VOICE_DIR=$TOP/.build/voice
VOICE=$VOICE_DIR/usr/share/hts-voice/nitech-jp-atr503-m001/nitech_jp_atr503_m001.htsvoice
APT_DIR=$TOP/.build/apt
# Render options; any change here is part of the recipe hash and renders everything again.
SOX_GLOBAL=(-R -D)
SOX_OUT=(-r 8000 -c 1 -b 16 -e signed-integer -t wav)
SOX_FX=(silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse pad 0.2 0.2)

die() { echo "make_sounds: $*" >&2; exit 1; }
start=$SECONDS

# --- tools -------------------------------------------------------------------------------
need=()
command -v open_jtalk >/dev/null || need+=(open-jtalk)
[ -f "$DIC/sys.dic" ] || need+=(open-jtalk-mecab-naist-jdic)
command -v sox >/dev/null || need+=(sox)
if [ ${#need[@]} -gt 0 ]; then
    echo "make_sounds: installing ${need[*]}"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${need[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ ! -s "$VOICE" ]; then
    deb=$(ls "$APT_DIR"/${VOICE_PKG}_*_all.deb 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$deb" ]; then
        echo "make_sounds: fetching $VOICE_PKG (contrib) into $APT_DIR"
        mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
        # shellcheck disable=SC1091
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
        echo "deb http://deb.debian.org/debian $codename contrib" > "$APT_DIR/contrib.list"
        apt_opts=(-o "Dir::Etc::SourceList=$APT_DIR/contrib.list" -o Dir::Etc::SourceParts=-
                  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
                  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
                  -o APT::Get::List-Cleanup=0)
        apt-get "${apt_opts[@]}" update -q
        # apt-get download checks the .deb against the signed Release file.
        (cd "$APT_DIR" && apt-get "${apt_opts[@]}" download "$VOICE_PKG")
        deb=$(ls "$APT_DIR"/${VOICE_PKG}_*_all.deb | sort -V | tail -n1)
    fi
    rm -rf "$VOICE_DIR"
    dpkg -x "$deb" "$VOICE_DIR"
    [ -s "$VOICE" ] || die "$deb has no $VOICE"
fi

# --- manifest ----------------------------------------------------------------------------
[ -f "$MANIFEST" ] || die "no $MANIFEST"
names=() texts=()
declare -A seen=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case "$line" in ''|'#'*) continue ;; esac
    [[ "$line" != *$'\r'* ]] || die "$MANIFEST:$lineno: CR in line (save with LF endings)"
    [[ "$line" == *$'\t'* ]] || die "$MANIFEST:$lineno: no TAB between name and text"
    name=${line%%$'\t'*} text=${line#*$'\t'}
    [[ "$name" =~ ^[a-z0-9_]+$ ]] || die "$MANIFEST:$lineno: bad prompt name '$name'"
    [[ "$text" != *$'\t'* ]] || die "$MANIFEST:$lineno: more than one TAB"
    [[ "$text" =~ [^[:space:]] ]] || die "$MANIFEST:$lineno: empty text for $name"
    [ -z "${seen[$name]:-}" ] || die "$MANIFEST:$lineno: $name already on line ${seen[$name]}"
    seen[$name]=$lineno
    names+=("$name") texts+=("$text")
done < "$MANIFEST"
[ ${#names[@]} -gt 0 ] || die "$MANIFEST lists no prompts"

recipe=$( { sha256sum < "$VOICE"; printf '%s\n' "$DIC" "${SOX_GLOBAL[*]}" "${SOX_OUT[*]}" "${SOX_FX[*]}"; } \
          | sha256sum | cut -d' ' -f1)

# --- render ------------------------------------------------------------------------------
mkdir -p "$OUT" "$TOP/.build"
exec 9> "$TOP/.build/make_sounds.lock"
flock -n 9 || die "another make_sounds is running"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A old=()
old_recipe=
if [ -f "$SUMS" ] && [ -z "${FORCE:-}" ]; then
    while read -r sum name; do
        if [ "$sum" = "#" ]; then
            set -- $name
            [ "${1:-}" = recipe ] && old_recipe=${2:-}
        elif [ -n "$name" ]; then
            old[$name]=$sum
        fi
    done < "$SUMS"
fi
[ "$old_recipe" = "$recipe" ] || old=()

echo "# recipe $recipe" > "$tmp/sums"
rendered=0
for i in "${!names[@]}"; do
    name=${names[$i]} text=${texts[$i]}
    sum=$(printf '%s' "$text" | sha256sum | cut -d' ' -f1)
    echo "$sum  $name" >> "$tmp/sums"
    if [ -f "$OUT/$name.wav" ] && [ "${old[$name]:-}" = "$sum" ]; then continue; fi
    printf '%s\n' "$text" > "$tmp/in.txt"
    open_jtalk -x "$DIC" -m "$VOICE" -ow "$tmp/raw.wav" "$tmp/in.txt"
    [ -s "$tmp/raw.wav" ] || die "open_jtalk wrote nothing for $name"
    sox "${SOX_GLOBAL[@]}" "$tmp/raw.wav" "${SOX_OUT[@]}" "$tmp/out.wav" "${SOX_FX[@]}"
    [ "$(soxi -r "$tmp/out.wav") $(soxi -c "$tmp/out.wav") $(soxi -b "$tmp/out.wav")" = "8000 1 16" ] \
        || die "$name: sox did not write 8 kHz mono 16-bit"
    mv -f "$tmp/out.wav" "$OUT/$name.wav"
    rendered=$((rendered + 1))
done

removed=0
for f in "$OUT"/*.wav; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .wav)
    if [ -z "${seen[$n]:-}" ]; then
        rm -f "$f"
        echo "make_sounds: removed $f (not in $MANIFEST)"
        removed=$((removed + 1))
    fi
done
mv -f "$tmp/sums" "$SUMS"
echo "sounds: ${#names[@]} prompt(s) in $MANIFEST, $rendered rendered, $removed removed," \
     "$((SECONDS - start)) s"
