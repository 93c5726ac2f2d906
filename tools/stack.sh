#!/usr/bin/env bash
# Start, stop and inspect the parts of the callguard stack (RUN-1..4). Called by the Makefile.
# Every process we start has a PID file under .run/; we stop only those PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd -P)
VENV=$TOP/.venv
# The sysadmin's settings kept across runs, under make's environment (tools/local_env.sh). A
# malformed line stops the commands that start or set up (make run, make cluster), before they
# do anything. The others say it (FILE:LINE) and skip the line, going on with the defaults:
# the two supervisord runs on its own, since a line being edited must not keep a crashed
# Asterisk down (REL-9); and stopping and looking (make down, make status, ast, and
# tools/cluster.sh's down, status, ast and kamcmd, which source this file with their own
# command), since a typo must not keep the stack from stopping (RUN-3).
# shellcheck source=tools/local_env.sh
source "$TOP/tools/local_env.sh"
case ${1:-} in
    asterisk-exec|asterisk-logs-rotate|status|ast|app-connected|apps-stop|app-stop|\
    asterisk-stop|pg-stop|prometheus-stop|down|kamcmd)
        local_env_load "$TOP/callguard.local.env" lenient ;;
    *) local_env_load "$TOP/callguard.local.env" || exit 2
       # two keys on one port of 127.0.0.1: said now (FILE:LINE), not as a bind error later
       local_env_ports_check "$TOP/callguard.local.env" || exit 2 ;;
esac

# ---- where the services' state lives (issue 19, item 9) ----------------------------------------
# PostgreSQL (as postgres), Asterisk and the services (their own users, SEC-4) must reach their
# state. A checkout other users cannot enter (a clone under /root, 0700) keeps it in
# /var/lib/callguard/<name>-<hash of the checkout's path>/ instead (one per checkout, so
# checkouts never collide), with symlinks left where the tools and tests look: .run, the
# Asterisk root (its spool holds the recordings) and the services' virtualenv; the services
# run a copy of the code there (code_sync). A checkout everyone can enter keeps them in place.
STATE_DIR=/var/lib/callguard/$(basename "$TOP")-$(printf '%s' "$TOP" | sha256sum | cut -c1-12)
checkout_reachable() {  # every directory from / down to the checkout enterable by others
    local d=$TOP
    while [ "$d" != / ]; do
        [ $(( 0$(stat -c %a "$d") & 1 )) = 1 ] || return 1
        d=$(dirname "$d")
    done
}
relocate() {  # path in the checkout, move|new: into the state dir, a symlink left behind
    local p=$TOP/$1 dest; dest=$STATE_DIR/$(basename "$1")
    [ -L "$p" ] && return 0
    install -d -m 0755 /var/lib/callguard "$STATE_DIR"
    if [ "$2" = move ] && [ -d "$p" ]; then rm -rf "$dest"; mv "$p" "$dest"
    else rm -rf "$p"; mkdir -p "$dest"; fi  # new: a virtualenv cannot move, it is made again
    mkdir -p "$(dirname "$p")"
    ln -s "$dest" "$p"
}
if ! checkout_reachable; then
    relocate .run move
    [ ! -d "$TOP/.build/asterisk-root" ] || relocate .build/asterisk-root move
    relocate .build/svc-venv new
fi
mkdir -p "$TOP/.run"
RUN=$(readlink -f "$TOP/.run")
LOG=$RUN/log
mkdir -p "$LOG"

# Asterisk: the system one when installed (PBX host), else the project-local sid root (RUN-1).
if [ -z "${ASTERISK_ROOT+x}" ]; then
    if [ -x /usr/sbin/asterisk ]; then ASTERISK_ROOT=""; else ASTERISK_ROOT=$(readlink -f "$TOP/.build/asterisk-root"); fi
fi
PG_PORT=${CALLGUARD_PG_PORT:-55432}
# Asterisk's ports on 127.0.0.1 (RUN-4), moved by callguard.local.env or make's environment
# when another program holds the default: HTTP/ARI (and Asterisk's /metrics), AMI, and the
# FastAGI fallback's, which Asterisk calls. ast_install writes them into the configuration it
# installs (asterisk_conf/ keeps the defaults), secrets() into .run/callguard.env.
ARI_PORT=$(local_env_port CALLGUARD_ARI_PORT 8088)
AMI_PORT=$(local_env_port CALLGUARD_AMI_PORT 5038)
FASTAGI_PORT=$(local_env_port CALLGUARD_FASTAGI_PORT 4573)
PG_DIR=$RUN/pg
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
ENV_FILE=$RUN/callguard.env

