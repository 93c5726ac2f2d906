#!/usr/bin/env bash
# More than one node (issue 12, CLU-1..3): Kamailio (dispatcher) on 127.0.0.1:5060 in front of
# N Asterisk nodes, each with its own loopback SIP address, ARI/HTTP, AMI, RTP range, run/log/
# spool dirs, ARI app, FastAGI fallback and API; all share the one PostgreSQL and the one
# recordings store. Called by the Makefile (`make cluster NODES=2`, `make down`, `make status`).
#   tools/cluster.sh up N | down | status | restore-single | ast NODE ARGS...
# The node configuration is generated from asterisk_conf/ (never forked): the files are copied
# into the root's /etc/asterisk/nodes/<node>/ and only addresses, ports and directories change.
set -euo pipefail
# shellcheck source=tools/stack.sh
source "$(dirname "$0")/stack.sh"
CL=$RUN/cluster
NODES_DIR=$RUN/nodes
CL_SUP_CONF=$CL/supervisord.conf
CL_SUP_PID=$CL/supervisord.pid
KAM_CFG=$CL/kamailio.cfg
KAM_CTL=$CL/kamailio_ctl
KAM_PROM_PORT=9464  # Kamailio's /metrics (xhttp_prom) for Prometheus (issue 18)
mkdir -p "$CL" "$NODES_DIR"

# Node n (1..): SIP 127.0.0.(10+n):5060; ARI/HTTP 127.0.0.1:(8100+n); AMI 5100+n; FastAGI
# 4580+n; API 8190+n; metrics 9470+n / 9480+n / 9490+n; RTP 20000+(n-1)*4000 .. +3999.
node_ip() { printf '127.0.0.%d' $((10 + $1)); }
node_conf() { printf '/etc/asterisk/nodes/n%d/asterisk.conf' "$1"; }
nodes() { cat "$CL/nodes" 2>/dev/null || true; }
nast() {  # n, args...: the CLI of node n's Asterisk
    local n=$1; shift
    if [ -n "$ASTERISK_ROOT" ]; then chroot "$ASTERISK_ROOT" asterisk -C "$(node_conf "$n")" "$@"
    else asterisk -C "$(node_conf "$n")" "$@"; fi
}
node_pidfile() { printf '%s/run/asterisk-n%d/asterisk.pid' "$ASTERISK_ROOT" "$1"; }
node_running() { alive "$(node_pidfile "$1")" && nast "$1" -rx 'core show uptime' >/dev/null 2>&1; }

