"""A technician reads a 3G board's traffic: ``mosquitto_sub -F '%t %x' | commune-iot wire decode``.

A board with ``broker.compress: true`` packs its data messages, which plain ``mosquitto_sub -v``
shows as bytes; the pipe the docs print must show them as JSON, with the real broker, the real
mosquitto_sub and a real agent.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from edge_helpers import REPO, AgentProcess, agent_config

from commune_iot.localsvc import Mosquitto
from wire.compression import pack


def _lines_until(proc: subprocess.Popen[str], done: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """The decoder's output lines until ``done(lines)`` holds (the event), at most ``timeout``."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(lines):
        left = deadline - time.monotonic()
        assert left > 0, f"decoder printed {len(lines)} lines, the last: {lines[-3:]}"
        if sel.select(left):
            line = proc.stdout.readline()
            assert line, f"decoder ended: {lines}"
            lines.append(line.rstrip("\n"))
    return lines


def _packed_health(lines: list[str]) -> list[str]:
    return [ln for ln in lines if "/health {" in ln and "(packed," in ln]


def test_a_packed_boards_traffic_reads_as_json_through_the_documented_pipe(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    path = agent_config(tmp_path, f"mqtt://127.0.0.1:{mosquitto.port}", health_interval_s=0.5)
    doc = yaml.safe_load(path.read_text())
    doc["broker"]["compress"] = True
    path.write_text(yaml.safe_dump(doc))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", "ciot/#", "-F", "%t %x"],
        stdout=subprocess.PIPE,
    )
    assert sub.stdout is not None
    decoder = subprocess.Popen(
        [sys.executable, "-m", "commune_iot", "wire", "decode"],
        stdin=sub.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    sub.stdout.close()  # the decoder holds the pipe now
    agent = AgentProcess(path, tmp_path / "agent.log")
    try:
        lines = _lines_until(decoder, lambda ls: len(_packed_health(ls)) >= 2, 30)
    finally:
        agent.close()
        sub.kill()
        sub.wait(10)
    assert decoder.wait(10) == 0
    assert decoder.stderr is not None and decoder.stderr.read() == ""
    topic, shown = _packed_health(lines)[0].split(" ", 1)
    body, note = shown.split("  (packed, ")
    health = json.loads(body)
    assert topic == "ciot/v1/da-ron/dr-cam-01/health"
    assert health["node"] == "dr-cam-01" and "board_uptime_s" in health
    size, _, full = note.rstrip(" bytes)").partition(" of ")
    assert int(size) < int(full) / 2, note
    births = [ln for ln in lines if ln.startswith("ciot/v1/da-ron/dr-cam-01/status {")]
    assert births and json.loads(births[0].split(" ", 1)[1])["state"] == "online", "status stays plain JSON"


def test_bad_lines_are_named_and_the_rest_still_shown() -> None:
    good = {"v": 1, "node": "tt-ap-03", "clients": 7}
    text = "\n".join(
        [
            "ciot/v1/metrics/tu-tra/tt-ap-03 " + pack(json.dumps(good).encode()).hex(),
            "ciot/v1/metrics/tu-tra/tt-ap-03 zz-not-hex",
            "ciot/v1/metrics/tu-tra/tt-ap-03 " + (b"\x02" + b"future").hex(),
            "ciot/beat/tt-ap-03",
            "ciot/v1/snapshot/da-ron/dr-cam-01/e1 ffd8ffe000104a464946",
            "ciot/v1/metrics/tu-tra/tt-ap-03 " + pack(json.dumps(good).encode())[:-3].hex(),
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "commune_iot", "wire", "decode"],
        input=text, capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    out = done.stdout.splitlines()
    assert json.loads(out[0].split(" ", 1)[1].split("  (packed")[0]) == good
    assert out[1] == "ciot/beat/tt-ap-03 (empty: a beat, or a retained message being cleared)"
    assert out[2] == "ciot/v1/snapshot/da-ron/dr-cam-01/e1 (JPEG, 10 bytes)"
    assert len(out) == 3
    errors = done.stderr.splitlines()
    assert errors[0].startswith("wire decode: line 2: payload is not hex: 'zz-not-hex'")
    assert errors[1].startswith("wire decode: line 3: payload encoding 0x02 is unknown here: upgrade")
    assert errors[2] == "wire decode: line 6: payload is truncated (deflate stream not finished)"
    assert "Traceback" not in done.stderr