ast() { if [ -n "$ASTERISK_ROOT" ]; then chroot "$ASTERISK_ROOT" asterisk "$@"; else asterisk "$@"; fi; }
say() { printf '%s\n' "$*"; }
# A path (or any word) for a shell command line, or for one of supervisord's (which splits it
# as a shell would, shlex): as it is when nothing in it splits or expands, else in single
# quotes, a ' inside as '\''. A checkout whose path has spaces then works; the files generated
# for one without are the same as before (supervisord restarts a program whose section changed).
shq() {
    if [[ $1 =~ ^[A-Za-z0-9@+=:,./_-]+$ ]]; then printf '%s' "$1"
    else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

# ---- least privilege (SEC-4): Asterisk and the services run as their own system users ---------
# Host accounts made with `useradd --system`, so their uids are free on this host (the sid
# root's own `asterisk` uid, 101, is the host's `postgres`). The root's `asterisk` account is
# renumbered to the host's callguard-ast uid/gid; Asterisk starts as root in the chroot and
# drops to it (-U/-G). The services (ARI app, FastAGI fallback, API) run as `callguard`, a
# member of callguard-ast's group so they read the recordings Asterisk writes (0640).
AST_USER=callguard-ast
[ -n "$ASTERISK_ROOT" ] || AST_USER=asterisk  # a system Asterisk: its package's own account
SVC_USER=callguard
AST_RUN_USER=asterisk  # the account's name as Asterisk sees it (the root's or the system's)
users() {
    id -u "$AST_USER" >/dev/null 2>&1 && id -u "$SVC_USER" >/dev/null 2>&1 &&
        id -nG "$SVC_USER" | grep -qw "$AST_USER" && return 0
    # Several checkouts may start at once: one useradd at a time.
    (
        flock 8
        getent group "$AST_USER" >/dev/null || groupadd --system "$AST_USER"
        id -u "$AST_USER" >/dev/null 2>&1 || useradd --system --gid "$AST_USER" --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin --comment "callguard Asterisk" "$AST_USER"
        getent group "$SVC_USER" >/dev/null || groupadd --system "$SVC_USER"
        id -u "$SVC_USER" >/dev/null 2>&1 || useradd --system --gid "$SVC_USER" --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin --comment "callguard services" "$SVC_USER"
        id -nG "$SVC_USER" | grep -qw "$AST_USER" || usermod -aG "$AST_USER" "$SVC_USER"
    ) 8>/run/callguard-users.lock
}
# The root's `asterisk` account takes the host callguard-ast uid/gid; whatever the root's
# package left owned by the old ids follows.
root_users() {
    [ -n "$ASTERISK_ROOT" ] || return 0
    local uid gid old_uid old_gid
    uid=$(id -u "$AST_USER"); gid=$(getent group "$AST_USER" | cut -d: -f3)
    old_uid=$(awk -F: '$1=="asterisk"{print $3}' "$ASTERISK_ROOT/etc/passwd")
    old_gid=$(awk -F: '$1=="asterisk"{print $3}' "$ASTERISK_ROOT/etc/group")
    [ -n "$old_uid" ] && [ -n "$old_gid" ] || { say "no asterisk account in $ASTERISK_ROOT"; exit 1; }
    [ "$old_uid:$old_gid" = "$uid:$gid" ] && return 0
    sed -i -E "s/^asterisk:([^:]*):$old_uid:[0-9]+:/asterisk:\1:$uid:$gid:/" "$ASTERISK_ROOT/etc/passwd"
    sed -i -E "s/^asterisk:([^:]*):$old_gid:/asterisk:\1:$gid:/" "$ASTERISK_ROOT/etc/group"
    find "$ASTERISK_ROOT" -xdev -uid "$old_uid" -exec chown -h "$uid" {} +
    find "$ASTERISK_ROOT" -xdev -gid "$old_gid" -exec chgrp -h "$gid" {} +
}
# The services' account by name in the root too, with the host's uid/gid: Asterisk knows a
# console client by its process's uid/gid (SO_PEERCRED) and resolves the names of
# cli_permissions.conf with getpwnam()/getgrnam() in its root, so its [callguard] section (the
# astdb route map only, SEC-4) needs `callguard` there. A system Asterisk has the host's.
root_svc_account() {
    [ -n "$ASTERISK_ROOT" ] || return 0
    local uid gid; uid=$(id -u "$SVC_USER"); gid=$(getent group "$SVC_USER" | cut -d: -f3)
    root_account_line "$ASTERISK_ROOT/etc/group" "$SVC_USER" "$SVC_USER:x:$gid:"
    root_account_line "$ASTERISK_ROOT/etc/passwd" "$SVC_USER" \
        "$SVC_USER:x:$uid:$gid:callguard services:/nonexistent:/usr/sbin/nologin"
}
root_account_line() {  # file, name, line: the file's one entry for name is line (replaced in
    # one rename, owner and mode kept: an Asterisk reloading meanwhile reads the old or the new)
    local f=$1 tmp
    if [ "$(grep -c "^$2:" "$f")" = 1 ] && grep -qxF -- "$3" "$f"; then return 0; fi
    tmp="$f.callguard-new"
    { grep -v "^$2:" "$f" || true; printf '%s\n' "$3"; } > "$tmp"
    chown --reference="$f" "$tmp"; chmod --reference="$f" "$tmp"
    mv -f "$tmp" "$f"
}
# What Asterisk itself writes or reads, owned by it; the recordings spool shared with the
# services: owned by them, group callguard-ast, setgid, nothing for others (SEC-4).
ast_owns() {  # dirs...: owned (recursively) by Asterisk's account
    chown -R "$AST_USER:$AST_USER" "$@"
}
svc_owns() {  # paths...: owned (recursively) by the services' account
    chown -R "$SVC_USER:$SVC_USER" "$@"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- secrets: generated once into ignored files, never committed (RUN-4, SEC-2) --------------
secrets() {
    users
    mkdir -p "$RUN/secrets"; chmod 700 "$RUN/secrets"
    [ -s "$RUN/secrets/hmac.key" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/hmac.key")
    [ -s "$RUN/secrets/ari.password" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/ari.password")
    [ -s "$RUN/secrets/ami.password" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/ami.password")
    [ -s "$RUN/secrets/agi.secret" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/agi.secret")
    [ -s "$RUN/secrets/api.token" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/secrets/api.token")
    local db_url=${DATABASE_URL:-postgresql://callguard@/callguard?host=$PG_DIR&port=$PG_PORT}
    local rec_host=${CALLGUARD_RECORDINGS_DIR:-$ASTERISK_ROOT/var/spool/asterisk/callguard}
    (umask 077; { cat <<EOT
# Generated by tools/stack.sh; secrets live in .run/secrets (ignored by git).
CALLGUARD_DATABASE_URL=$db_url
CALLGUARD_ARI_URL=http://127.0.0.1:$ARI_PORT
CALLGUARD_AMI_PORT=$AMI_PORT
CALLGUARD_FASTAGI_PORT=$FASTAGI_PORT
CALLGUARD_ARI_USER=callguard
CALLGUARD_ARI_PASSWORD_FILE=$RUN/secrets/ari.password
CALLGUARD_HMAC_KEY_FILE=$RUN/secrets/hmac.key
CALLGUARD_API_TOKEN_FILE=$RUN/secrets/api.token
CALLGUARD_AMI_PASSWORD_FILE=$RUN/secrets/ami.password
CALLGUARD_AGI_SECRET_FILE=$RUN/secrets/agi.secret
CALLGUARD_RECORDINGS_DIR=$rec_host
CALLGUARD_RECORDINGS_ASTERISK_DIR=/var/spool/asterisk/callguard
CALLGUARD_ASTERISK_ROOT=$ASTERISK_ROOT
CALLGUARD_LOG_DIR=$LOG
EOT
        # and the services' settings from make's environment or callguard.local.env
        local_env_services; } > "$ENV_FILE")
    # The services read them as their own user; the journal is theirs alone (SEC-4, REL-2).
    mkdir -p -m 0700 "$RUN/journal"; chmod 0700 "$RUN/journal"
    svc_owns "$RUN/secrets" "$ENV_FILE" "$RUN/journal"
}

# ---- PostgreSQL: a project-local cluster on a unix socket only (RUN-2) -----------------------
pg_start() {
    if [ -n "${DATABASE_URL:-}" ]; then say "postgres: using DATABASE_URL"; return; fi
    id postgres >/dev/null 2>&1 || { say "postgres user missing (make deps)"; exit 1; }
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"; chown postgres:postgres "$PG_DIR"; chmod 700 "$PG_DIR"
        runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust \
            -E UTF8 --locale=C.UTF-8 >"$LOG/initdb.log" 2>&1
        cat >> "$PG_DIR/data/postgresql.conf" <<EOT
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
shared_buffers = 256MB
fsync = on
log_min_messages = warning
EOT
    fi
    # The socket where the state is now (moved into the state dir: issue 19, item 9).
    sed -i "s#^unix_socket_directories = .*#unix_socket_directories = '$PG_DIR'#" "$PG_DIR/data/postgresql.conf"
    # The socket directory: the server's, entered by the services' group only (SEC-4).
    chown postgres:"$SVC_USER" "$PG_DIR"; chmod 0750 "$PG_DIR"
    if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start >/dev/null
    fi
    runuser -u postgres -- psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_roles WHERE rolname='callguard'" | grep -q 1 ||
        runuser -u postgres -- psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -qc "CREATE ROLE callguard LOGIN"
    runuser -u postgres -- psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='callguard'" | grep -q 1 ||
        runuser -u postgres -- psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -qc "CREATE DATABASE callguard OWNER callguard"
}
# One statement as the cluster's superuser (the bench's CHECKPOINT after a bulk build).
pg_sql() { runuser -u postgres -- psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -qc "$1"; }
pg_stop() {
    [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
}
pg_pid() { [ -f "$PG_DIR/data/postmaster.pid" ] && head -1 "$PG_DIR/data/postmaster.pid" || true; }

# ---- Asterisk -------------------------------------------------------------------------------
ast_etc() { printf '%s/etc/asterisk' "$ASTERISK_ROOT"; }
# One file of Asterisk's configuration replaced in one step (a rename), already its owner's and
# mode: an Asterisk that supervisord starts again meanwhile (after a crash) reads the old file
# or the new one, never none, half of one or one it may not read. Deleting and copying left it
# without extensions_agi_secret.conf once, and pbx_config declined to load: no dialplan at all.
ast_put() {  # mode, destination[, owner:group, Asterisk's by default]; the content on stdin
    local tmp; tmp="$(dirname "$2")/.$(basename "$2").new"
    (umask 077; cat > "$tmp")
    chown "${3:-$AST_USER:$AST_USER}" "$tmp"; chmod "$1" "$tmp"
    etc_keep "$2" "$tmp"
    mv -f "$tmp" "$2"
}
# A system Asterisk's /etc/asterisk is the host's (PBX host: the package's files, what its
# administrator changed). `make run` installs asterisk_conf/ there all the same (RUN-1), but
# ast_install first copies a file it would replace with other content, owner, mode and time
# kept, to /etc/asterisk.callguard-backup-YYYYmmddHHMMSS/ (one per run, made at the first file
# kept; callguard never deletes it), and says where. Files of /etc/asterisk that asterisk_conf/
# does not have stay as they are. The project's own root (.build/asterisk-root) holds only what
# callguard put there: nothing to keep. The directory is named before the first ast_put, as
# some run in a pipeline's subshell, where a name chosen would not reach the next one.
ETC_KEPT=""  # this run's backup directory (etc_keep_begin), made at the first file kept
etc_keep_begin() {  # ast_install's first step: a system Asterisk's run gets a backup name
    local base i=0
    ETC_KEPT=""
    [ -z "$ASTERISK_ROOT" ] || return 0
    base=$(ast_etc).callguard-backup-$(date +%Y%m%d%H%M%S); ETC_KEPT=$base
    while [ -e "$ETC_KEPT" ]; do i=$((i + 1)); ETC_KEPT=$base-$i; done  # a run of the same second
}
etc_keep() {  # destination, its new content (a file): a copy of the destination when it changes
    local f=$1
    [ -n "$ETC_KEPT" ] && [ "$(dirname "$f")" = "$(ast_etc)" ] || return 0
    [ -e "$f" ] || [ -L "$f" ] || return 0
    ! cmp -s "$f" "$2" || return 0
    # The AMI switch the services flip (ami_switch, callguard.ami): no one else's file.
    if [ "${f##*/}" = manager_on_demand.conf ] && [ "$(cat "$f")" = "enabled = yes" ]; then
        return 0
    fi
    [ -d "$ETC_KEPT" ] || mkdir -m 0700 "$ETC_KEPT"
    cp -a "$f" "$ETC_KEPT/"
}
etc_kept_say() {  # where the files replaced are, if any were
    [ -n "$ETC_KEPT" ] && [ -d "$ETC_KEPT" ] || return 0
    say "asterisk: the files of $(ast_etc) replaced by callguard's are kept in $ETC_KEPT/:" \
        "$(cd "$ETC_KEPT" && echo *)"
}
# asterisk_conf/'s file (its name; the content on stdin, on stdout) with this run's ports: the
# defaults there (8088, 5038, 4573) replaced by ARI_PORT, AMI_PORT, FASTAGI_PORT. With the
# defaults the content is the repository's, byte for byte. tools/cluster.sh then gives each
# node its own (node_install).
ast_conf_ports() {
    case $1 in
        http.conf) sed -e "s/^bindport = 8088\$/bindport = $ARI_PORT/" ;;
        ari.conf) sed -e "s#^allowed_origins = http://127.0.0.1:8088\$#allowed_origins = http://127.0.0.1:$ARI_PORT#" ;;
        manager.conf) sed -e "s/^port = 5038\$/port = $AMI_PORT/" ;;
        prometheus.conf) sed -e "s#127.0.0.1:8088/#127.0.0.1:$ARI_PORT/#" ;;
        extensions.conf) sed -e "s#agi://127.0.0.1:4573/#agi://127.0.0.1:$FASTAGI_PORT/#" ;;
        *) cat ;;
    esac
}
# The files ast_install writes itself (ami_switch writes manager_on_demand.conf).
AST_GENERATED="ari_users.conf extensions_agi_secret.conf manager_users.conf manager_on_demand.conf"
ast_install() {
    local etc f ours; etc=$(ast_etc)
    users; root_users; root_svc_account; etc_keep_begin
    mkdir -p "$etc"
    ours=" $AST_GENERATED "
    for f in asterisk_conf/*.conf; do
        ast_conf_ports "${f##*/}" < "$f" | ast_put 0640 "$etc/${f##*/}"
        ours+="${f##*/} "
    done
    if [ -n "$ASTERISK_ROOT" ]; then
        # The project root holds only our configuration, nothing from the package samples
        # (nor the bench's, PERF-1).
        for f in "$etc"/*.conf; do
            case "$ours" in *" ${f##*/} "*) ;; *) rm -f "$f" ;; esac
        done
    fi
    # The ARI password in a file only Asterisk's user reads (0600, SEC-4), in clear like the AMI
    # and SIP secrets beside it. Asterisk checks it on EVERY ARI request, on the call path: as
    # SHA-512 crypt that was 2.5 ms of Asterisk CPU per request at 5,000 rounds and still
    # 0.5-0.8 ms at glibc's least (1,000), ~8 % of a Stasis call; the services hold it in clear
    # anyway (.run/secrets), so a hash here guarded nothing they do not (PERF-1, PERF-4).
    printf '[callguard]\ntype = user\nread_only = no\npassword_format = plain\npassword = %s\n' \
        "$(cat "$RUN/secrets/ari.password")" | ast_put 0600 "$etc/ari_users.conf"
    # The FastAGI URL with its secret (SEC-4), included into [globals] by extensions.conf.
    printf 'CG_FASTAGI = agi://127.0.0.1:%s/%s\n' "$FASTAGI_PORT" "$(cat "$RUN/secrets/agi.secret")" \
        | ast_put 0600 "$etc/extensions_agi_secret.conf"
    # Recordings: nothing for others, also what an older version left 0644/0755 (SEC-4).
    # The services own the tree (they make each call's directory, seal and repair files);
    # Asterisk writes through the group (setgid: everything below is callguard-ast's).
    local spool=$ASTERISK_ROOT/var/spool/asterisk/callguard
    mkdir -p -m 0750 "$spool"
    chmod -R o= "$spool"
    chown -R "$SVC_USER:$AST_USER" "$spool"
    find "$spool" -type d -exec chmod 2770 {} +
    # AMI user for recording pause/resume (issue #14), loopback: MixMonitorMute, DTMFEnd events.
    printf '[callguard]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = dtmf\nwrite = call\neventfilter = Event: DTMFEnd\n' \
        "$(cat "$RUN/secrets/ami.password")" | ast_put 0600 "$etc/manager_users.conf"
    mkdir -p "$ASTERISK_ROOT/usr/share/asterisk/sounds/ja/callguard" \
             "$ASTERISK_ROOT/var/spool/asterisk/recording" "$ASTERISK_ROOT/usr/local/share/asterisk/sounds" \
             "$ASTERISK_ROOT/run/asterisk" "$ASTERISK_ROOT/var/log/asterisk"
    # Asterisk reads its configuration (secrets 0600 included) and writes its state as itself.
    ast_owns "$etc" "$ASTERISK_ROOT/var/lib/asterisk" "$ASTERISK_ROOT/var/log/asterisk" \
             "$ASTERISK_ROOT/run/asterisk" "$ASTERISK_ROOT/var/spool/asterisk/recording"
    chown "$AST_USER:$AST_USER" "$ASTERISK_ROOT/var/spool/asterisk"
    chmod -R o= "$etc"
    chmod o= "$ASTERISK_ROOT/var/lib/asterisk" "$ASTERISK_ROOT/var/log/asterisk" "$ASTERISK_ROOT/run/asterisk"
    ami_switch "$etc"
    etc_kept_say
    if [ -n "$ASTERISK_ROOT" ] && ! grep -qw "$(hostname)" "$ASTERISK_ROOT/etc/hosts" 2>/dev/null; then
        # Asterisk resolves its own host name at the first call; the root has no resolver.
        printf '127.0.0.1 localhost %s\n' "$(hostname)" >> "$ASTERISK_ROOT/etc/hosts"
    fi
    if compgen -G "sounds/ja/*.wav" >/dev/null; then
        cp -u sounds/ja/*.wav "$ASTERISK_ROOT/usr/share/asterisk/sounds/ja/callguard/"
    fi
}
# AMI off until a recording pause needs it (asterisk_conf/manager.conf, PERF-1): the one
# Asterisk file the services may write (callguard.ami.ensure_enabled), Asterisk's group reads it.
ami_switch() {  # etc dir
    printf 'enabled = no\n' | ast_put 0640 "$1/manager_on_demand.conf" "$SVC_USER:$AST_USER"
}
# The bench's endpoint and baseline dialplan (PERF-1), only for `make bench`: `make run`
# (ast_install) removes them again, so production never has the bench carrier.
bench_install() {
    # Asterisk's like the rest of its configuration, nothing for others (SEC-4).
    install -m 0640 -o "$AST_USER" -g "$AST_USER" bench/asterisk_conf/*.conf "$(ast_etc)/"
    ast -rx 'module reload res_pjsip.so' >/dev/null; ast -rx 'dialplan reload' >/dev/null
}
# ---- Asterisk's own logs (asterisk_conf/logger.conf): kept aside, never emptied (REL-9) -------
# Not logrotate: nothing here runs cron, so it would need a trigger of its own anyway; the
# supervised [program:asterisk-logs] loop below checks the size every minute, moves a log over
# AST_LOG_MAX aside and has Asterisk reopen its files (`logger reload`, as Debian's logrotate
# configuration for Asterisk does). A system Asterisk (PBX host) has its package's logrotate.
AST_LOG_DIR=$ASTERISK_ROOT/var/log/asterisk
AST_LOGS="messages.log security.log"
AST_LOG_KEEP=5  # FILE.1 (newest) ... FILE.5; callguard/failopen.py KEPT
AST_LOG_MAX=${CALLGUARD_ASTERISK_LOG_MAX:-$((20 * 1024 * 1024))}  # bytes (the tests: 0)
[[ $AST_LOG_MAX =~ ^[0-9]+$ ]] || { echo "CALLGUARD_ASTERISK_LOG_MAX must be bytes, got $AST_LOG_MAX" >&2; exit 2; }
# The first line of a new messages.log: `callguard status` counts "since Asterisk started" from
# the start mark on, through the older files a continued mark points to (callguard/failopen.py).
AST_START_MARK="tools/stack.sh: Asterisk started"
AST_CONTINUED_MARK="tools/stack.sh: log rotated"
ast_log_mark() { printf '[%s] NOTICE[0] %s' "$(date '+%F %T.%3N')" "$1"; }
ast_logs_locked() {  # command...: one log rotation at a time (make run vs the supervised loop)
    ( flock 9; "$@" ) 9>"$RUN/asterisk-logs.lock"
}
# The cluster's nodes (tools/cluster.sh node_start) keep their logs the same way, each in its
# own log directory: the functions take the directory.
ast_log_shift() {  # dir, file: FILE.4 → FILE.5 ... FILE → FILE.1, the oldest dropped; empty: nothing
    local f=$1/$2 i
    [ -s "$f" ] || return 0
    rm -f "$f.$AST_LOG_KEEP"
    for ((i = AST_LOG_KEEP - 1; i >= 1; i--)); do
        [ ! -e "$f.$i" ] || mv -f "$f.$i" "$f.$((i + 1))"
    done
    mv -f "$f" "$f.1"
}
ast_log_new() {  # dir, file, first line (may be empty): the old file aside, a new one of
    # Asterisk's own (0640): one root created, Asterisk could not open (no messages.log at all
    # until the next `module reload`).
    ast_log_shift "$1" "$2"
    { [ -z "$3" ] || printf '%s\n' "$3"; } | ast_put 0640 "$1/$2"
}
ast_log_started() {  # dir: a deliberate start's new messages.log, the last run's kept aside
    ast_logs_locked ast_log_new "$1" messages.log \
        "$(ast_log_mark "$AST_START_MARK; the log before is messages.log.1")"
}
ast_logs_rotate() {  # each log over AST_LOG_MAX aside, then Asterisk reopens its files
    local f size rotated=""
    [ -n "$ASTERISK_ROOT" ] || return 0
    for f in $AST_LOGS; do
        size=$(stat -c %s "$AST_LOG_DIR/$f" 2>/dev/null || echo 0)
        [ "$size" -gt "$AST_LOG_MAX" ] || continue
        if [ "$f" = messages.log ]; then
            ast_log_new "$AST_LOG_DIR" "$f" "$(ast_log_mark "$AST_CONTINUED_MARK past $AST_LOG_MAX bytes; this run's earlier lines are in $f.1")"
        else
            ast_log_new "$AST_LOG_DIR" "$f" ""
        fi
        rotated+=" $f"
    done
    [ -n "$rotated" ] || return 0
    # Until then Asterisk writes on into the file moved aside (FILE.1), nothing lost.
    ast -rx 'logger reload' >/dev/null 2>&1 || true
    say "$(date '+%F %T') rotated:$rotated"
}
ast_logs_program() {  # the supervised loop (project-local root only)
    [ -n "$ASTERISK_ROOT" ] || return 0
    cat <<EOT
[program:asterisk-logs]
command = /bin/bash -c $(shq "while sleep 60; do $(shq "$TOP/tools/stack.sh") asterisk-logs-rotate; done")
autostart = true
autorestart = true
startsecs = 0
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile = $LOG/asterisk-logs.log
stdout_logfile_maxbytes = 1MB
stdout_logfile_backups = 1
EOT
}
ast_pidfile() { printf '%s/run/asterisk/asterisk.pid' "$ASTERISK_ROOT"; }
ast_running() { alive "$(ast_pidfile)" && ast -rx 'core show uptime' >/dev/null 2>&1; }
# Asterisk with ARGS (-F: a daemon), its cwd CORES (a directory in the root, made its user's).
# With -g (Asterisk stays dumpable after it drops to its user) and no core size limit, a crash
# leaves a core there when the kernel's core_pattern is a bare `core`: under load it once
# exited with nothing in messages.log, and without a core there was nothing to read.
ast_exec() {  # cores-dir, asterisk args...: this shell becomes Asterisk (no fork, same PID)
    local cores=$1; shift
    install -d -m 0750 -o "$AST_USER" -g "$AST_USER" "$ASTERISK_ROOT$cores"
    # Recordings (and everything else Asterisk creates) not world-readable: files 0640 (SEC-4).
    umask 027; ulimit -c unlimited 2>/dev/null || true
    if [ -n "$ASTERISK_ROOT" ]; then
        exec chroot "$ASTERISK_ROOT" /bin/sh -c 'cd "$1" && shift && exec asterisk "$@"' sh "$cores" "$@"
    fi
    cd "$cores" && exec asterisk "$@"
}
ast_launch() { (ast_exec "$@"); }  # cores-dir, asterisk args...: in a subshell (-F forks)
# Asterisk runs under supervisord like the services (REL-9, as FreePBX runs it under
# safe_asterisk and a PBX host under systemd): it once aborted under a CANCEL storm (upstream
# asterisk/asterisk#1985), and then no call was answered until a person ran `make run`. A crash
# (any exit but a clean stop's 0) has it started again at once, keeping the crash's log and core;
# within startsecs of its start it is retried with a growing pause, so a bad configuration does
# not spin. `tools/stack.sh asterisk-exec` is the program's command (foreground, -f).
ast_program() {
    cat <<EOT
[program:asterisk]
command = $(shq "$TOP/tools/stack.sh") asterisk-exec
priority = 100
autostart = false
autorestart = unexpected
exitcodes = 0
startsecs = 2
startretries = 1000000
stopsignal = TERM
stopwaitsecs = 20
redirect_stderr = true
stdout_logfile = $LOG/asterisk.stdout.log
stdout_logfile_maxbytes = 10MB
stdout_logfile_backups = 2
EOT
}
# A running Asterisk reads the configuration just installed. A reload prints nothing on the CLI
# (`module reload` without a module name reports no result) and only logs what it refused, e.g.
# a PJSIP syntax error, after which Asterisk goes on without the broken part: make run reads
# what Asterisk logged meanwhile, and a configuration error fails it, naming the file. Only
# what the configuration readers log counts (config*.c, sorcery, pbx_config, pbx_ael, loader),
# never a call's line (a [C-...] tag) or another ERROR of the same half second; the key
# directory res_crypto looks for (file.c) is not the configuration's. A clean reload logs
# NOTICEs only.
# cli_permissions.conf's too (cli.c): a section whose user or group Asterisk cannot resolve is
# skipped, and that user gets default_perm, the whole CLI (SEC-4). A start is checked the same
# way (ast_boot): Asterisk reads the file once as it starts, and logs the same WARNING.
AST_RELOAD_ERROR='^\[[^]]*\] (ERROR|WARNING)\[[0-9]+\] ((config|config_options|config_[a-z_]+|pbx_config|res_sorcery_config|sorcery|pbx_ael|loader)\.c:|cli\.c:.*(Unknown (user|group) '"'"'|Empty permit/deny option|Unknown '"'"'[^'"'"']*'"'"' option))'
AST_RELOAD_IGNORED='^\[[^]]*\] ERROR\[[0-9]+\] (file|res_crypto)\.c:'
ast_log_size() { stat -c %s "$AST_LOG_DIR/messages.log" 2>/dev/null || echo 0; }
ast_reload() {  # (under ast_logs_locked: no rotation between the offset and the read)
    local off out
    # An Asterisk supervisord has just started again may still be booting: its start's own
    # lines are not this reload's.
    ast -rx 'core waitfullybooted' >/dev/null 2>&1 || true
    off=$(ast_log_size)
    # (`module reload` does not read cli_permissions.conf: only its own command does)
    out=$(ast -rx 'module reload' 2>&1 && ast -rx 'dialplan reload' 2>&1 &&
        ast -rx 'cli reload permissions' 2>&1) ||
        { say "Asterisk reload failed: $out"; exit 1; }
    ast_conf_check "$off" reloading "$out"
}
# What Asterisk logged reading its configuration since OFFSET of messages.log: at a reload, and
# at a start too (ast_boot). A start reads cli_permissions.conf once, after the modules and
# before Asterisk is fully booted (main/asterisk.c, ast_cli_perms_init(0)): a [callguard] whose
# account its root cannot resolve is the same `cli.c: Unknown user 'callguard'` WARNING as at
# a reload, and the services' console would hold the whole CLI until the next reload.
ast_conf_check() {  # offset, reloading|loading, the CLI's answer to a reload (may be empty)
    local log=$AST_LOG_DIR/messages.log errs out f files=""
    sleep 0.5  # what Asterisk logged goes through its logger thread
    # At a start the loader also warns of every `load =` module this Asterisk was built
    # without (a system Asterisk's package may lack an optional one); a reload never says it
    # again. Not a configuration error: what needs such a module fails its own check (ARI's).
    local ignored=$AST_RELOAD_IGNORED
    [ "$2" != loading ] || ignored="$ignored|^\[[^]]*\] (ERROR|WARNING)\[[0-9]+\] loader\.c:"
    errs=$(tail -c +"$(($1 + 1))" "$log" 2>/dev/null | grep -E "$AST_RELOAD_ERROR" |
        grep -Ev "$ignored" || true)
    # The CLI's own words for a module that failed (main/cli.c handle_reload).
    out=$(grep -E 'reload failure|not properly initialized|No such module' <<<"${3:-}" || true)
    if [ -z "$out$errs" ]; then return 0; fi
    while read -r f; do
        if [ -f "asterisk_conf/$f" ]; then files+=" asterisk_conf/$f"; else files+=" $f"; fi
    done < <({ grep -oE '[A-Za-z0-9_.-]+\.conf' <<<"$errs" || true
               ! grep -q ' cli\.c: ' <<<"$errs" || echo cli_permissions.conf; } | sort -u)
    say "Asterisk reported errors $2 its configuration${files:+ in$files}; it runs on without what it refused:"
    printf '%s\n' "$out" "$errs" | sed '/^$/d; s/^/  /'
    if grep -q "cli\.c: Unknown user '$SVC_USER'" <<<"$errs"; then
        say "  (Asterisk finds no $SVC_USER in ${ASTERISK_ROOT:-}/etc/passwd: the services' console holds the whole CLI, SEC-4)"
    fi
    say "fix it and run make run again (the lines are in $log)"
    exit 1
}
# The console socket read-writable for Asterisk's group (the services: their astdb route map,
# callguard/astdb_sync.py). asterisk.conf's astctlpermissions makes it so when Asterisk starts;
# an Asterisk started before that setting keeps its socket through a reload, hence this.
ast_ctl_group() {  # socket path
    if [ -S "$1" ]; then chmod 0660 "$1"; fi
}
# ARI answers on this run's port. A running Asterisk moves its HTTP server (and the AMI) to a
# changed port at the reload (`module reload` reloads http.conf and manager.conf, and Asterisk
# binds anew when the address changed); a port another program holds only logs an ERROR of
# tcptls.c, which ast_reload does not count: said here instead, naming the key.
ast_ari_answers() {  # (the password on curl's stdin, never on its command line: SEC-2)
    printf 'user = "callguard:%s"\n' "$(cat "$RUN/secrets/ari.password")" |
        curl -sf -m 2 -K - -o /dev/null "http://127.0.0.1:$ARI_PORT/ari/asterisk/ping"
}
ast_ari_ready() {  # within 10 s, however long each try takes (a port held by a silent program)
    local until=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$until" ]; do ast_ari_answers && return 0; sleep 0.05; done
    say "Asterisk's ARI does not answer on 127.0.0.1:$ARI_PORT (CALLGUARD_ARI_PORT): another" \
        "program may hold that port (ss -ltnp 'sport = :$ARI_PORT'); see $AST_LOG_DIR/messages.log"
    exit 1
}
ast_start() {
    ast_install
    if ast_running; then
        ast_logs_locked ast_reload
        ast_ctl_group "$ASTERISK_ROOT/run/asterisk/asterisk.ctl"
        ast_ari_ready
        return
    fi
    sup_start
    # A deliberate start gets a new log, the last one kept aside (messages.log.1, it may hold
    # the incident being investigated); one supervisord is already starting again after a
    # crash (STARTING, BACKOFF, RUNNING) keeps the log that says why it went.
    local start=""
    if ! sup_any_up asterisk; then
        # (a system Asterisk's logs are its package's logrotate's, left as they are)
        [ -z "$ASTERISK_ROOT" ] || ast_log_started "$AST_LOG_DIR"
        start=start
    fi
    ast_logs_locked ast_boot "$start"
}
# Asterisk started (START: by us; empty: by supervisord already) and fully booted, then what it
# logged loading its configuration checked as after a reload (ast_conf_check); under
# ast_logs_locked, so no rotation comes between the offset and the read. One that supervisord
# was already starting again (after a crash) is checked from now on only.
ast_boot() {  # start|""
    local off; off=$(ast_log_size)
    [ -z "$1" ] || ctl start asterisk >/dev/null 2>&1 || true
    for _ in $(seq 1 200); do ast -rx 'core waitfullybooted' >/dev/null 2>&1 && break; sleep 0.05; done
    ast -rx 'core waitfullybooted' >/dev/null || {
        say "Asterisk did not start; see $LOG/asterisk.stdout.log and $ASTERISK_ROOT/var/log/asterisk/messages.log"
        exit 1; }
    cp "$(ast_pidfile)" "$RUN/asterisk.pid"
    ast_conf_check "$off" loading
    ast_ari_ready
}
ast_stop() {
    # A deliberate stop: supervisord keeps it stopped (SIGTERM is `core stop now` to Asterisk).
    if alive "$SUP_PID"; then ctl stop asterisk >/dev/null 2>&1 || true; sup_quit_if_idle; fi
    # One started outside supervision (an older stack.sh).
    if ast_running; then ast -rx 'core stop now' >/dev/null 2>&1 || true; fi
    local pf; pf=$(ast_pidfile)
    for _ in $(seq 1 100); do alive "$pf" || break; sleep 0.05; done
    rm -f "$RUN/asterisk.pid"
}

# ---- Python services: the ARI app (and API) and the FastAGI fallback ---------------------------
# Supervised by supervisord (REL-9): a crashed service is started again at once, without a
# person; supervisord rotates their logs. On a PBX host with systemd use tools/systemd/ instead.
# Each service writes its PID to .run/NAME.pid (a shell that execs the service keeps its PID).
# The services' own virtualenv (runtime dependencies only, `make svc-venv`), else .venv.
SVC_VENV=${CALLGUARD_SVC_VENV:-$(readlink -f "$TOP/.build/svc-venv")}
[ -x "$SVC_VENV/bin/supervisord" ] || SVC_VENV=$VENV
# The services' commands: the virtualenv's, or in a state dir (checkout out of reach) launchers
# of the code copied there.
SVC_BIN=$SVC_VENV/bin
CODE=""
if [ -L "$TOP/.build/svc-venv" ]; then CODE=$STATE_DIR/code; SVC_BIN=$CODE/bin; fi
code_sync() {
    [ -n "$CODE" ] || return 0
    local s
    rm -rf "$CODE.new"; mkdir -p "$CODE.new/bin"
    cp -r "$TOP/callguard" "$TOP/ari_app" "$TOP/agi_scripts" "$CODE.new/"
    find "$CODE.new" -name __pycache__ -prune -exec rm -rf {} +
    for s in ari:ari_app.main fastagi:agi_scripts.fastagi api:callguard.api.app; do
        # A shell line that starts the virtualenv's Python on this file, as pip's own launchers
        # do (a #! line cannot hold a path with spaces); the code is the launcher's ../.
        {
            printf "#!/bin/sh\n'''exec' %s \"\$0\" \"\$@\"\n' '''\n" "$(shq "$SVC_VENV/bin/python")"
            printf 'import os\nimport sys\n'
            printf 'sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\n'
            printf 'from %s import main\nsys.exit(main())\n' "${s#*:}"
        } > "$CODE.new/bin/callguard-${s%%:*}"
        chmod 0755 "$CODE.new/bin/callguard-${s%%:*}"
    done
    chmod -R a+rX,go-w "$CODE.new"
    rm -rf "$CODE"; mv "$CODE.new" "$CODE"
}
SUP_CONF=$RUN/supervisord.conf
SUP_PID=$RUN/supervisord.pid
SERVICES="fastagi ari api"
# The call path in Asterisk's real-time class (asterisk.conf highpriority; callguard/realtime.py):
# the ARI app and the FastAGI fallback get SCHED_RR 10 here, as root, and keep it across the drop
# to $SVC_USER (setpriv) and the exec; where the kernel refuses it even to root, they start at
# normal priority. The API, off the call path, starts as $SVC_USER through supervisord.
# CALLGUARD_RT_PRIORITY=0 (or another priority) in make's environment: no chrt (or that
# priority), and the services get the variable too (callguard/realtime.py asks for it itself).
RT_PRIO=${CALLGUARD_RT_PRIORITY:-10}
rt_chrt() {
    if [[ $RT_PRIO =~ ^[0-9]+$ ]] && [ "$RT_PRIO" -gt 0 ] && chrt -r "$RT_PRIO" true 2>/dev/null; then
        printf 'chrt -r %s ' "$RT_PRIO"
    fi
}
svc_program() {  # $1 service, $2 environment file, $3 shell before the exec (its paths shq'd),
    # $4 log directory:
    # command, user, environment and where its output goes. The call-path services (ari,
    # fastagi) write their log themselves (CALLGUARD_LOG_FILE, ari_app/logs.py): supervisord
    # only keeps what escapes it (a crash before logging starts) in <service>.stdout.log.
    local cmd
    case $1 in
        ari|fastagi)
            cmd="${3:-}exec $(rt_chrt)setpriv --reuid=$SVC_USER --regid=$SVC_USER --init-groups"
            printf 'command = /bin/sh -c %s\n' "$(shq "$cmd -- $(shq "$SVC_BIN/callguard-$1")")"
            printf 'environment = CALLGUARD_ENV="%s",CALLGUARD_LOG_FILE="%s"%s\n' "$2" \
                "$4/services/$1.log" \
                "${CALLGUARD_RT_PRIORITY:+,CALLGUARD_RT_PRIORITY=\"$CALLGUARD_RT_PRIORITY\"}"
            printf 'stdout_logfile = %s\n' "$4/$1.stdout.log" ;;
        *)
            printf 'command = /bin/sh -c %s\nuser = %s\n' \
                "$(shq "${3:-}exec $(shq "$SVC_BIN/callguard-$1")")" "$SVC_USER"
            printf 'environment = CALLGUARD_ENV="%s"\n' "$2"
            printf 'stdout_logfile = %s\n' "$4/$1.log" ;;
    esac
}
svc_logs() {  # $1 log directory: ari and fastagi write and rotate their logs in $1/services,
    # a directory of their account's alone (0750); $1/<service>.log links there, so the usual
    # path reads on. $1 itself stays root's and not writable by the services: nothing root
    # (supervisord, this script) writes or changes in it can be redirected by a service's link.
    chown 0:0 "$1"; chmod 0755 "$1"
    install -d -o "$SVC_USER" -g "$SVC_USER" -m 0750 "$1/services"
    local s
    for s in ari fastagi; do
        # a log file from before (supervisord's) is kept aside, not mixed into theirs
        if [ -f "$1/$s.log" ] && [ ! -L "$1/$s.log" ]; then mv -f "$1/$s.log" "$1/$s.log.old"; fi
        ln -sfn "services/$s.log" "$1/$s.log"
    done
}
# The waker behind supervisord's prompt restarts (below): a line every 0.1 s. `read -t` on a
# pipe it holds both ends of waits out the timeout inside bash; `sleep 0.1` in a loop forked
# and exec'd ten times a second, 1.5 % of the stack's core with nothing to do.
WAKEUP_CMD="/bin/bash -c 'exec 3<> <(:); while :; do read -t 0.1 -u 3; echo; done'"
sup_conf() {
    local s
    {
        cat <<EOT
; Generated by tools/stack.sh (REL-9). Control socket: owner-only unix socket, no TCP.
[unix_http_server]
file = $RUN/supervisor.sock
chmod = 0700

[supervisord]
logfile = $LOG/supervisord.log
logfile_maxbytes = 10MB
logfile_backups = 5
pidfile = $SUP_PID
directory = $RUN
minfds = 4096
nocleanup = true
childlogdir = $LOG

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://$RUN/supervisor.sock
EOT
        # supervisord acts on a dead child only when its poll loop wakes (at most once a
        # second when idle); a line every 0.1 s keeps restarts well inside REL-9's 2 s.
        cat <<EOT

[program:wakeup]
command = $WAKEUP_CMD
autostart = true
autorestart = true
startsecs = 0
stopasgroup = true
killasgroup = true
stdout_logfile = NONE
stdout_logfile_maxbytes = 0
EOT
        # The services start when apps_start says (after Asterisk and the site's provisioning,
        # which `make run` does after starting supervisord for Asterisk), then autorestart.
        for s in $SERVICES; do
            cat <<EOT

[program:$s]
$(svc_program "$s" "$ENV_FILE" "echo \$\$ > $(shq "$RUN/$s.pid") && " "$LOG")
umask = 027
directory = $RUN
autostart = false
autorestart = true
startsecs = 0
startretries = 1000000
stopsignal = TERM
stopwaitsecs = 5
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile_maxbytes = 20MB
stdout_logfile_backups = 5
EOT
        done
        cat <<EOT

$(ast_program)

$(ast_logs_program)
EOT
        # Prometheus (issue 18), supervised like the services; started by prom_start, which
        # writes its configuration first (autostart off: `make run` starts it after the apps).
        cat <<EOT

$(prom_program "$PROM_DIR/prometheus.yml")
EOT
    } > "$SUP_CONF.new"
    if cmp -s "$SUP_CONF.new" "$SUP_CONF"; then rm -f "$SUP_CONF.new"; return 1; fi
    mv "$SUP_CONF.new" "$SUP_CONF"
}
ctl() { "$SVC_VENV/bin/supervisorctl" -c "$SUP_CONF" "$@"; }
sup_running() { alive "$SUP_PID" && ctl pid >/dev/null 2>&1; }
pidfiles() {  # each service writes its PID as its own user into a file made for it here
    local s
    for s in $SERVICES; do
        [ -e "$RUN/$s.pid" ] || install -m 0644 /dev/null "$RUN/$s.pid"
        chown "$SVC_USER:$SVC_USER" "$RUN/$s.pid"
    done
    svc_logs "$LOG"
}
# supervisord passes its own environment to every program, and callguard/config.py lets the
# environment win over .run/callguard.env: started by `CALLGUARD_API_PORT=9000 make run`, it
# would keep 9000 for the services through every later restart, whatever callguard.local.env
# or make's environment said since (RUN-4). So it starts without the services' keys (those
# callguard.local.env takes for them, and every CALLGUARD_* their environment files carry):
# they read their settings from those files alone; a change there restarts them (apps_start).
sup_launch() {  # config file, the services' environment files...: start supervisord
    local conf=$1 k unset=(); shift
    for k in $(local_env_keys services) \
             $(sed -n 's/^\(CALLGUARD_[A-Za-z0-9_]*\)=.*/\1/p' "$@" 2>/dev/null || true); do
        [[ " ${unset[*]} " == *" -u $k "* ]] || unset+=(-u "$k")
    done
    # Close inherited descriptors (e.g. a caller's `flock` lock) so the services hold none.
    env "${unset[@]}" "$SVC_VENV/bin/supervisord" -c "$conf" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
}
sup_start() {
    local changed=0
    pidfiles
    alive "$SUP_PID" || code_sync
    sup_conf && changed=1
    if alive "$SUP_PID"; then
        if [ $changed = 1 ]; then ctl update >/dev/null; fi
        return 0
    fi
    sup_launch "$SUP_CONF" "$ENV_FILE"
    for _ in $(seq 1 100); do sup_running && return 0; sleep 0.05; done
    say "supervisord did not start; see $LOG/supervisord.log"; exit 1
}
svc_pid() {  # the PID supervisord runs for a service, empty when it is not running
    local p; p=$(ctl pid "$1" 2>/dev/null || true)
    [[ $p =~ ^[0-9]+$ ]] && [ "$p" != 0 ] && printf '%s' "$p" || true
}
svc_start() {  # name: start one supervised service (supervisord started first when needed)
    sup_start
    local out; out=$(ctl start "$1" 2>&1 || true)
    case $out in *started*) ;; *) say "$1 did not start ($out); see $LOG/$1.log"; exit 1 ;; esac
}
svc_stop() {  # name: a deliberate stop; supervisord keeps it stopped until svc_start
    if alive "$SUP_PID"; then ctl stop "$1" >/dev/null 2>&1 || true; fi
    rm -f "$RUN/$1.pid"
}
# The code the running services started on (callguard/code_fingerprint.py: the services' files
# and dependency pins, read from the checkout, so a tarball without .git works too). `make
# run` after `git pull` (or any edit) restarts services started on other code: left running,
# they kept the old code under the schema just migrated, until a crash restarted one alone.
CODE_FP=$RUN/services.code
# ... and the settings they started with (.run/callguard.env: callguard.local.env's values for
# them go there), so a changed setting reaches them at the next `make run` as changed code does.
# None recorded yet (a stack started before this was recorded): recorded, nothing restarted.
SETTINGS_FP=$RUN/services.settings
settings_fingerprint() { { cat "$ENV_FILE" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1; }
code_fingerprint() {
    local py=$VENV/bin/python; [ -x "$py" ] || py=python3
    "$py" -m callguard.code_fingerprint "$TOP"
}
fastagi_ready() {  # its metrics port answers: it binds the FastAGI port right after (fastagi.py)
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:${CALLGUARD_METRICS_FASTAGI_PORT:-9462}/metrics" &&
            return 0
        sleep 0.05
    done
    return 0  # not fatal: ari is restarted anyway, and supervisord keeps fastagi going
}
svc_restart_all() {  # one at a time, the fallback first, so calls keep a screening path (REL-1)
    local s
    for s in $SERVICES; do
        ctl restart "$s" >/dev/null 2>&1 || true
        [ "$s" != fastagi ] || fastagi_ready
    done
}
apps_start() {
    sup_start
    local fp sfp was; fp=$(code_fingerprint); sfp=$(settings_fingerprint)
    was=$(cat "$SETTINGS_FP" 2>/dev/null || true)
    if ! sup_any_up $SERVICES; then
        # Services all stopped (apps-stop with Asterisk still up): they start on the current code.
        code_sync
    elif [ "$fp" != "$(cat "$CODE_FP" 2>/dev/null || true)" ]; then
        say "services: code changed since they started; restarting them ($SERVICES) on the new code"
        code_sync
        svc_restart_all
    elif [ -n "$was" ] && [ "$sfp" != "$was" ]; then
        say "services: their settings ($ENV_FILE) changed since they started; restarting them ($SERVICES)"
        svc_restart_all
    fi
    printf '%s\n' "$fp" > "$CODE_FP"
    printf '%s\n' "$sfp" > "$SETTINGS_FP"
    ctl start wakeup $SERVICES >/dev/null 2>&1 || true
    [ -z "$ASTERISK_ROOT" ] || ctl start asterisk-logs >/dev/null 2>&1 || true
    # Ready when the app's websocket session is up (`ari show apps` still lists an app whose
    # process died, so it proves nothing).
    for _ in $(seq 1 200); do
        ast_app_connected && return 0; sleep 0.05
    done
    say "ARI app did not connect; see $LOG/ari.log and $LOG/ari.stdout.log"
    tail -20 "$LOG/ari.log" "$LOG/ari.stdout.log"; exit 1
}
ast_app_connected() { ast -rx 'ari show websocket sessions' 2>/dev/null | grep -Eq 'Up +callguard'; }
sup_any_up() {  # programs...: is any of them running or about to (supervisorctl status)
    local st; st=$(ctl status "$@" 2>/dev/null || true)  # exits non-zero when one is stopped
    case $st in *RUNNING*|*STARTING*|*BACKOFF*) return 0 ;; esac
    return 1
}
sup_quit_if_idle() {  # supervisord goes when it runs nothing: no Asterisk, Prometheus or service
    sup_running || return 0
    sup_any_up asterisk prometheus $SERVICES && return 0
    ctl shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 200); do alive "$SUP_PID" || break; sleep 0.05; done
}
apps_stop() {  # stop the services, and supervisord unless it still runs Asterisk or Prometheus
    local s
    if sup_running; then
        ctl stop $SERVICES >/dev/null 2>&1 || true
        sup_quit_if_idle
    fi
    # Services started by an older stack.sh without supervisord (nohup, PID files).
    for s in $SERVICES; do
        if alive "$RUN/$s.pid"; then
            kill "$(cat "$RUN/$s.pid")" 2>/dev/null || true
            for _ in $(seq 1 100); do alive "$RUN/$s.pid" || break; sleep 0.05; done
            alive "$RUN/$s.pid" && kill -9 "$(cat "$RUN/$s.pid")" 2>/dev/null || true
        fi
        rm -f "$RUN/$s.pid"
    done
}

