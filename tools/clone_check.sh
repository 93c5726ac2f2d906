#!/usr/bin/env bash
# Issue 19, item 9: `make run` and a first call from a clone in a 0700 directory (as `git clone`
# into /root gives), in a network namespace of its own, then `make down` and the clone removed.
#   tools/clone_check.sh [COMMIT]      (default HEAD; prints KEY=VALUE lines, exit 0 on success)
# The built parts are reused rather than rebuilt (no network in a test's namespace): the
# Asterisk root's /usr and both virtualenvs are hard-linked, the rest of the root copied;
# venv paths naming this checkout are rewritten to the clone's. Everything else is the clone's
# own `make run`: PostgreSQL, secrets, Asterisk and the services, with the state the services
# must reach moved to /var/lib/callguard/<clone>-<hash>/ by tools/stack.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd -P)
COMMIT=$(git rev-parse "${1:-HEAD}")
PARENT=$(mktemp -d /tmp/cg-clone.XXXXXX)  # 0700, like /root
chmod 0700 "$PARENT"
CL=$PARENT/callguard
t0=$(date +%s.%N)
cleanup() {
    if [ -d "$CL" ]; then
        unshare -n bash -c "cd '$CL' && make -s -o .venv/.installed -o .build/svc-venv/.installed down" \
            >/dev/null 2>&1 || true
        # cleanup in the same namespace as the stack is not possible once it is gone: the
        # processes are stopped by PID (make down above ran in a new namespace but stops by PID).
        local state; state=$(readlink -f "$CL/.run" 2>/dev/null || true)
        case $state in /var/lib/callguard/*) rm -rf --one-file-system "$(dirname "$state")" ;; esac
    fi
    rm -rf "$PARENT"
}
trap cleanup EXIT

git clone -q --no-checkout "$SRC" "$CL"
git -C "$CL" checkout -q "$COMMIT"
mkdir -p "$CL/.build"
cp -p .build/deps.stamp "$CL/.build/"
# The clone's state dir (tools/stack.sh creates it and moves .run and the venv link there).
STATE=$(dirname "$("$CL/tools/stack.sh" state-dir)")
# The Asterisk root: /usr shared read-only by hard links, everything else a copy ...
mkdir -p "$STATE/asterisk-root"
for part in .build/asterisk-root/* .build/asterisk-root/.callguard-root-complete; do
    [ -e "$part" ] || continue
    # A mount point (a /proc that debootstrap left mounted) is an empty directory in the copy,
    # never its contents; -x keeps nested mounts out the same way.
    if mountpoint -q "$part"; then mkdir -p "$STATE/asterisk-root/$(basename "$part")"; continue; fi
    case $(basename "$part") in
        usr) cp -alx "$part" "$STATE/asterisk-root/" ;;
        *) cp -ax "$part" "$STATE/asterisk-root/" ;;
    esac
done
# ... except what the clone's `make run` writes into /usr (the prompts, `cp -u`): a copy, or
# it would rewrite this checkout's files in place under its running Asterisk.
rm -rf "$STATE/asterisk-root/usr/share/asterisk/sounds/ja/callguard"
cp -a .build/asterisk-root/usr/share/asterisk/sounds/ja/callguard "$STATE/asterisk-root/usr/share/asterisk/sounds/ja/"
ln -s "$STATE/asterisk-root" "$CL/.build/asterisk-root"
# The virtualenvs: hard links, the files naming this checkout rewritten (sed makes new files).
SVC=$(readlink -f "$CL/.build/svc-venv")
rmdir "$SVC"
cp -al .build/svc-venv "$SVC"
cp -al .venv "$CL/.venv"
for pair in "$SRC/.build/svc-venv:$SVC" "$SRC/.venv:$CL/.venv" "$SRC:$CL"; do
    from=${pair%%:*} to=${pair#*:}
    grep -rlF "$from" "$SVC/bin" "$SVC"/lib/python3*/site-packages/__editable__* \
        "$CL/.venv/bin" "$CL"/.venv/lib/python3*/site-packages/__editable__* 2>/dev/null |
        while read -r f; do [ -L "$f" ] || sed -i "s#$from#$to#g" "$f"; done
done
touch "$CL/.venv/.installed" "$SVC/.installed"
# Asterisk's ports moved off their defaults, as on a host where another program holds them
# (callguard.local.env, RUN-4): the first call below then proves they reach both sides, the
# installed Asterisk configuration and the services' .run/callguard.env.
printf 'CALLGUARD_ARI_PORT=8188\nCALLGUARD_AMI_PORT=5138\nCALLGUARD_FASTAGI_PORT=4673\n' \
    > "$CL/callguard.local.env"
chmod 0600 "$CL/callguard.local.env"
t1=$(date +%s.%N)
echo "CLONE=$CL"
echo "STATE=$STATE"
echo "PREPARE_S=$(echo "$t1 - $t0" | bc)"

# make run, a first call (the README's: carrier 127.0.0.2 → 0312345678 → f1-a), make down; all
# in one network namespace of its own. Asterisk's and the services' uids are reported too.
unshare -n bash -s "$CL" <<'EOS'
set -uo pipefail
cd "$1"
ip link set lo up
MK="make -s -o .venv/.installed -o .build/svc-venv/.installed"
s=$(date +%s.%N)
if ! $MK run >.build/make-run.log 2>&1; then echo "RUN=failed"; tail -30 .build/make-run.log; exit 1; fi
echo "RUN=ok"
echo "RUN_S=$(echo "$(date +%s.%N) - $s" | bc)"
root=$(readlink -f .build/asterisk-root)
echo "ASTERISK_UID=$(awk '/^Uid:/{print $3}' /proc/"$(cat "$root/run/asterisk/asterisk.pid")"/status)"
for n in ari fastagi api; do echo "${n^^}_UID=$(awk '/^Uid:/{print $3}' /proc/"$(cat .run/$n.pid)"/status)"; done
# What listens on TCP in this namespace (the clone's stack alone): address:port, one line.
echo "LISTEN=$(ss -ltnH | awk '{print $4}' | sort -u | tr '\n' ' ')"
# The dialplan's FastAGI URL as the running Asterisk has it (its secret not printed).
if tools/stack.sh ast -rx 'dialplan show globals' 2>/dev/null |
        grep -Eq 'CG_FASTAGI *= *agi://127\.0\.0\.1:4673/'; then echo "AGI_PORT=ok"
else echo "AGI_PORT=failed"; fi
w=$(mktemp -d)
(cd "$w" && exec timeout 30 sipp -sn uas -i 127.0.1.1 -p 5060 -m 1 >uas.out 2>&1) &
uas=$!
sleep 0.5
if (cd "$w" && timeout 30 sipp -sn uac -i 127.0.0.2 -p 5060 -s 0312345678 -m 1 -d 1000 \
        127.0.0.1:5060 >uac.out 2>&1); then echo "CALL=ok"; else echo "CALL=failed"; tail -5 "$w/uac.out"; fi
wait "$uas" && echo "ANSWERED=ok" || echo "ANSWERED=failed"
rm -rf "$w"
$MK down >/dev/null 2>&1 && echo "DOWN=ok" || echo "DOWN=failed"
EOS
echo "TOTAL_S=$(echo "$(date +%s.%N) - $t0" | bc)"
