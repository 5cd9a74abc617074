"""``commune-iot bench camera``: the whole camera agent on a 720p 15 fps stream, CPU and RSS.

A real ``edge run`` process (capture, detection at 5 fps, events, snapshots, health, outbox,
MQTT to a local Mosquitto) watches a 1280x720 15 fps video made from the PETS 2009 clip (people
walking, changing light) and played in real time in a loop. CPU share is the agent's own
user+system time over the window divided by the wall time (1.0 = one core busy); RSS is the
peak of VmRSS sampled each second. Decoding the stream is included: it is most of the cost.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2

from commune_iot.bench.motion import VIDEO_DIR, frames
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


def main(seconds: float = 30.0, run_dir: Path | None = None, detect_fps: float = 5.0) -> int:
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-cam-"))
    base.mkdir(parents=True, exist_ok=True)
    print("making a 1280x720 15 fps stream from the PETS 2009 clip ...", flush=True)
    video = make_720p(VIDEO_DIR / "pets2009_illumination" / "video.mp4", base / "stream720p.mp4")
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
                "url": str(video),
                "loop_file": True,
                "interval_s": 5.0,
                "detect_fps": detect_fps,
                "events": {"quiet_s": 2.0},
            }
        ],
        "log": {"level": "INFO"},
    }
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
    finally:
        agent.terminate()
        agent.wait(15)
        broker.stop()
    print(
        json.dumps(
            {
                "cpu_share_of_one_core": round(share, 3),
                "peak_rss_mb": round(peak, 1),
                "stream": "1280x720@15fps",
                "detect_fps": detect_fps,
                "seconds": seconds,
            }
        )
    )
    return 0
