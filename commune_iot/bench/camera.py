"""``commune-iot bench camera``: the whole camera agent on a 720p 15 fps stream, CPU and RSS.

A real ``edge run`` process (capture, detection at 5 fps, events, snapshots, health, outbox,
MQTT to a local Mosquitto) watches a 1280x720 15 fps video made from the PETS 2009 clip (people
walking, changing light). When Debian's gst-rtsp-server is installed (``./dev.sh setup`` does)
the video is served as H.264 over RTSP on loopback, like a camera; otherwise the agent reads the
file itself in real time (MPEG-4 part 2, cheaper to decode than H.264: say so when comparing).
CPU share is the agent's own user+system time over the window divided by the wall time (1.0 =
one core busy; the RTSP server's encoding is not counted); RSS is the peak of VmRSS sampled each
second. Decoding the stream is included: it is most of the cost.

``--substream`` measures instead what detecting on a camera's substream saves (issue 18 item 7):
the same PETS clip as a 1920x1080 main stream and a 640x360 substream (15 fps, H.264 over
loopback RTSP), one agent per run, CPU-seconds per second over ``--seconds`` after a 5 s
warm-up: (1) detecting on the main stream; (2) detecting on the substream with event snapshots
from an HTTP snapshot URL served here (main-stream JPEGs); (3) the same with snapshots from the
main stream opened while events last; then OpenCV decoding each stream alone, without the agent.
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


def start_rtsp(
    video: Path, log: Path, extra: dict[str, Path] | None = None
) -> tuple[subprocess.Popen[bytes], str] | None:
    """Serve ``video`` (and ``extra`` mounts) as H.264 over RTSP on loopback with
    gst-rtsp-server, or None if absent; the URL returned is ``video``'s."""
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
        [SYSTEM_PYTHON, str(RTSP_SCRIPT), str(port), f"cam={video}"]
        + [f"{mount}={path}" for mount, path in (extra or {}).items()],
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


# -- detect on the 1080p main stream vs on the 360p substream + HTTP snapshots -----------------


def make_pair(src: Path, folder: Path, fps: float, seconds: float) -> tuple[Path, Path, list[bytes]]:
    """The same clip as a 1920x1080 main stream and a 640x360 substream (same frames, same
    timing; MJPEG files the RTSP server re-encodes as H.264), and every 5th main frame as the
    JPEG the camera's HTTP snapshot URL would give."""
    main, sub = folder / "main1080.avi", folder / "sub360.avi"
    four = cv2.VideoWriter.fourcc(*"MJPG")
    wm = cv2.VideoWriter(str(main), four, fps, (1920, 1080))
    ws = cv2.VideoWriter(str(sub), four, fps, (640, 360))
    jpegs: list[bytes] = []
    n, want = 0, int(fps * seconds)
    while n < want:
        for f in frames(src):
            big = cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_LINEAR)
            wm.write(big)
            ws.write(cv2.resize(big, (640, 360), interpolation=cv2.INTER_AREA))
            if n % 5 == 0:
                jpegs.append(cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
            n += 1
            if n >= want:
                break
    wm.release()
    ws.release()
    return main, sub, jpegs


class SnapshotUrl:
    """The camera's HTTP snapshot URL: the main-stream picture of the moment (by clock)."""

    def __init__(self, jpegs: list[bytes], fps: float) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.t0 = time.monotonic()
        self.served = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                i = int((time.monotonic() - owner.t0) * fps / 5) % len(jpegs)
                body = jpegs[i]
                owner.served += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        import threading

        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ISAPI/Streaming/channels/101/picture"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _measure_agent(base: Path, broker: Mosquitto, camera: dict[str, Any], seconds: float) -> dict[str, float]:
    """One agent watching one camera: its CPU-seconds per second over ``seconds`` after 5 s."""
    base.mkdir(parents=True, exist_ok=True)
    cfg = {
        "node": "bench-cam-01",
        "commune": "da-ron",
        "broker": {"url": broker.url, "keepalive_s": 10},
        "hold_until_cloud": False,
        "health_interval_s": 5.0,
        "outbox": {"path": str(base / "outbox.sqlite3")},
        "collectors": [{"type": "camera", "interval_s": 2.0, "expected_fps": 15, **camera}],
        "log": {"level": "INFO"},
    }
    watcher = Watcher(broker.port)
    agent = AgentProcess.write(base, cfg).start()
    try:
        time.sleep(5)  # warm-up: the stream opens, the background is learnt
        if not agent.running or agent.proc is None:
            raise SystemExit(f"agent exited early; see {agent.log_path}")
        pid = agent.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, rss_mb(pid) or 0.0)
        rate = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        live = [p for p in watcher.points[1:] if p["up"]]
        return {
            "cpu_s_per_s": rate,
            "peak_rss_mb": peak,
            "received_fps": median(p["fps"] for p in live) if live else 0.0,
            "detect_fps": median(p["detect_fps"] for p in live) if live else 0.0,
            "width_px": float(live[-1]["width"]) if live else 0.0,
            "event_messages": float(watcher.events),
        }
    finally:
        agent.terminate()
        agent.wait(15)
        watcher.close()


def decode_cost(url: str, seconds: float, detect_fps: float) -> tuple[float, float]:
    """CPU-seconds per second of video for OpenCV alone reading ``url`` the way the agent's
    capture thread does (grab every frame, retrieve at ``detect_fps``), and frames per second
    received. Measured in this process with getrusage (FFmpeg's decoding threads included)."""
    import resource

    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {url}")
    try:
        for _ in range(15):  # past the first keyframe
            cap.grab()
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        n, next_detect = 0, 0.0
        while time.monotonic() - t0 < seconds and cap.grab():
            n += 1
            now = time.monotonic()
            if now >= next_detect:
                next_detect = now + 1.0 / detect_fps
                cap.retrieve()
        r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
    finally:
        cap.release()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return cpu / wall, n / wall


