#!/usr/bin/env bash
# The stack at boot (RUN-3): `make boot-unit` writes a systemd unit that runs this checkout's
# `make run` when the machine starts and its `make down` when it stops; `make boot-unit-remove`
# takes it away again (the running stack is left as it is).
#   tools/boot_unit.sh install|remove|text
#   BOOT_UNIT      the unit's name (default callguard: callguard.service), one per checkout
#   BOOT_UNIT_DIR  where it is written (default /etc/systemd/system; another for a test)
#   BOOT_UNIT_SYSTEMD  the directory whose presence means systemd runs (/run/systemd/system)
# With systemd running (/run/systemd/system) it is reloaded and enabled (`systemctl enable`,
# not started: the stack may already run by hand). Without (a container whose PID 1 is not
# systemd) the file and its multi-user.target.wants link are written all the same, and it says
# that nothing starts it until systemd runs this machine. Only root may: it writes into /etc.
# The shipped units of tools/systemd/ (the services under systemd, no supervisord) are the
# other way to run under systemd: use one or the other, not both.
set -euo pipefail

# A word for a unit's command line (systemd.service, "Command lines"): as it is when nothing in
# it splits, else in double quotes with \ and " escaped; % (a specifier) and $ (a variable)
# doubled. systemd is not a shell: tools/stack.sh's shq ('...'\''...') would not do.
sdq() {
    local s=$1
    if [[ $s =~ ^[A-Za-z0-9@+=:,./_-]+$ ]]; then printf '%s' "$s"; return; fi
    s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//%/%%}; s=${s//\$/\$\$}
    printf '"%s"' "$s"
}

# The unit for the checkout TOP run with MAKE (absolute paths): nothing but its arguments, so
# the same checkout always gets the same text. TimeoutStartSec: a first `make run` installs
# packages (apt waits up to 15 min for a lock held at boot by apt-daily) and builds the Asterisk
# root with debootstrap (about 3 min); a later one takes seconds.
boot_unit_text() {  # TOP, MAKE
    local top=$1 make=$2
    cat <<EOT
# Written by \`make boot-unit\` (tools/boot_unit.sh) for the callguard checkout
# $top; \`make boot-unit-remove\` there removes it.
[Unit]
Description=callguard stack (make run in ${top//%/%%})
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
# A failed make run (a configuration error it reports) leaves what it started running, as it
# does by hand; only ExecStop (make down) stops the stack, never the unit's failure.
KillMode=process
ExecStart=$(sdq "$make") -C $(sdq "$top") run
ExecStop=$(sdq "$make") -C $(sdq "$top") down
TimeoutStartSec=30min
TimeoutStopSec=5min

[Install]
WantedBy=multi-user.target
EOT
}
# shellcheck disable=SC2016  # the backquotes are the comment's text
BOOT_UNIT_MARK='# Written by `make boot-unit` (tools/boot_unit.sh)'
boot_unit_ours() { [[ $(head -1 "$1") == "$BOOT_UNIT_MARK"* ]]; }  # a unit file: ours to replace

boot_unit_main() {  # install|remove|text
    local top name dir file wants make sd_dir=${BOOT_UNIT_SYSTEMD:-/run/systemd/system}
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
    name=${BOOT_UNIT:-callguard}; name=${name%.service}
    dir=${BOOT_UNIT_DIR:-/etc/systemd/system}
    file=$dir/$name.service; wants=$dir/multi-user.target.wants/$name.service
    make=$(command -v make || echo /usr/bin/make)
    [[ $name =~ ^[A-Za-z0-9_.:-]+$ ]] ||
        { echo "boot-unit: BOOT_UNIT=$name is not a unit name (letters, digits, _ . : -)" >&2; exit 2; }
    case $top in *$'\n'*) echo "boot-unit: the checkout's path has a newline; a unit cannot name it" >&2; exit 2 ;; esac
    if [ "${1:-}" = text ]; then boot_unit_text "$top" "$make"; return; fi
    [ "$(id -u)" = 0 ] || { echo "boot-unit: run it as root: it writes $file" >&2; exit 1; }
    case ${1:-} in
    install)
        if [ -e "$file" ] && ! boot_unit_ours "$file"; then
            echo "boot-unit: $file: make boot-unit did not write it; choose another BOOT_UNIT" >&2
            exit 1
        fi
        mkdir -p "$dir"
        boot_unit_text "$top" "$make" > "$file.tmp"
        chmod 0644 "$file.tmp"; mv -f "$file.tmp" "$file"
        if [ -d "$sd_dir" ]; then
            systemctl daemon-reload && systemctl enable "$name.service"
            echo "boot-unit: $file enabled: the stack starts at boot (systemctl start $name now, systemctl status $name)"
        else
            # what `systemctl enable` does, for when systemd runs this machine
            mkdir -p "$(dirname "$wants")"; ln -sfn "$file" "$wants"
            echo "boot-unit: wrote $file (enabled for multi-user.target), but systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): nothing starts the stack at boot until systemd runs this machine; start it with make run"
        fi ;;
    remove)
        if [ ! -e "$file" ]; then echo "boot-unit: no $file; nothing to remove"; return; fi
        boot_unit_ours "$file" ||
            { echo "boot-unit: $file: make boot-unit did not write it; left as it is" >&2; exit 1; }
        if [ -d "$sd_dir" ]; then systemctl disable "$name.service"; fi
        rm -f "$wants" "$file"
        if [ -d "$sd_dir" ]; then systemctl daemon-reload; fi
        echo "boot-unit: removed $file (the running stack is left as it is; make down stops it)" ;;
    *) echo "usage: $0 install|remove|text" >&2; exit 2 ;;
    esac
}

# Sourced, it only defines its functions; a direct run dispatches.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
boot_unit_main "$@"
