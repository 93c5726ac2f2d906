#!/usr/bin/env bash
# The sysadmin's own settings, kept across runs: callguard.local.env at the top of the checkout
# (ignored by git, like the secrets: RUN-4, SEC-2). KEY=VALUE lines; blank lines and lines whose
# first character other than a space is `#` are comments. A value is taken as written (no
# expansion, no escapes); one with spaces is quoted whole in "..." or '...'; a comment is never
# on a value's line. callguard.local.env.example lists the keys with what each does.
#
# Which value counts, the first found: make's environment (KEY=... make run), the file, the
# default in tools/stack.sh or callguard/config.py. tools/stack.sh reads the file at every
# command (make run, make cluster, make down, the supervised log loop), so a value there holds
# for every run until it is taken out; the keys callguard/config.py reads go on into the
# generated .run/callguard.env, where the services and the `callguard` CLI read them.
#
# A line that is not KEY=VALUE, or a value the key cannot take, stops the command with one line
# on stderr, FILE:LINE: what is wrong (never the value: DATABASE_URL may hold a password); the
# two commands supervisord runs on its own (REL-9) and those that stop or look (make down, make
# status, ast: tools/stack.sh says which) say it and skip the line. A key the file
# does not take is a warning, and ignored. `tools/local_env.sh check [FILE]` is the
# first step of `make run` (make deps): it prints the warnings and the keys in effect.

# KEY:what its value must be:who reads it. `services`: callguard/config.py (the services, the
# CLI), through .run/callguard.env; `stack`: tools/stack.sh (and tools/cluster.sh) itself.
# The ports Asterisk listens on or calls (CALLGUARD_ARI_PORT, _AMI_PORT, _FASTAGI_PORT) are
# `stack`: tools/stack.sh puts them on both sides, into the Asterisk configuration it installs
# (http.conf, ari.conf, manager.conf, the dialplan's CG_FASTAGI) and into .run/callguard.env
# (CALLGUARD_ARI_URL, _AMI_PORT, _FASTAGI_PORT), so the two always agree.
# Not here on purpose: what tools/stack.sh generates (CALLGUARD_DATABASE_URL from DATABASE_URL,
# the secrets' *_FILE, CALLGUARD_LOG_DIR, CALLGUARD_ASTERISK_ROOT, CALLGUARD_ARI_URL from
# CALLGUARD_ARI_PORT, ...), what asterisk_conf/ fixes on Asterisk's side too (CALLGUARD_ARI_USER,
# _ARI_APP, _AMI_USER, _RECORDINGS_ASTERISK_DIR) and the listening addresses (CALLGUARD_API_HOST,
# _FASTAGI_HOST, Asterisk's bindaddr: loopback only, RUN-4).
LOCAL_ENV_KEYS=(
    DATABASE_URL:pgurl:stack
    CALLGUARD_PG_PORT:port:stack
    CALLGUARD_RECORDINGS_DIR:path:stack
    CALLGUARD_ASTERISK_LOG_MAX:count:stack
    ASTERISK_ROOT:root:stack
    CALLGUARD_SVC_VENV:path:stack
    CALLGUARD_ARI_PORT:port:stack
    CALLGUARD_AMI_PORT:port:stack
    CALLGUARD_FASTAGI_PORT:port:stack
    CALLGUARD_RT_PRIORITY:rtprio:services
    CALLGUARD_MAX_RECORDINGS:count:services
    CALLGUARD_AT_CAPACITY_POLICY:policy:services
    CALLGUARD_RING_TIMEOUT:count:services
    CALLGUARD_API_PORT:port:services
    CALLGUARD_METRICS_ARI_PORT:port:services
    CALLGUARD_METRICS_FASTAGI_PORT:port:services
    CALLGUARD_METRICS_API_PORT:port:services
    CALLGUARD_PROMETHEUS_PORT:port:services
)
# The TCP ports the stack listens on (127.0.0.1 only, RUN-4) with their defaults (tools/stack.sh,
# callguard/config.py): no two may be the same (local_env_ports_check). CALLGUARD_PG_PORT is not
# one: the project-local PostgreSQL has a unix socket only (RUN-2).
LOCAL_ENV_TCP_PORTS=(
    CALLGUARD_ARI_PORT:8088
    CALLGUARD_AMI_PORT:5038
    CALLGUARD_FASTAGI_PORT:4573
    CALLGUARD_API_PORT:8089
    CALLGUARD_METRICS_ARI_PORT:9461
    CALLGUARD_METRICS_FASTAGI_PORT:9462
    CALLGUARD_METRICS_API_PORT:9463
    CALLGUARD_PROMETHEUS_PORT:9460
)
LOCAL_ENV_FROM_FILE=""  # the keys whose value came from the file (local_env_load)
LOCAL_ENV_FROM_ENV=""   # the keys the file sets that make's environment set first
declare -gA LOCAL_ENV_LINE=()  # key → the file's line its value came from (local_env_load)