def substream_main(seconds: float = 60.0, run_dir: Path | None = None, detect_fps: float = 5.0) -> int:
    """CPU per camera both ways on the same clip over RTSP: detect on the 1920x1080 main stream,
    or on the 640x360 substream with event snapshots from the HTTP snapshot URL (and, third,
    from the main stream opened while events last)."""
    base = run_dir or Path(tempfile.mkdtemp(prefix="ciot-bench-sub-"))
    base.mkdir(parents=True, exist_ok=True)
    fps = 15.0
    print("making a 1920x1080 and a 640x360 15 fps stream from the PETS 2009 clip ...", flush=True)
    main, sub, jpegs = make_pair(VIDEO_DIR / "pets2009_illumination" / "video.mp4", base, fps, seconds + 10)
    load0 = Path("/proc/loadavg").read_text().split()[0]
    broker = Mosquitto(base / "mosquitto").start()
    snap = SnapshotUrl(jpegs, fps)
    got: dict[str, dict[str, float]] = {}
    try:
        runs: list[tuple[str, dict[str, Any]]] = [
            ("main_1080p", {"url": None}),
            (
                "substream_360p",
                {"url": None, "detect_url": None, "snapshot_source": "http", "snapshot_url": snap.url},
            ),
            # The alternative without an HTTP snapshot URL: the main stream opened for events.
            (
                "substream_360p_main_snapshots",
                {"url": None, "detect_url": None, "snapshot_source": "main", "snapshot_timeout_s": 5.0},
            ),
        ]
        for name, camera in runs:
            served = start_rtsp(main, base / f"rtsp-{name}.log", extra={"sub": sub})
            if served is None:
                raise SystemExit("gst-rtsp-server is not installed (./dev.sh setup installs it)")
            proc, url = served
            camera["url"] = url
            if "detect_url" in camera:
                camera["detect_url"] = url.rsplit("/", 1)[0] + "/sub"
            camera |= {"detect_fps": detect_fps, "events": {"quiet_s": 2.0, "snapshot_width": 1920}}
            print(f"{name}: measuring {seconds:.0f} s (after 5 s warm-up) ...", flush=True)
            try:
                r = got[name] = _measure_agent(base / name, broker, camera, seconds)
            finally:
                proc.kill()
                proc.wait(10)
            print(
                f"  {r['cpu_s_per_s']:.3f} CPU-s per s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"stream {r['width_px']:.0f} px wide at {r['received_fps']:.1f} fps, "
                f"detector {r['detect_fps']:.1f} fps, {r['event_messages']:.0f} event messages",
                flush=True,
            )
        # Decoding alone (OpenCV, no agent): how much of the difference is the decoder's.
        served = start_rtsp(main, base / "rtsp-decode.log", extra={"sub": sub})
        if served is None:
            raise SystemExit("gst-rtsp-server is not installed")
        decode: dict[str, tuple[float, float]] = {}
        try:
            for name, mount in (("1080p", "cam"), ("360p", "sub")):
                url = served[1].rsplit("/", 1)[0] + "/" + mount
                print(f"decoding alone, {name}: {seconds:.0f} s ...", flush=True)
                decode[name] = decode_cost(url, seconds, detect_fps)
                print(f"  {decode[name][0]:.3f} CPU-s per s at {decode[name][1]:.1f} fps", flush=True)
        finally:
            served[0].kill()
            served[0].wait(10)
    finally:
        snap.close()
        broker.stop()
    load1 = Path("/proc/loadavg").read_text().split()[0]
    m, s, sm = got["main_1080p"], got["substream_360p"], got["substream_360p_main_snapshots"]
    print(
        json.dumps(
            {
                "cpu_s_per_s_main_1080p": round(m["cpu_s_per_s"], 3),
                "cpu_s_per_s_substream_360p": round(s["cpu_s_per_s"], 3),
                "cpu_ratio_substream_to_main": round(s["cpu_s_per_s"] / max(m["cpu_s_per_s"], 1e-9), 3),
                "cpu_s_per_s_substream_360p_main_snapshots": round(sm["cpu_s_per_s"], 3),
                "decode_cpu_s_per_s_1080p": round(decode["1080p"][0], 3),
                "decode_cpu_s_per_s_360p": round(decode["360p"][0], 3),
                "decode_received_fps_1080p": round(decode["1080p"][1], 2),
                "decode_received_fps_360p": round(decode["360p"][1], 2),
                "peak_rss_mb_main_1080p": round(m["peak_rss_mb"], 1),
                "peak_rss_mb_substream_360p": round(s["peak_rss_mb"], 1),
                "received_fps_main_1080p": round(m["received_fps"], 2),
                "received_fps_substream_360p": round(s["received_fps"], 2),
                "event_messages_main_1080p": int(m["event_messages"]),
                "event_messages_substream_360p": int(s["event_messages"]),
                "event_messages_substream_360p_main_snapshots": int(sm["event_messages"]),
                "http_snapshots_served": snap.served,
                "stream_fps": fps,
                "x264_preset": os.environ.get("CIOT_RTSP_PRESET", "ultrafast"),
                "detect_fps": detect_fps,
                "seconds_per_run": seconds,
                "loadavg_1m_start": float(load0),
                "loadavg_1m_end": float(load1),
            }
        )
    )
    return 0
