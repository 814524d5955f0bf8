#!/usr/bin/env bash
# Start an ALREADY INSTALLED Asterisk 22 with the end-to-end suite's configuration, on loopback,
# in a fresh temporary runtime directory. This script never builds or downloads anything.
#
#   ASTERISK_BIN=/opt/asterisk22/sbin/asterisk tests/e2e/run_local_asterisk.sh [RUNTIME_DIR]
#
# It prints the environment the suite needs (ASTERISK_RECORDER_E2E_*) and keeps Asterisk in the
# foreground; Ctrl-C (or SIGTERM) stops it. With E2E_DETACH=1 it starts Asterisk in the
# background, waits until ARI answers, writes the environment to RUNTIME_DIR/e2e.env and exits
# (stop it later with: kill "$(cat RUNTIME_DIR/asterisk.pid)").
#
# Tunables (environment): ASTERISK_BIN, ASTERISK_MODDIR (default: <prefix>/lib/asterisk/modules),
# ASTERISK_DATADIR (default: <prefix>/var/lib/asterisk), E2E_HTTP_PORT (8088), E2E_SIP_PORT (5160),
# E2E_UAS_PORT (5170), E2E_AGI_PORT (4573), E2E_RTP_START/E2E_RTP_END (16000/16200),
# E2E_ARI_USER (e2e), E2E_ARI_PASSWORD (e2e-secret), E2E_RECORDER_APP (consent-recorder),
# E2E_AMI_PORT (5038), E2E_AMI_USER (e2e-recorder), E2E_AMI_SECRET (e2e-ami-secret).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

ASTERISK_BIN="${ASTERISK_BIN:-/opt/asterisk22/sbin/asterisk}"
if [[ ! -x "$ASTERISK_BIN" ]]; then
    echo "run_local_asterisk.sh: no Asterisk binary at $ASTERISK_BIN (set ASTERISK_BIN)" >&2
    exit 2
fi
prefix="$(cd "$(dirname "$ASTERISK_BIN")/.." && pwd)"
ASTERISK_MODDIR="${ASTERISK_MODDIR:-$prefix/lib/asterisk/modules}"
ASTERISK_DATADIR="${ASTERISK_DATADIR:-$prefix/var/lib/asterisk}"
if [[ ! -d "$ASTERISK_MODDIR" ]]; then
    echo "run_local_asterisk.sh: no module directory at $ASTERISK_MODDIR (set ASTERISK_MODDIR)" >&2
    exit 2
fi

E2E_HTTP_PORT="${E2E_HTTP_PORT:-8088}"
E2E_SIP_PORT="${E2E_SIP_PORT:-5160}"
E2E_UAS_PORT="${E2E_UAS_PORT:-5170}"
E2E_AGI_PORT="${E2E_AGI_PORT:-4573}"
E2E_RTP_START="${E2E_RTP_START:-16000}"
E2E_RTP_END="${E2E_RTP_END:-16200}"
E2E_ARI_USER="${E2E_ARI_USER:-e2e}"
E2E_ARI_PASSWORD="${E2E_ARI_PASSWORD:-e2e-secret}"
E2E_RECORDER_APP="${E2E_RECORDER_APP:-consent-recorder}"
E2E_AMI_PORT="${E2E_AMI_PORT:-5038}"
E2E_AMI_USER="${E2E_AMI_USER:-e2e-recorder}"
E2E_AMI_SECRET="${E2E_AMI_SECRET:-e2e-ami-secret}"

for value in "$E2E_ARI_USER" "$E2E_ARI_PASSWORD" "$E2E_RECORDER_APP" "$E2E_AMI_USER" "$E2E_AMI_SECRET"; do
    if [[ ! "$value" =~ ^[A-Za-z0-9_.-]+$ ]]; then
        echo "run_local_asterisk.sh: ARI user, password, app name, AMI user and secret must match [A-Za-z0-9_.-]+" >&2
        exit 2
    fi
done

run="${1:-$(mktemp -d /tmp/asterisk-recorder-e2e.XXXXXX)}"
mkdir -p "$run"/{etc,lib/agi-bin,spool,run,log,recordings}