node_install() {  # n: generate node n's Asterisk configuration and its services' settings
    local n=$1 ip; ip=$(node_ip "$n")
    local base; base=$(ast_etc)
    local etc=$base/nodes/n$n
    mkdir -p "$etc" "$ASTERISK_ROOT/run/asterisk-n$n" "$ASTERISK_ROOT/var/log/asterisk-n$n" \
             "$ASTERISK_ROOT/var/spool/asterisk-n$n" "$ASTERISK_ROOT/var/lib/asterisk-n$n"
    # Asterisk (dropped to its own account, SEC-4) reads and writes these as itself.
    ast_owns "$ASTERISK_ROOT/run/asterisk-n$n" "$ASTERISK_ROOT/var/log/asterisk-n$n" \
             "$ASTERISK_ROOT/var/spool/asterisk-n$n" "$ASTERISK_ROOT/var/lib/asterisk-n$n"
    find "$etc" -maxdepth 1 -name '*.conf' -delete
    # Everything ast_install put in place (asterisk_conf/, generated users, the site) ...
    cp "$base"/*.conf "$etc/"
    chmod 0600 "$etc/ari_users.conf" "$etc/manager_users.conf" "$etc/extensions_agi_secret.conf"
    # ... with the node's own directories (a real [directories], not the (!) template) ...
    sed -i -e 's/^\[directories\](!)/[directories]/' \
        -e "s#^astetcdir => .*#astetcdir => /etc/asterisk/nodes/n$n#" \
        -e "s#^astrundir => .*#astrundir => /run/asterisk-n$n#" \
        -e "s#^astlogdir => .*#astlogdir => /var/log/asterisk-n$n#" \
        -e "s#^astspooldir => .*#astspooldir => /var/spool/asterisk-n$n#" \
        -e "s#^astdbdir => .*#astdbdir => /var/lib/asterisk-n$n#" "$etc/asterisk.conf"
    # ... its own system name: channel unique ids become n<n>-<epoch>.<seq>. Without it two
    # nodes started in the same second hand out the same ids, and the call rows, recording
    # rows and file names keyed by them collide across nodes (CLU-3; found by the tests).
    sed -i -e "s/^\[options\]$/[options]\nsystemname = n$n/" "$etc/asterisk.conf"
    # ... its address, ports and RTP range ...
    sed -i -e "s/^bind = 127.0.0.1:5060/bind = $ip:5060/" "$etc/pjsip.conf"
    # (the single node's ports there are CALLGUARD_ARI_PORT's and CALLGUARD_AMI_PORT's, 8088
    # and 5038 by default: ast_install; a node's are its own whatever they are)
    sed -i -e "s/^bindport = [0-9]*$/bindport = $((8100 + n))/" "$etc/http.conf"
    sed -i -e "s#^allowed_origins = .*#allowed_origins = http://127.0.0.1:$((8100 + n))#" "$etc/ari.conf"
    sed -i -e "s/^port = [0-9]*$/port = $((5100 + n))/" "$etc/manager.conf"
    sed -i -e "s/^rtpstart = .*/rtpstart = $((20000 + (n - 1) * 4000))/" \
        -e "s/^rtpend = .*/rtpend = $((20000 + (n - 1) * 4000 + 3999))/" "$etc/rtp.conf"
    (umask 077; printf 'CG_FASTAGI = agi://127.0.0.1:%d/%s\n' $((4580 + n)) \
        "$(cat "$RUN/secrets/agi.secret")" > "$etc/extensions_agi_secret.conf")
    # ... and identity through the proxy: the source address Kamailio puts in X-Src-IP, header
    # identification before ip. Every request reaches a node from Kamailio, so `match` (the
    # source address) would identify nothing; match_header replaces it.
    sed -i -e 's/^endpoint_identifier_order = .*/endpoint_identifier_order = header,ip/' \
        -e 's/^match = \(.*\)$/match_header = X-Src-IP: \1/' "$etc/pjsip.conf"
    sed -i -e 's/^match = \(.*\)$/match_header = X-Src-IP: \1/' "$etc/pjsip_site.conf"
    # The node's services: the shared settings with the node's own ports and directories.
    local nd=$NODES_DIR/n$n
    mkdir -p "$nd/log" "$nd/journal"
    svc_logs "$nd/log"
    (umask 077; { grep -v -e '^CALLGUARD_ARI_URL=' -e '^CALLGUARD_LOG_DIR=' \
                      -e '^CALLGUARD_AMI_PORT=' -e '^CALLGUARD_FASTAGI_PORT=' "$ENV_FILE"; cat <<EOT
CALLGUARD_ARI_URL=http://127.0.0.1:$((8100 + n))
CALLGUARD_LOG_DIR=$nd/log
CALLGUARD_ASTERISK_CONF=$(node_conf "$n")
CALLGUARD_FASTAGI_PORT=$((4580 + n))
CALLGUARD_API_PORT=$((8190 + n))
CALLGUARD_AMI_PORT=$((5100 + n))
CALLGUARD_METRICS_ARI_PORT=$((9470 + n))
CALLGUARD_METRICS_FASTAGI_PORT=$((9480 + n))
CALLGUARD_METRICS_API_PORT=$((9490 + n))
CALLGUARD_NODE=n$n
EOT
    } > "$nd/callguard.env")
    # Read by the node's services as their own user; their journal theirs alone (SEC-4).
    chmod 0700 "$nd/journal"
    chmod -R o= "$etc"
    ast_owns "$etc"
    ami_switch "$etc"  # the node's own AMI switch (off), like the main one's
    svc_owns "$nd/callguard.env" "$nd/journal"
}

node_start() {  # n
    local n=$1
    if node_running "$n"; then
        nast "$n" -rx 'module reload' >/dev/null; nast "$n" -rx 'dialplan reload' >/dev/null
        nast "$n" -rx 'cli reload permissions' >/dev/null  # (not part of `module reload`)
        ast_ctl_group "$ASTERISK_ROOT/run/asterisk-n$n/asterisk.ctl"
        return
    fi
    # Its last log kept aside (messages.log.1 ... .5), never emptied, like the single node's
    # (REL-9); a system Asterisk's node logs too, which no logrotate of its package knows.
    ast_log_started "$ASTERISK_ROOT/var/log/asterisk-n$n"
    ast_launch "/var/lib/asterisk-n$n/cores" -C "$(node_conf "$n")" -U "$AST_RUN_USER" -G "$AST_RUN_USER" -g -F
    for _ in $(seq 1 200); do nast "$n" -rx 'core waitfullybooted' >/dev/null 2>&1 && break; sleep 0.05; done
    nast "$n" -rx 'core waitfullybooted' >/dev/null
}
node_stop() {  # n
    local n=$1 pf; pf=$(node_pidfile "$n")
    if node_running "$n"; then nast "$n" -rx 'core stop now' >/dev/null 2>&1 || true; fi
    for _ in $(seq 1 100); do alive "$pf" || break; sleep 0.05; done
    if alive "$pf"; then kill -9 "$(cat "$pf")" 2>/dev/null || true; fi
    rm -f "$pf"
}

