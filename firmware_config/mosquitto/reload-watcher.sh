#!/bin/sh
# Runs the broker and reloads it (SIGHUP) when the cloud asks: docs/onboarding.md.
#
#   sh reload-watcher.sh REQUEST_FILE ACK_FILE -- mosquitto -c /mosquitto/config/mosquitto.conf
#
# When the cloud has changed the broker's passwd and acl (a board onboarded or decommissioned),
# it writes a token (a number) to REQUEST_FILE (broker_admin.reload_request_file) and waits for
# the same token in ACK_FILE (broker_admin.reload_ack_file). This script, the broker's parent,
# checks REQUEST_FILE every second, sends the broker SIGHUP when the token is new and then
# writes the token to ACK_FILE. In compose the cloud's container cannot signal the broker's;
# this runs inside the broker's container, as root (Mosquitto itself drops to its own user).
#
# SIGTERM, SIGINT and SIGHUP sent to this script are passed on to the broker (docker compose
# stop, kill -s HUP); the script ends when the broker does, with its exit status.
# POSIX sh: Debian's dash and the broker image's busybox ash.
set -u
if [ $# -lt 4 ] || [ "$3" != "--" ]; then
    echo "usage: $0 REQUEST_FILE ACK_FILE -- BROKER COMMAND..." >&2
    exit 2
fi
request=$1
ack=$2
shift 3

"$@" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null' TERM INT
trap 'kill -HUP "$broker" 2>/dev/null' HUP

acknowledge() {
    printf '%s\n' "$1" >"$ack.tmp" && mv -f "$ack.tmp" "$ack"
}

# A broker that starts reads the files as they are: whatever was asked before is done.
done_token=$(cat "$request" 2>/dev/null || true)
[ -n "$done_token" ] && acknowledge "$done_token"
echo "reload-watcher: broker pid $broker; reload requests in $request, acknowledged in $ack"

while kill -0 "$broker" 2>/dev/null; do
    sleep 1 &
    wait $! 2>/dev/null # returns at once when a signal arrives
    token=$(cat "$request" 2>/dev/null || true)
    if [ -n "$token" ] && [ "$token" != "$done_token" ] && kill -0 "$broker" 2>/dev/null; then
        if kill -HUP "$broker"; then
            acknowledge "$token" && done_token=$token
            echo "reload-watcher: broker reloaded (request $token)"
        fi
    fi
done
wait "$broker"
