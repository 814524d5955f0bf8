#!/usr/bin/env bash
# Re-enact docker/compose.yaml WITHOUT a Docker engine, then place real SIP calls through it.
#
#   sudo docker/verify-native.sh [WORKDIR]
#
# What it does, following compose.yaml and the Dockerfile as written (it reads both files, so it
# cannot drift from them):
#   1. builds the controller image's contents the Dockerfile's way: the build context filtered
#      by Dockerfile.dockerignore, `pip wheel --no-deps`, a fresh venv, `pip install` of the
#      wheel (needs PyPI, like `docker build`);
#   2. enters a private mount + network namespace (unshare; nothing leaks to the host, no port
#      clashes with other Asterisks: the namespace has its own loopback) and lays out the
#      containers' file systems at their real paths: /etc/asterisk = Asterisk's sample configs
#      (what the image's `make samples` installs, when ASTERISK_SAMPLES is given) with exactly
#      the files compose mounts bound read-only on top; named volumes under WORKDIR/volumes;
#      /etc/hosts maps the service name `postgres`; users asterisk (1000) and asterisk-recorder
#      (10001) exist only inside;
#   3. starts PostgreSQL 15 as the postgres image would (POSTGRES_* of compose, scram for TCP),
#      Asterisk with the image's CMD (-U asterisk), waits for both compose health checks, then
#      starts the controller as uid 10001 with ONLY the Dockerfile's ENV + compose's
#      environment and its ENTRYPOINT + CMD, and waits for compose's and the Dockerfile's
#      health checks;
#   4. calls 100, 101, 102, 103 and 200 of etc/extensions.conf with SIPp as the `softphone` of
#      etc/pjsip.conf (digest auth, RFC 4733 keys, speech after the key; for 200 the softphone
#      registers and answers) and checks the ledger
#      (`asterisk-recorder ledger tail/verify`, as `docker compose exec` would run them) against
#      the wav files in the recordings volume.
# It builds nothing of Asterisk: bring an installed Asterisk 22 and PostgreSQL 15.
#
# Needs: root (unshare, mount), util-linux, iproute2, curl, sipp (Debian: sip-tester), Python
# 3.11 (PYTHON), PostgreSQL 15 server binaries (PG_BIN), an installed Asterisk 22 (ASTERISK_BIN).
# Tunables: ASTERISK_BIN (/opt/asterisk22/sbin/asterisk), ASTERISK_MODDIR (<prefix>/lib/asterisk/
# modules), ASTERISK_DATADIR (<prefix>/var/lib/asterisk), ASTERISK_SAMPLES (a configs/samples
# directory of the same Asterisk source; unset: only what compose mounts plus a default
# asterisk.conf), PG_BIN (/usr/lib/postgresql/15/bin), PYTHON (python3.11), SIPP (sipp),
# SIPP_PCAP_DIR (/usr/share/sip-tester), CONTROLLER_VENV (reuse a venv built by an earlier run),
# KEEP=1 (leave everything running in the namespace and print how to enter it; stop it with
# kill of the printed pid). Exit 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

ASTERISK_BIN="${ASTERISK_BIN:-/opt/asterisk22/sbin/asterisk}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PYTHON="${PYTHON:-python3.11}"
SIPP="${SIPP:-sipp}"
SIPP_PCAP_DIR="${SIPP_PCAP_DIR:-/usr/share/sip-tester}"

say() { printf '[verify-native] %s\n' "$*"; }
die() { printf 'verify-native: %s\n' "$*" >&2; exit 2; }