# Configuration: the suite's files with their placeholders filled in, plus the project's dialplan.
for conf in "$here"/asterisk/*.conf; do
    sed -e "s|@RUN@|$run|g" \
        -e "s|@MODDIR@|$ASTERISK_MODDIR|g" \
        -e "s|@SBINDIR@|$(dirname "$ASTERISK_BIN")|g" \
        -e "s|@HTTP_PORT@|$E2E_HTTP_PORT|g" \
        -e "s|@SIP_PORT@|$E2E_SIP_PORT|g" \
        -e "s|@UAS_PORT@|$E2E_UAS_PORT|g" \
        -e "s|@AGI_PORT@|$E2E_AGI_PORT|g" \
        -e "s|@RTP_START@|$E2E_RTP_START|g" \
        -e "s|@RTP_END@|$E2E_RTP_END|g" \
        -e "s|@ARI_USER@|$E2E_ARI_USER|g" \
        -e "s|@ARI_PASSWORD@|$E2E_ARI_PASSWORD|g" \
        -e "s|@RECORDER_APP@|$E2E_RECORDER_APP|g" \
        -e "s|@AMI_PORT@|$E2E_AMI_PORT|g" \
        -e "s|@AMI_USER@|$E2E_AMI_USER|g" \
        -e "s|@AMI_SECRET@|$E2E_AMI_SECRET|g" \
        "$conf" > "$run/etc/$(basename "$conf")"
done
ln -sf "$repo/dialplan/recorder.conf" "$run/etc/recorder.conf"
ln -sf "$repo/dialplan/recorder-demo.conf" "$run/etc/recorder-demo.conf"

# Data directory: the installed one (documentation, static files, any sounds) plus the
# project's sample prompts as sounds/en/recorder.
if [[ -d "$ASTERISK_DATADIR" ]]; then
    for entry in "$ASTERISK_DATADIR"/*; do
        name="$(basename "$entry")"
        [[ "$name" == sounds || "$name" == agi-bin ]] && continue
        ln -sfn "$entry" "$run/lib/$name"
    done
fi
mkdir -p "$run/lib/sounds/en"
if [[ -d "$ASTERISK_DATADIR/sounds/en" ]]; then
    for entry in "$ASTERISK_DATADIR"/sounds/en/*; do
        ln -sfn "$entry" "$run/lib/sounds/en/$(basename "$entry")"
    done
fi
ln -sfn "$repo/asterisk_recorder/sounds/en/recorder" "$run/lib/sounds/en/recorder"

ari_url="http://127.0.0.1:$E2E_HTTP_PORT"
cat > "$run/e2e.env" <<ENV
export ASTERISK_RECORDER_E2E_ARI_URL=$ari_url
export ASTERISK_RECORDER_E2E_ARI_USER=$E2E_ARI_USER
export ASTERISK_RECORDER_E2E_ARI_PASSWORD=$E2E_ARI_PASSWORD
export ASTERISK_RECORDER_E2E_APP=$E2E_RECORDER_APP
export ASTERISK_RECORDER_E2E_AGI_PORT=$E2E_AGI_PORT
export ASTERISK_RECORDER_E2E_SIP_PORT=$E2E_SIP_PORT
export ASTERISK_RECORDER_E2E_UAS_PORT=$E2E_UAS_PORT
export ASTERISK_RECORDER_E2E_RUN_DIR=$run
export ASTERISK_RECORDER_E2E_AMI_PORT=$E2E_AMI_PORT
export ASTERISK_RECORDER_E2E_AMI_USER=$E2E_AMI_USER
export ASTERISK_RECORDER_E2E_AMI_SECRET=$E2E_AMI_SECRET
ENV

wait_for_ari() {
    for _ in $(seq 1 150); do
        if curl -fsS -u "$E2E_ARI_USER:$E2E_ARI_PASSWORD" "$ari_url/ari/asterisk/info" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

args=(-C "$run/etc/asterisk.conf" -f -n)
if [[ "${E2E_DETACH:-0}" == 1 ]]; then
    "$ASTERISK_BIN" "${args[@]}" >"$run/log/console.log" 2>&1 </dev/null &
    echo $! > "$run/asterisk.pid"
    if ! wait_for_ari; then
        echo "run_local_asterisk.sh: ARI did not answer at $ari_url; see $run/log/" >&2
        kill "$(cat "$run/asterisk.pid")" 2>/dev/null || true
        exit 1
    fi
    echo "Asterisk running (pid $(cat "$run/asterisk.pid")), runtime in $run"
    echo "Load the suite's environment with: . $run/e2e.env"
    exit 0
fi

echo "Runtime in $run; once ARI answers, run the suite with:"
echo "  . $run/e2e.env && pytest tests/e2e -m e2e"
exec "$ASTERISK_BIN" "${args[@]}"