# ---- Prometheus: scrapes every part on loopback, ships the alert rules (issue 18) -------------
# Supervised (REL-9): a [program:prometheus] in the single node's supervisord (tools/cluster.sh
# has its own, scraping every node); its PID in .run/prometheus.pid, its port in PROM_DIR/listen.
PROM_DIR=$RUN/prometheus
prom_program() {  # config file: the supervisord program section
    local cmd
    cmd="echo \$\$ > $(shq "$RUN/prometheus.pid") && exec prometheus"
    cmd+=" --config.file=$(shq "$1") --storage.tsdb.path=$(shq "$PROM_DIR/data")"
    cmd+=" --storage.tsdb.retention.time=15d --web.listen-address=\$(cat $(shq "$PROM_DIR/listen"))"
    cat <<EOT
[program:prometheus]
command = /bin/sh -c $(shq "$cmd")
directory = $PROM_DIR
autostart = false
autorestart = true
startsecs = 0
startretries = 1000000
stopsignal = TERM
stopwaitsecs = 10
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile = $LOG/prometheus.log
stdout_logfile_maxbytes = 20MB
stdout_logfile_backups = 5
EOT
}
prom_write() {  # out, rules file, more arguments of callguard.prometheus_conf: config and port
    local out=$1; shift
    command -v prometheus >/dev/null || { say "prometheus missing (make deps)"; exit 1; }
    mkdir -p "$PROM_DIR/data"
    "$VENV/bin/python" -m callguard.prometheus_conf "$@" > "$out.new"
    mv "$out.new" "$out"
    printf '127.0.0.1:%s\n' "$("$VENV/bin/python" -m callguard.prometheus_conf --port)" \
        > "$PROM_DIR/listen"
}
prom_ready() {
    for _ in $(seq 1 200); do
        curl -sf "http://$(cat "$PROM_DIR/listen")/-/ready" >/dev/null 2>&1 && return 0; sleep 0.05
    done
    say "Prometheus did not start; see $LOG/prometheus.log"; tail -20 "$LOG/prometheus.log"; exit 1
}
prom_start() {
    prom_write "$PROM_DIR/prometheus.yml" "$TOP/tools/prometheus/rules.yml"
    sup_start
    # One started by an older stack.sh outside supervision gives way to the supervised one.
    if alive "$RUN/prometheus.pid" && [ "$(svc_pid prometheus)" != "$(cat "$RUN/prometheus.pid")" ]; then
        bg_stop prometheus
    fi
    if [ -n "$(svc_pid prometheus)" ]; then ctl signal HUP prometheus >/dev/null; return 0; fi
    svc_start prometheus
    prom_ready
}
prom_stop() {
    if alive "$SUP_PID"; then ctl stop prometheus >/dev/null 2>&1 || true; sup_quit_if_idle; fi
    bg_stop prometheus
}
bg_stop() {  # name: a process outside supervision, stopped by the PID in .run/NAME.pid
    local pf=$RUN/$1.pid
    if alive "$pf"; then
        kill "$(cat "$pf")"
        for _ in $(seq 1 100); do alive "$pf" || break; sleep 0.05; done
        alive "$pf" && kill -9 "$(cat "$pf")" 2>/dev/null || true
    fi
    rm -f "$pf"
}