# ---- the nodes' services and Kamailio under one supervisord (REL-9) ---------------------------
cl_sup_conf() {
    local n s
    {
        cat <<EOT
; Generated by tools/cluster.sh (issue 12). Owner-only unix control socket, no TCP.
[unix_http_server]
file = $CL/supervisor.sock
chmod = 0700

[supervisord]
logfile = $CL/supervisord.log
pidfile = $CL_SUP_PID
directory = $RUN
minfds = 4096
nocleanup = true
childlogdir = $CL

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://$CL/supervisor.sock

[program:wakeup]
command = $WAKEUP_CMD
startsecs = 0
stopasgroup = true
killasgroup = true
stdout_logfile = NONE

[program:kamailio]
command = $(rt_chrt)$(command -v kamailio) -f $(shq "$KAM_CFG") -DD -E -P $(shq "$CL/kamailio.pid")
startsecs = 0
startretries = 1000000
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile = $CL/kamailio.log
stdout_logfile_maxbytes = 20MB
EOT
        for n in $(nodes); do
            for s in $SERVICES; do
                cat <<EOT

[program:$s-n$n]
$(svc_program "$s" "$NODES_DIR/n$n/callguard.env" "" "$NODES_DIR/n$n/log")
umask = 027
directory = $RUN
startsecs = 0
startretries = 1000000
stopsignal = TERM
stopwaitsecs = 5
stopasgroup = true
killasgroup = true
redirect_stderr = true
stdout_logfile_maxbytes = 20MB
EOT
            done
        done
        # Prometheus scraping every node and Kamailio (issue 18); written by cluster_up.
        printf '\n%s\n' "$(prom_program "$CL/prometheus.yml")"
    } > "$CL_SUP_CONF"
}
cctl() { "$SVC_VENV/bin/supervisorctl" -c "$CL_SUP_CONF" "$@"; }
cl_sup_running() { alive "$CL_SUP_PID" && cctl pid >/dev/null 2>&1; }

kam_conf() {
    local n
    : > "$CL/dispatcher.list.new"
    for n in $(nodes); do printf '1 sip:%s:5060 0 0\n' "$(node_ip "$n")" >> "$CL/dispatcher.list.new"; done
    mv "$CL/dispatcher.list.new" "$CL/dispatcher.list"
    # Each node's dispatcher state as a gauge, set at every scrape (xhttp_prom, issue 18).
    {
        echo 'route[DISPATCHER_METRICS] {'
        for n in $(nodes); do
            printf '    if (ds_is_active("1", "sip:%s:5060")) { $var(up) = "1"; } else { $var(up) = "0"; }\n' "$(node_ip "$n")"
            printf '    prom_gauge_set("dispatcher_destination_active", "$var(up)", "1", "sip:%s:5060", "n%d");\n' "$(node_ip "$n")" "$n"
        done
        echo '}'
    } > "$CL/dispatcher_metrics.cfg"
    sed -e "s#@DISPATCHER_LIST@#$CL/dispatcher.list#" -e "s#@CTL@#$KAM_CTL#" \
        -e "s#@PROM_PORT@#$KAM_PROM_PORT#g" -e "s#@DS_METRICS@#$CL/dispatcher_metrics.cfg#" \
        -e "s#@MODPATH@#$(dirname "$(find /usr/lib -name dispatcher.so -path '*kamailio*' | head -1)")#" \
        tools/kamailio/kamailio.cfg > "$KAM_CFG"
    kamailio -c -f "$KAM_CFG" >"$CL/kamailio-check.log" 2>&1 || { tail -20 "$CL/kamailio-check.log"; exit 1; }
}
kam() { kamcmd -s "unix:$KAM_CTL" "$@"; }

