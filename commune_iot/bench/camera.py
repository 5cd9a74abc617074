"""``commune-iot bench camera``: the whole camera agent on a 720p 15 fps stream, CPU and RSS.

A real ``edge run`` process (capture, detection at 5 fps, events, snapshots, health, outbox,
MQTT to a local Mosquitto) watches a 1280x720 15 fps video made from the PETS 2009 clip (people
walking, changing light). When Debian's gst-rtsp-server is installed (``./dev.sh setup`` does)
the video is served as H.264 over RTSP on loopback, like a camera; otherwise the agent reads the
file itself in real time (MPEG-4 part 2, cheaper to decode than H.264: say so when comparing).
CPU share is the agent's own user+system time over the window divided by the wall time (1.0 =
one core busy; the RTSP server's encoding is not counted); RSS is the peak of VmRSS sampled each
second. Decoding the stream is included: it is most of the cost.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import cv2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from commune_iot.bench.motion import REPO, VIDEO_DIR, frames
from commune_iot.fleet import AgentProcess, rss_mb
from commune_iot.localsvc import Mosquitto


def make_720p(src: Path, dst: Path, fps: float = 15.0, seconds: float = 20.0) -> Path:
    """The clip resized to 1280x720 (MPEG-4 part 2: the encoder OpenCV's wheels carry)."""
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"mp4v"), fps, (1280, 720))
    n = 0
    want = int(fps * seconds)
    while n < want:
        for f in frames(src):
            writer.write(cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR))
            n += 1
            if n >= want:
                break
    writer.release()
    return dst


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


RTSP_SCRIPT = REPO / "tests" / "camera" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def start_rtsp(video: Path, log: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """Serve ``video`` as H.264 over RTSP on loopback with gst-rtsp-server, or None if absent."""
    if not (Path(SYSTEM_PYTHON).exists() and RTSP_SCRIPT.exists()):
        return None
    probe = [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = log.open("ab")
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(RTSP_SCRIPT), str(port), f"cam={video}"],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while b"ready" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return None
        time.sleep(0.05)
    return proc, f"rtsp://127.0.0.1:{port}/cam"


class Watcher:
    """Collects the agent's ``camera`` points and events from the broker, to show it kept up."""

    def __init__(self, port: int) -> None:
        self.points: list[dict[str, Any]] = []
        self.events = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("ciot/v1/+/+/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        channel = msg.topic.split("/")[4]
        if channel == "metrics":
            doc = json.loads(msg.payload)
            self.points += [p["fields"] for p in doc["points"] if p["measurement"] == "camera"]
        elif channel == "event":
            self.events += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main(seconds: float = 30.0, run_dir: Path | None = None, detect_fps: float = 5.0) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-cam-"))
    base.mkdir(parents=True, exist_ok=True)
    print("making a 1280x720 15 fps stream from the PETS 2009 clip ...", flush=True)
    video = make_720p(
        VIDEO_DIR / "pets2009_illumination" / "video.mp4", base / "stream720p.mp4", seconds=seconds + 15
    )
    served = start_rtsp(video, base / "rtsp.log")
    source = "rtsp-h264" if served else "file-mpeg4"
    url = served[1] if served else str(video)
    print(f"source: {source} {url}", flush=True)
    broker = Mosquitto(base / "mosquitto").start()
    cfg = {
        "node": "bench-cam-01",
        "commune": "da-ron",
        "broker": {"url": broker.url, "keepalive_s": 10},
        "hold_until_cloud": False,
        "health_interval_s": 5.0,
        "outbox": {"path": str(base / "outbox.sqlite3")},
        "collectors": [
            {
                "type": "camera",
                "url": url,
                "loop_file": True,
                "interval_s": 2.0,
                "expected_fps": 15,
                "detect_fps": detect_fps,
                "events": {"quiet_s": 2.0},
            }
        ],
        "log": {"level": "INFO"},
    }
    watcher = Watcher(broker.port)
    agent = AgentProcess.write(base, cfg).start()
    try:
        print("warming up 5 s ...", flush=True)
        time.sleep(5)
        if not agent.running or agent.proc is None:
            raise SystemExit(f"agent exited early; see {agent.log_path}")
        pid = agent.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        peak = 0.0
        print(f"measuring for {seconds:.0f} s ...", flush=True)
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, rss_mb(pid) or 0.0)
        share = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        print(f"  camera agent: {share * 100:.1f} % of one core, peak RSS {peak:.1f} MB", flush=True)
        live = [p for p in watcher.points[1:] if p["up"]]
        fps = median(p["fps"] for p in live) if live else 0.0
        dfps = median(p["detect_fps"] for p in live) if live else 0.0
        print(
            f"  stream received at {fps:.1f} fps, detector at {dfps:.1f} fps, {watcher.events} event messages"
        )
    finally:
        agent.terminate()
        agent.wait(15)
        watcher.close()
        broker.stop()
        if served:
            served[0].kill()
            served[0].wait(10)
    print(
        json.dumps(
            {
                "cpu_share_of_one_core": round(share, 3),
                "peak_rss_mb": round(peak, 1),
                "stream": "1280x720@15fps",
                "received_fps": round(fps, 2),
                "detect_fps_measured": round(dfps, 2),
                "source": source,
                "detect_fps": detect_fps,
                "seconds": seconds,
            }
        )
    )
    return 0