status() {
    local pgp; pgp=$(pg_pid)
    printf '%-10s %-8s %s\n' part state pid
    if [ -n "$pgp" ] && kill -0 "$pgp" 2>/dev/null; then printf '%-10s %-8s %s\n' postgres up "$pgp"; else printf '%-10s %-8s\n' postgres down; fi
    local p=""
    sup_running && p=$(svc_pid asterisk)
    if ast_running; then printf '%-10s %-8s %s  (%s%s)\n' asterisk up "$(cat "$(ast_pidfile)")" "$(ast -rx 'core show version' | cut -c1-30)" "${p:+, supervised}"; else printf '%-10s %-8s\n' asterisk down; fi
    for s in ari fastagi api; do
        p=""; sup_running && p=$(svc_pid "$s")
        if [ -n "$p" ]; then printf '%-10s %-8s %s  (supervised)\n' "$s" up "$p"; else printf '%-10s %-8s\n' "$s" down; fi
    done
    p=""; sup_running && p=$(svc_pid prometheus)
    if [ -n "$p" ]; then printf '%-10s %-8s %s  (supervised)\n' prometheus up "$p"; else printf '%-10s %-8s\n' prometheus down; fi
    if sup_running; then printf '%-10s %-8s %s\n' supervisor up "$(cat "$SUP_PID")"; else printf '%-10s %-8s\n' supervisor down; fi
}