cluster_up() {
    local count=${1:-2} n
    [[ $count =~ ^[1-9]$ ]] || { say "NODES must be 1..9"; exit 2; }
    command -v kamailio >/dev/null || { say "kamailio missing (make deps)"; exit 1; }
    # The single-node Asterisk holds 127.0.0.1:5060, Kamailio's address: one or the other.
    # Its Prometheus goes too (the cluster's scrapes every node on the same port), and with
    # all three its supervisord.
    prom_stop; apps_stop; ast_stop
    seq 1 "$count" > "$CL/nodes"
    ast_install
    "$VENV/bin/callguard" site provision >/dev/null
    for n in $(nodes); do node_install "$n"; node_start "$n"; done
    for n in $(nodes); do
        CALLGUARD_ENV=$NODES_DIR/n$n/callguard.env "$VENV/bin/callguard" site sync-asterisk >/dev/null
    done
    kam_conf
    local envs=()
    for n in $(nodes); do envs+=("n$n=$NODES_DIR/n$n/callguard.env"); done
    prom_write "$CL/prometheus.yml" "$TOP/tools/prometheus/rules.yml" \
        --kamailio "127.0.0.1:$KAM_PROM_PORT" "${envs[@]}"
    cl_sup_conf
    if cl_sup_running; then
        cctl update >/dev/null; cctl restart kamailio >/dev/null
        cctl signal HUP prometheus >/dev/null 2>&1 || true  # the nodes may have changed
    else  # without the services' settings in its environment, as the single node's (RUN-4)
        local files=("$ENV_FILE")
        for n in $(nodes); do files+=("$NODES_DIR/n$n/callguard.env"); done
        code_sync; sup_launch "$CL_SUP_CONF" "${files[@]}"
    fi
    for _ in $(seq 1 100); do cl_sup_running && break; sleep 0.05; done
    cctl start all >/dev/null 2>&1 || true
    prom_ready
    for n in $(nodes); do
        local ok=0
        for _ in $(seq 1 300); do
            if nast "$n" -rx 'ari show websocket sessions' 2>/dev/null | grep -Eq 'Up +callguard'; then ok=1; break; fi
            sleep 0.05
        done
        [ $ok = 1 ] || { say "node n$n: ARI app did not connect; see $NODES_DIR/n$n/log/ari.log"; exit 1; }
    done
    # Ready when Kamailio's OPTIONS probes see every node active.
    for _ in $(seq 1 100); do
        [ "$(kam dispatcher.list 2>/dev/null | grep -c 'FLAGS: AP')" = "$count" ] && break; sleep 0.1
    done
    cluster_status
}

cluster_down() {
    local n
    if cl_sup_running; then
        cctl shutdown >/dev/null 2>&1 || true
        for _ in $(seq 1 200); do alive "$CL_SUP_PID" || break; sleep 0.05; done
    fi
    for n in $(nodes); do node_stop "$n"; done
    rm -f "$CL/nodes"
}

cluster_status() {
    local n p s
    [ -s "$CL/nodes" ] || return 0
    printf '%-16s %-8s %s\n' "cluster part" state pid
    p=""; cl_sup_running && p=$(cctl pid kamailio 2>/dev/null || true)
    if [[ $p =~ ^[1-9][0-9]*$ ]]; then printf '%-16s %-8s %s  (127.0.0.1:5060)\n' kamailio up "$p"; else printf '%-16s %-8s\n' kamailio down; fi
    for n in $(nodes); do
        if node_running "$n"; then printf '%-16s %-8s %s  (%s:5060)\n' "n$n asterisk" up "$(cat "$(node_pidfile "$n")")" "$(node_ip "$n")"
        else printf '%-16s %-8s\n' "n$n asterisk" down; fi
        for s in $SERVICES; do
            p=""; cl_sup_running && p=$(cctl pid "$s-n$n" 2>/dev/null || true)
            if [[ $p =~ ^[1-9][0-9]*$ ]]; then printf '%-16s %-8s %s  (supervised)\n' "n$n $s" up "$p"; else printf '%-16s %-8s\n' "n$n $s" down; fi
        done
    done
    p=""; cl_sup_running && p=$(cctl pid prometheus 2>/dev/null || true)
    if [[ $p =~ ^[1-9][0-9]*$ ]]; then printf '%-16s %-8s %s  (supervised, %s)\n' prometheus up "$p" "$(cat "$PROM_DIR/listen")"; else printf '%-16s %-8s\n' prometheus down; fi
    if cl_sup_running; then printf '%-16s %-8s %s\n' "supervisor" up "$(cat "$CL_SUP_PID")"; fi
}

restore_single() {  # back to `make run`'s one node (after the cluster tests)
    cluster_down
    ast_start
    "$VENV/bin/callguard" site sync-asterisk >/dev/null
    apps_start
    prom_start
}

case "${1:-}" in
    up) cluster_up "${2:-2}" ;;
    down) cluster_down ;;
    status) cluster_status ;;
    restore-single) restore_single ;;
    ast) shift; n=${1:?node}; shift; nast "${n#n}" "$@" ;;
    kamcmd) shift; kam "$@" ;;
    *) echo "usage: $0 up N|down|status|restore-single|ast NODE ARGS...|kamcmd ARGS..." >&2; exit 2 ;;
esac