local_env_keys() {  # [services|stack]: the keys the file takes (those of one reader)
    local e
    for e in "${LOCAL_ENV_KEYS[@]}"; do
        [ -z "${1:-}" ] || [ "${e##*:}" = "$1" ] || continue
        printf '%s\n' "${e%%:*}"
    done
}
local_env_kind() {  # key: what its value must be; nothing for a key the file does not take
    local e
    for e in "${LOCAL_ENV_KEYS[@]}"; do
        [ "${e%%:*}" != "$1" ] || { e=${e#*:}; printf '%s' "${e%%:*}"; return 0; }
    done
}
local_env_invalid() {  # key, value: why the value will not do for the key; nothing when it will
    local n
    case $(local_env_kind "$1") in
        pgurl) [[ $2 =~ ^postgresql(\+[a-z0-9]+)?:// ]] ||
                   echo "$1 must be a postgresql:// URL" ;;
        port) if [[ $2 =~ ^[0-9]{1,5}$ ]]; then n=$((10#$2)); else n=0; fi
              [ "$n" -ge 1 ] && [ "$n" -le 65535 ] || echo "$1 must be a port, 1 to 65535" ;;
        count) [[ $2 =~ ^[0-9]{1,18}$ ]] || echo "$1 must be a whole number" ;;
        rtprio) if [[ $2 =~ ^[0-9]{1,2}$ ]]; then :; else echo "$1 must be 0 (off) to 99"; fi ;;
        policy) case $2 in congestion|unrecorded) ;;
                    *) echo "$1 must be congestion or unrecorded" ;; esac ;;
        path) [[ $2 == /* ]] || echo "$1 must be an absolute path" ;;
        root) [ -z "$2" ] || [[ $2 == /* ]] ||
                  echo "$1 must be an absolute path, or empty for the system Asterisk" ;;
    esac
}
local_env_load() {  # file [warn|lenient]: its values into this shell, under make's environment
    # (variables of this shell only, never exported: a supervisord started from it must not
    # keep a value the file no longer says). Returns 2 after one line on stderr for a
    # malformed line or value; with `warn`, says on stderr what it ignored too. `lenient`, for
    # the commands supervisord runs on its own (Asterisk's start after a crash, the log loop)
    # and those that stop or look (make down, make status): a malformed line is said and
    # skipped, never a stop (REL-9). No file: nothing.
    local file=$1 mode=${2:-} line n=0 key value why
    local -A seen=()
    LOCAL_ENV_FROM_FILE=""; LOCAL_ENV_FROM_ENV=""; LOCAL_ENV_LINE=()
    [ -e "$file" ] || return 0
    if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        echo "$file: not a readable file" >&2
        if [ "$mode" = lenient ]; then return 0; fi
        return 2
    fi
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line=${line%$'\r'}  # a file written on Windows
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        key=""; why=""
        if [[ ! $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            why="not KEY=VALUE (a comment is a line of its own starting with #)"
        else
            key=${BASH_REMATCH[1]}; value=${BASH_REMATCH[2]}
            value=${value%"${value##*[![:space:]]}"}  # trailing blanks
            case $value in
                \"*|\'*)
                    if [ ${#value} -lt 2 ] || [ "${value: -1}" != "${value:0:1}" ] ||
                       [[ ${value:1:${#value}-2} == *"${value:0:1}"* ]]; then
                        why="$key: a quoted value must end with its quote, nothing after it"
                    else
                        value=${value:1:${#value}-2}
                    fi ;;
                *[[:space:]]*)
                    why="$key: a value with spaces must be quoted (a comment goes on a line of its own)" ;;
            esac
            if [ -z "$why" ] && [ -z "$(local_env_kind "$key")" ]; then
                if [ "$mode" = warn ]; then
                    why=""; [ "$key" != CALLGUARD_DATABASE_URL ] || why=" (DATABASE_URL is)"
                    echo "$file:$n: warning: $key is not a key this file takes$why; ignored (callguard.local.env.example lists them)" >&2
                fi
                continue
            fi
            [ -n "$why" ] || why=$(local_env_invalid "$key" "$value")
        fi
        if [ -n "$why" ]; then
            [ "$mode" = lenient ] || { echo "$file:$n: $why" >&2; return 2; }
            echo "$file:$n: $why; line ignored" >&2
            continue
        fi
        if [ -n "${seen[$key]:-}" ] && [ "$mode" = warn ]; then
            echo "$file:$n: warning: $key again (line ${seen[$key]}); this line counts" >&2
        fi
        seen[$key]=$n
        # Set before this file was read: make's environment, which wins.
        if [[ " $LOCAL_ENV_FROM_ENV " == *" $key "* ]]; then continue; fi
        if [[ " $LOCAL_ENV_FROM_FILE " != *" $key "* ]] && [ -n "${!key+x}" ]; then
            LOCAL_ENV_FROM_ENV+=" $key"; continue
        fi
        printf -v "$key" '%s' "$value"
        LOCAL_ENV_LINE[$key]=$n
        [[ " $LOCAL_ENV_FROM_FILE " == *" $key "* ]] || LOCAL_ENV_FROM_FILE+=" $key"
    done < "$file"
    LOCAL_ENV_FROM_FILE=${LOCAL_ENV_FROM_FILE# }; LOCAL_ENV_FROM_ENV=${LOCAL_ENV_FROM_ENV# }
    # DATABASE_URL may hold a password: not for every user to read.
    if [ "$mode" = warn ] && [ $(( 0$(stat -c %a "$file") & 4 )) = 4 ] &&
       [[ ${DATABASE_URL:-} =~ ://[^/@]*:[^/@]*@ ]] && [[ " $LOCAL_ENV_FROM_FILE " == *" DATABASE_URL "* ]]; then
        echo "$file: warning: every user may read it and DATABASE_URL holds a password: chmod 600 $file" >&2
    fi
}
local_env_port() {  # key, default: the port in effect, as a plain number (a value the key
    # cannot take, from make's environment under a lenient load: the default)
    local v=${!1:-$2}
    [ -z "$(local_env_invalid "$1" "$v")" ] || v=$2
    printf '%s' "$((10#$v))"
}
local_env_ports_check() {  # file: every TCP port of LOCAL_ENV_TCP_PORTS in effect is a port
    # and no two are the same; else one line on stderr naming the key (FILE:LINE when the file
    # set it) and returns 2. Run after local_env_load.
    local e key def v n other
    local -A owner=()
    for e in "${LOCAL_ENV_TCP_PORTS[@]}"; do
        key=${e%%:*}; def=${e#*:}; v=${!key:-$def}
        if [ -n "$(local_env_invalid "$key" "$v")" ]; then
            echo "$(local_env_where "$1" "$key"): $key must be a port, 1 to 65535" >&2; return 2
        fi
        n=$((10#$v))
        if [ -n "${owner[$n]:-}" ]; then
            other=${owner[$n]}
            # said at the key set last: make's environment, else the file's later line
            if [ "$(local_env_rank "$other")" -gt "$(local_env_rank "$key")" ]; then
                other=$key; key=${owner[$n]}
            fi
            [ "$(local_env_rank "$other")" != 0 ] || other+=" (its default)"
            echo "$(local_env_where "$1" "$key"): $key=$n: $other has that port too; each port of 127.0.0.1 once, set one of them to a free port" >&2
            return 2
        fi
        owner[$n]=$key
    done
}
local_env_rank() {  # key: 0 its default, the file's line, make's environment above every line
    if [ -n "${LOCAL_ENV_LINE[$1]:-}" ]; then printf '%s' "${LOCAL_ENV_LINE[$1]}"
    elif [ -n "${!1:-}" ]; then printf '%s' 1000000000
    else printf 0; fi
}
local_env_where() {  # file, key: where the key's value comes from (FILE:LINE), for a message
    if [ -n "${LOCAL_ENV_LINE[$2]:-}" ]; then printf '%s:%s' "$1" "${LOCAL_ENV_LINE[$2]}"
    elif [ -n "${!2:-}" ]; then printf "make's environment"
    else printf 'the defaults'; fi
}
local_env_services() {  # the services' keys that are set, as .run/callguard.env's lines
    local k
    for k in $(local_env_keys services); do
        [ -n "${!k+x}" ] || continue
        [[ ${!k} != *$'\n'* ]] || { echo "$k: a value of one line, please" >&2; return 2; }
        printf '%s=%s\n' "$k" "${!k}"
    done
}
local_env_check() {  # [file]: make's first step: the warnings, then what is in effect
    local file=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/callguard.local.env}
    local_env_load "$file" warn || return
    local_env_ports_check "$file" || return
    [ -e "$file" ] || return 0
    local instead=""
    [ -z "$LOCAL_ENV_FROM_ENV" ] || instead=" (from make's environment instead: $LOCAL_ENV_FROM_ENV)"
    printf '%s: %s%s\n' "$file" "${LOCAL_ENV_FROM_FILE:-no setting}" "$instead"
}

# tools/stack.sh sources this file; run, it checks the file.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
set -euo pipefail
case "${1:-}" in
    check) local_env_check "${2:-}" ;;
    *) echo "usage: $0 check [FILE]   (default: callguard.local.env at the checkout's top)" >&2; exit 2 ;;
esac