# tools/cluster.sh sources this file for its functions (issue 12); only a direct run dispatches.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
case "${1:-}" in
    secrets) secrets ;;
    pg-start) pg_start ;;
    pg-stop) pg_stop ;;
    asterisk-install) ast_install ;;
    bench-install) bench_install ;;
    asterisk-start) ast_start ;;
    asterisk-stop) ast_stop ;;
    asterisk-logs-rotate) ast_logs_locked ast_logs_rotate ;;
    asterisk-exec) ast_exec /var/lib/asterisk/cores -U "$AST_RUN_USER" -G "$AST_RUN_USER" -g -f ;;
    apps-start) apps_start ;;
    apps-stop) apps_stop ;;
    app-stop) svc_stop "${2:?name}" ;;
    app-start) case "${2:?name}" in
                   ari|fastagi|api) svc_start "$2" ;;
                   *) say "unknown service $2 (ari, fastagi, api)"; exit 2 ;;
               esac ;;
    prometheus-start) prom_start ;;
    prometheus-stop) prom_stop ;;
    pg-checkpoint) pg_sql CHECKPOINT ;;
    ast) shift; ast "$@" ;;
    app-connected) ast_app_connected ;;
    status) status ;;
    relocate) ;;  # only what every run does first: the state dir when the checkout is out of reach
    state-dir) readlink -f "$TOP/.run" ;;
    code-sync) code_sync ;;
    supervisorctl) shift; ctl "$@" ;;
    *) cat >&2 <<EOT
usage: $0 COMMAND
  status                          each part's state and PID (make status)
  secrets | pg-start | pg-stop | pg-checkpoint
  asterisk-install | asterisk-start | asterisk-stop | asterisk-exec | bench-install
  asterisk-logs-rotate            move Asterisk's logs over 20 MB aside (run every minute)
  apps-start | apps-stop          all the services (apps-start restarts them on changed code)
  app-start NAME | app-stop NAME  one service: ari, fastagi or api
  app-connected                   exit 0 when the ARI app's websocket is up
  prometheus-start | prometheus-stop
  ast ARGS...                     asterisk ARGS (e.g. ast -rx 'core show channels')
  supervisorctl ARGS...           supervisorctl on this stack's supervisord
  state-dir                       where .run is (a state dir for a checkout out of reach)
  code-sync                       refresh the services' code copy (checkout out of reach)
  relocate                        only the state dir set-up every command does first
EOT
       exit 2 ;;
esac