# ------------------------------------------------------------------------------------------------
# Outside the namespace: checks and the controller "image".
outside() {
    [[ $EUID -eq 0 ]] || die "run as root (it needs private mount and network namespaces)"
    [[ -x "$ASTERISK_BIN" ]] || die "no Asterisk binary at $ASTERISK_BIN (set ASTERISK_BIN)"
    [[ -x "$PG_BIN/initdb" ]] || die "no PostgreSQL server binaries in $PG_BIN (set PG_BIN)"
    command -v "$PYTHON" >/dev/null || die "no $PYTHON (set PYTHON to a Python 3.11)"
    command -v "$SIPP" >/dev/null || die "no sipp (Debian package sip-tester; or set SIPP)"
    for tool in unshare setpriv runuser ip curl; do
        command -v "$tool" >/dev/null || die "missing $tool"
    done
    local work="${1:-$(mktemp -d /tmp/asterisk-recorder-verify.XXXXXX)}"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    case "$work" in /etc/* | /var/* | /run/*) die "WORKDIR must not be under /etc, /var or /run" ;; esac
    chmod 0755 "$work"
    mkdir -p "$work/logs"

    local venv="${CONTROLLER_VENV:-}"
    if [[ -z "$venv" ]]; then
        venv="$work/image/venv"
        say "building the controller the Dockerfile's way (context filtered by Dockerfile.dockerignore)"
        local ctx="$work/image/context"
        rm -rf "$ctx" && mkdir -p "$ctx"
        cp "$repo/pyproject.toml" "$repo/README.md" "$ctx/"
        cp -r "$repo/asterisk_recorder" "$ctx/"
        find "$ctx/asterisk_recorder" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
        "$PYTHON" -m venv "$work/image/builder"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/image/builder/bin/pip" wheel --no-cache-dir --no-deps \
            --wheel-dir "$work/image/wheels" "$ctx" >"$work/logs/pip-wheel.log" 2>&1
        "$PYTHON" -m venv "$venv"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --no-cache-dir "$work"/image/wheels/*.whl \
            >"$work/logs/pip-install.log" 2>&1
    fi
    [[ -x "$venv/bin/asterisk-recorder" ]] || die "no asterisk-recorder in $venv"
    chmod -R a+rX "$venv"
    say "controller: $("$venv/bin/asterisk-recorder" --version 2>/dev/null || echo installed) in $venv"

    export VERIFY_VENV="$venv"
    if [[ "${KEEP:-0}" == 1 ]]; then
        unshare --mount --net --propagation private -- bash "$here/verify-native.sh" --inside "$work" \
            </dev/null >"$work/logs/verify.out" 2>&1 &
        say "running in the background (pid $!); progress in $work/logs/verify.out"
        return 0
    fi
    exec unshare --mount --net --propagation private -- bash "$here/verify-native.sh" --inside "$work"
}

# ------------------------------------------------------------------------------------------------
# Inside the namespace.
FAILED=0
check() {  # check "what" command...
    local what="$1"; shift
    if "$@"; then say "PASS  $what"; else say "FAIL  $what"; FAILED=1; fi
}

wait_for() {  # wait_for SECONDS command...
    local seconds="$1"; shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

bind_ro() {  # bind_ro SOURCE TARGET
    if [[ -d "$1" ]]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")"; : >>"$2"; fi
    mount --bind "$1" "$2"
    mount -o remount,bind,ro "$2"
}

mount_volumes() {  # mount_volumes VOLUME_SPEC... (compose short syntax)
    local spec src dst mode
    for spec in "$@"; do
        IFS=: read -r src dst mode <<<"$spec"
        if [[ "$src" == .* || "$src" == /* ]]; then
            [[ "$src" == /* ]] || src="$repo/docker/$src"
            [[ -e "$src" ]] || { say "FAIL  compose mounts $src, which does not exist"; FAILED=1; continue; }
            if [[ "$mode" == ro ]]; then bind_ro "$src" "$dst"; else mkdir -p "$dst"; mount --bind "$src" "$dst"; fi
        else
            mkdir -p "$work/volumes/$src" "$dst"
            mount --bind "$work/volumes/$src" "$dst"
        fi
    done
}

as_controller() {  # the container's user and environment, like `docker compose exec`
    (cd "$IMAGE_WORKDIR" && exec env -i "${controller_env[@]}" \
        setpriv --reuid="${IMAGE_USER%%:*}" --regid="${IMAGE_USER##*:}" --clear-groups -- "$@")
}

controller_pid="" asterisk_pid="" pgdata=""
cleanup() {  # whatever is still running in the namespace when the script ends early
    [[ -n "$controller_pid" ]] && kill -TERM "$controller_pid" 2>/dev/null
    [[ -n "$asterisk_pid" ]] && kill -TERM "$asterisk_pid" 2>/dev/null
    [[ -n "$pgdata" ]] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
    wait 2>/dev/null
}

inside() {
    work="$1"
    trap cleanup EXIT
    local venv="$VERIFY_VENV"
    ip link set lo up
    eval "$(python3 "$here/verify-native/compose_facts.py" "$here/compose.yaml" "$here/Dockerfile")"

    # Private copies of /etc, /var and /run (overlays: the host's stay untouched).
    local d
    for d in etc var run; do
        mkdir -p "$work/ns/$d/upper" "$work/ns/$d/work"
        mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/ns/$d/upper,workdir=$work/ns/$d/work" "/$d"
    done
    echo 'asterisk:x:1000:1000:Asterisk (image):/home/asterisk:/usr/sbin/nologin' >>/etc/passwd
    echo 'asterisk:x:1000:' >>/etc/group
    echo "asterisk-recorder:x:${IMAGE_USER%%:*}:${IMAGE_USER##*:}::$IMAGE_WORKDIR:/usr/sbin/nologin" >>/etc/passwd
    echo "asterisk-recorder:x:${IMAGE_USER##*:}:" >>/etc/group
    echo '127.0.0.2 postgres' >>/etc/hosts

    # --- postgres service (postgres:15 entrypoint semantics) ---------------------------------
    local -A pg_env=()
    local kv
    for kv in "${POSTGRES_ENV[@]}"; do pg_env[${kv%%=*}]="${kv#*=}"; done
    mount_volumes "${POSTGRES_VOLUMES[@]}"
    pgdata=/var/lib/postgresql/data
    chown postgres: "$pgdata" && chmod 0700 "$pgdata"
    mkdir -p /var/run/postgresql && chown postgres: /var/run/postgresql
    printf '%s\n' "${pg_env[POSTGRES_PASSWORD]}" >"$work/ns/pwfile"
    chown postgres: "$work/ns/pwfile" && chmod 0600 "$work/ns/pwfile"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$pgdata" --username="${pg_env[POSTGRES_USER]}" \
        --pwfile="$work/ns/pwfile" --auth-local=trust --auth-host=scram-sha-256 >"$work/logs/initdb.log"
    rm -f "$work/ns/pwfile"
    echo 'host all all all scram-sha-256' >>"$pgdata/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$pgdata/postgresql.conf"
    install -o postgres -m 0644 /dev/null "$work/logs/postgres.log"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pgdata" -l "$work/logs/postgres.log" -w \
        -o "-c port=5432 -c unix_socket_directories=/var/run/postgresql" start >/dev/null
    runuser -u postgres -- "$PG_BIN/psql" -qAt -h /var/run/postgresql -U "${pg_env[POSTGRES_USER]}" \
        -d postgres -c "CREATE DATABASE \"${pg_env[POSTGRES_DB]}\"" >/dev/null
    check "postgres health check: ${POSTGRES_HEALTH[*]}" \
        wait_for 30 env PATH="$PG_BIN:$PATH" "${POSTGRES_HEALTH[@]}"

    # --- asterisk service (andrius/asterisk image layout) -------------------------------------
    local prefix moddir datadir
    prefix="$(cd "$(dirname "$ASTERISK_BIN")/.." && pwd)"
    moddir="${ASTERISK_MODDIR:-$prefix/lib/asterisk/modules}"
    datadir="${ASTERISK_DATADIR:-$prefix/var/lib/asterisk}"
    mkdir -p /etc/asterisk
    if [[ -n "${ASTERISK_SAMPLES:-}" ]]; then
        local sample
        for sample in "$ASTERISK_SAMPLES"/*.sample; do
            install -m 0644 "$sample" "/etc/asterisk/$(basename "$sample" .sample)"
        done
    else
        printf '[directories]\nastetcdir => /etc/asterisk\nastvarlibdir => /var/lib/asterisk\nastdbdir => /var/lib/asterisk\nastkeydir => /var/lib/asterisk\nastdatadir => /var/lib/asterisk\nastagidir => /var/lib/asterisk/agi-bin\nastspooldir => /var/spool/asterisk\nastrundir => /var/run/asterisk\nastlogdir => /var/log/asterisk\nastcachedir => /var/cache/asterisk\n' >/etc/asterisk/asterisk.conf
    fi
    # The image's Asterisk has /etc/asterisk, /var/lib/asterisk ... compiled in; the sample's
    # [directories](!) is a template that changes nothing. Ours was built with another prefix:
    # make the image's paths explicit (un-template the section), with the installed modules.
    sed -i -e "/^astmoddir/d" -e "/^astsbindir/d" /etc/asterisk/asterisk.conf
    sed -i -e "s|^\[directories\].*|[directories]\nastmoddir => $moddir\nastsbindir => $(dirname "$ASTERISK_BIN")|" \
        /etc/asterisk/asterisk.conf
    mkdir -p /var/lib/asterisk/sounds /var/spool/asterisk /var/log/asterisk /var/run/asterisk \
        /var/cache/asterisk /home/asterisk
    local entry
    for entry in "$datadir"/*; do
        case "$(basename "$entry")" in sounds | astdb*) continue ;; esac
        ln -sfn "$entry" "/var/lib/asterisk/$(basename "$entry")"
    done
    chown -R asterisk: /etc/asterisk /var/lib/asterisk /var/spool/asterisk /var/log/asterisk \
        /var/run/asterisk /var/cache/asterisk /home/asterisk
    chmod -R 750 /var/spool/asterisk
    mount_volumes "${ASTERISK_VOLUMES[@]}"
    chown asterisk: /var/spool/asterisk/monitor && chmod 750 /var/spool/asterisk/monitor
    # `asterisk -rx` (the health check) reads the binary's compiled-in asterisk.conf: show it ours.
    [[ -d "$prefix/etc/asterisk" ]] && mount --rbind /etc/asterisk "$prefix/etc/asterisk"
    (cd /home/asterisk && exec "$ASTERISK_BIN" -vvvdddf -T -W -U asterisk -p) \
        </dev/null >"$work/logs/asterisk.out" 2>&1 &
    asterisk_pid=$!
    check "asterisk health check: ${ASTERISK_HEALTH[*]}" \
        wait_for 60 env PATH="$(dirname "$ASTERISK_BIN"):$PATH" "${ASTERISK_HEALTH[@]}"

    # --- asterisk-recorder service (the image, run as its USER) -------------------------------
    mkdir -p /etc/asterisk-recorder && chmod 0755 /etc/asterisk-recorder
    mount_volumes "${ASTERISK_RECORDER_VOLUMES[@]}"
    install -d -o "${IMAGE_USER%%:*}" -g "${IMAGE_USER##*:}" -m 0700 "$IMAGE_WORKDIR" "$IMAGE_WORKDIR/spool"
    controller_env=(PATH="$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        LANG=C.UTF-8 "${IMAGE_ENV[@]}" "${ASTERISK_RECORDER_ENV[@]}")
    # ENTRYPOINT + CMD, exec'd so that $! is the controller itself (SIGTERM goes to it).
    (cd "$IMAGE_WORKDIR" && exec env -i "${controller_env[@]}" \
        setpriv --reuid="${IMAGE_USER%%:*}" --regid="${IMAGE_USER##*:}" --clear-groups -- \
        "${IMAGE_ENTRYPOINT[@]}" "${IMAGE_CMD[@]}") >"$work/logs/controller.log" 2>&1 &
    controller_pid=$!
    check "controller health check (compose): ${ASTERISK_RECORDER_HEALTH[*]:0:2} ..." \
        wait_for 40 as_controller "${ASTERISK_RECORDER_HEALTH[@]}"
    check "controller HEALTHCHECK (Dockerfile): ${IMAGE_HEALTHCHECK[*]:0:2} ..." \
        as_controller "${IMAGE_HEALTHCHECK[@]}"
    check "GET http://127.0.0.1:8090/readyz is 200" \
        curl -fsS -o "$work/logs/readyz.json" http://127.0.0.1:8090/readyz
    check "Asterisk lists the Stasis application" \
        bash -c "PATH=$(dirname "$ASTERISK_BIN"):\$PATH asterisk -rx 'ari show apps' | grep -q consent-recorder"

    # --- calls from the softphone -------------------------------------------------------------
    local password
    password="$(awk '/^\[/ {section = $1} section == "[softphone]" && $1 == "password" {print $3; exit}' \
        "$repo/etc/pjsip.conf")"
    [[ -n "$password" ]] || { say "FAIL  no password for [softphone] in etc/pjsip.conf"; FAILED=1; }
    call() {  # call EXTEN BEFORE_MS PCAP AFTER_MS
        local scenario="$work/softphone-$1.xml"
        sed -e "s|@BEFORE_MS@|$2|" -e "s|@PCAP@|$3|" -e "s|@SPEECH@|$SIPP_PCAP_DIR/g711a.pcap|" \
            -e "s|@AFTER_MS@|$4|" "$here/verify-native/softphone-call.xml" >"$scenario"
        say "calling $1 as the softphone (key $(basename "$3" .pcap) ${2} ms after the answer)"
        (cd "$work/logs" && timeout 120 "$SIPP" -sf "$scenario" -s "$1" -au softphone -ap "$password" \
            -m 1 -i 127.0.0.1 -p 5080 -mi 127.0.0.1 -mp 16000 -nostdin -trace_err \
            127.0.0.1:5060 >>"$work/logs/sipp-$1.out" 2>&1)
    }
    local key1="$SIPP_PCAP_DIR/dtmf_2833_1.pcap" key2="$SIPP_PCAP_DIR/dtmf_2833_2.pcap"
    # Expected outcomes, in call order (the softphone's numbers, "softphone" and "100", are not
    # phone numbers: the sample's [policy] unknown_mode = opt_in decides 100 and 101).
    local expected=(recorded_consented recorded_consented not_recorded_declined not_recorded_opted_out)
    check "call 100 (ARI; opt-in by policy) connects, key 1 sent" call 100 1500 "$key1" 8000
    check "call 101 (FastAGI; opt-in by policy) connects, key 1 sent" call 101 1500 "$key1" 8000
    check "call 102 (ARI; opt-in forced) connects, key 2 sent" call 102 1500 "$key2" 8000
    check "call 103 (ARI; opt-out forced) connects, key 1 sent" call 103 1500 "$key1" 8000
    # 200: Asterisk calls the (registered) softphone, which hears the disclosure and allows.
    answer() {
        sed -e "s|@BEFORE_MS@|1500|" -e "s|@PCAP@|$key1|" "$here/verify-native/softphone-answer.xml" \
            >"$work/softphone-answer.xml"
        (cd "$work/logs" && timeout 120 "$SIPP" -sf "$here/verify-native/softphone-register.xml" \
            -au softphone -ap "$password" -m 1 -i 127.0.0.1 -p 5090 -nostdin -trace_err \
            127.0.0.1:5060 >"$work/logs/sipp-register.out" 2>&1) || return 1
        (cd "$work/logs" && exec timeout 120 "$SIPP" -sf "$work/softphone-answer.xml" -m 1 \
            -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -mp 16100 -nostdin -trace_err \
            >"$work/logs/sipp-answer.out" 2>&1) &
        local answerer=$!
        sleep 0.5
        call 200 1500 "$key1" 8000 && wait "$answerer"
    }
    expected+=(recorded_consented)
    check "call 200 (the softphone is called; FastAGI on the called leg) connects, key 1 sent" answer
    sleep 2

    # --- what compose's documented commands show ----------------------------------------------
    as_controller asterisk-recorder ledger tail -n 10 --json >"$work/ledger.jsonl" 2>"$work/logs/ledger-tail.err" || true
    as_controller asterisk-recorder ledger tail -n 10 >"$work/ledger.txt" 2>&1 || true
    check "asterisk-recorder ledger verify" as_controller asterisk-recorder ledger verify
    find /var/spool/asterisk/monitor -type f -printf '%s %p\n' | sort -k2 >"$work/recordings.txt"
    say "ledger (asterisk-recorder ledger tail):"; sed 's/^/    /' "$work/ledger.txt"
    say "recordings volume (size path):"; sed 's/^/    /' "$work/recordings.txt"
    check "ledger outcomes are ${expected[*]}; a non-empty wav exactly where the ledger says" \
        python3 - "$work/ledger.jsonl" "$work/recordings.txt" "${expected[@]}" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
files = {}
for line in open(sys.argv[2]):
    size, path = line.rstrip("\n").split(" ", 1)
    files[path] = int(size)
expected = sys.argv[3:]
ok = [row["outcome"] for row in rows] == expected
if not ok:
    print(f"    outcomes {[row['outcome'] for row in rows]} != expected {expected}")
said = set()
for row in rows:
    path = row.get("recording_path") or ""
    recorded = row["outcome"].startswith("recorded")
    size = files.get(path)
    said.add(path)
    print(f"    {row['called_number']:>4} {row['mode']:8} {row['outcome']:24} wav {size} bytes {path}")
    if recorded and not (size and size > 44):   # 44 bytes = a wav header without audio
        ok = False
        print("      ^ recorded, but no wav with audio at the ledger's path")
    if not recorded and path in files:
        ok = False
        print("      ^ not recorded, yet a file exists")
extra = sorted(set(files) - said)
if extra:
    ok = False
    print(f"    files the ledger does not name: {extra}")
sys.exit(0 if ok else 1)
PY

    if [[ "${KEEP:-0}" == 1 ]]; then
        say "KEEP=1: stack left running; enter with: nsenter -t $asterisk_pid -m -n bash"
        wait "$asterisk_pid"
        return
    fi
    kill -TERM "$controller_pid" 2>/dev/null || true
    local status=0
    wait "$controller_pid" || status=$?
    controller_pid=""
    check "controller exits 0 on SIGTERM (the image's STOPSIGNAL)" test 0 -eq "$status"
    PATH="$(dirname "$ASTERISK_BIN"):$PATH" asterisk -rx 'core stop now' >/dev/null 2>&1 || kill "$asterisk_pid"
    wait "$asterisk_pid" 2>/dev/null || true
    asterisk_pid=""
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null
    pgdata=""
    if ((FAILED)); then say "SOME CHECKS FAILED; logs in $work/logs"; exit 1; fi
    say "all checks passed; logs in $work/logs"
}

if [[ "${1:-}" == --inside ]]; then
    inside "$2"
else
    outside "$@"
fi
