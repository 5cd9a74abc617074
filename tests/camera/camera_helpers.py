"""Helpers for the camera tests: the shared clips, synthetic scenes, a loopback RTSP server."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# The edge agent's test helpers (Recorder, AgentProcess) serve here too; tests/camera may be
# collected before tests/edge has put its folder on sys.path.
if str(REPO / "tests" / "edge") not in sys.path:
    sys.path.append(str(REPO / "tests" / "edge"))
VIDEO_DIR = REPO.parent / "shared" / "testdata" / "video"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
W, H, FPS = 320, 240, 10.0


def need_clips() -> Path:
    if not (VIDEO_DIR / "cdnet_canoe" / "video.mp4").exists():
        pytest.fail(f"test clips missing: {VIDEO_DIR} (clone the repository beside shared/)")
    return VIDEO_DIR


def _texture(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(base, (W, H), interpolation=cv2.INTER_LINEAR), (0, 0), 2)


def write_scene(
    path: Path,
    seconds: float,
    *,
    noise: float = 3.0,
    ramp: float = 0.0,
    jump_at_s: float | None = None,
    jump_gain: float = 1.6,
    crossing: tuple[float, float] | None = None,
    shift_at_s: float | None = None,
    shake: tuple[float, float] | None = None,
    seed: int = 1,
) -> Path:
    """A still textured scene with sensor noise; ``ramp`` is the relative brightness gained over
    the whole clip, ``jump_at_s`` a sudden global brightness change, ``crossing`` (t0, t1) a
    dark object crossing left to right, ``shift_at_s`` the camera knocked 3 px aside for good,
    ``shake`` (t0, t1) the camera trembling by up to 2 px (wind on the pole)."""
    rng = np.random.default_rng(seed)
    bg = _texture(seed).astype(np.float32)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    n = int(seconds * FPS)
    for i in range(n):
        t = i / FPS
        gain = 1.0 + ramp * i / max(1, n - 1)
        if jump_at_s is not None and t >= jump_at_s:
            gain *= jump_gain
        img = bg * gain
        if crossing is not None and crossing[0] <= t <= crossing[1]:
            x = int((t - crossing[0]) / (crossing[1] - crossing[0]) * (W + 40)) - 40
            img[100:150, max(0, x) : max(0, x + 40)] = (30, 30, 30)
        dx = dy = 0
        if shift_at_s is not None and t >= shift_at_s:
            dx, dy = 3, 1
        if shake is not None and shake[0] <= t <= shake[1]:
            dx, dy = int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
        if dx or dy:
            m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            img = cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REPLICATE)
        img = img + rng.normal(0, noise, img.shape)
        writer.write(np.clip(img, 0, 255).astype(np.uint8))
    writer.release()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RtspServer:
    """gst-rtsp-server on loopback, started with the system Python (python3-gi is not in venvs)."""

    def __init__(self, mounts: dict[str, str], log: Path, port: int | None = None) -> None:
        self.mounts = mounts
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        if not Path(SYSTEM_PYTHON).exists():
            return False
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
        )
        return probe.returncode == 0

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def start(self) -> RtspServer:
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.port)]
        args += [f"{m}={src}" for m, src in self.mounts.items()]
        out = self.log.open("ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while b"ready" not in self.log.read_bytes():
            assert self.proc.poll() is None, f"RTSP server died: {self.log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, "RTSP server did not start"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -- a camera with a substream: the same scene at 1920x1080 and 640x360, and its HTTP snapshots --

MAIN_SIZE, SUB_SIZE = (1920, 1080), (640, 360)
#: Where the dark object stands (fractions x0, y0, x1, y1) while it is in view, and when.
OBJECT = (0.55, 0.40, 0.70, 0.65)
OBJECT_S = (3.0, 10.0)


@functools.cache
def _background() -> np.ndarray:
    w, h = MAIN_SIZE
    base = np.random.default_rng(7).integers(40, 200, (h // 40, w // 40, 3), dtype=np.uint8)
    img = cv2.resize(base, (w // 4, h // 4), interpolation=cv2.INTER_LINEAR)
    img = cv2.resize(cv2.GaussianBlur(img, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_LINEAR)
    return img.astype(np.float32)


def substream_frame(i: int, size: tuple[int, int] = MAIN_SIZE) -> np.ndarray:
    """Frame ``i`` (10 fps) of a textured still scene where a dark object stands and sways
    between OBJECT_S; the same picture at any size (the substream is the main stream scaled)."""
    w, h = MAIN_SIZE
    rng = np.random.default_rng(100 + i)
    img = _background().copy()
    t = i / FPS
    if OBJECT_S[0] <= t <= OBJECT_S[1]:
        sway = 0.015 * np.sin(t * 2 * np.pi)
        x0, y0, x1, y1 = OBJECT
        img[int(y0 * h) : int(y1 * h), int((x0 + sway) * w) : int((x1 + sway) * w)] = (25, 25, 25)
    small = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small += rng.normal(0, 2.0, small.shape)  # sensor noise, at the substream's scale
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out if size == MAIN_SIZE else cv2.resize(out, size, interpolation=cv2.INTER_AREA)


def write_substream_clips(folder: Path, seconds: float = 14.0) -> tuple[Path, Path]:
    """The main stream (1920x1080) and substream (640x360) clips, same frames and timing."""
    main, sub = folder / "main1080.avi", folder / "sub360.avi"
    four = cv2.VideoWriter.fourcc(*"MJPG")
    wm = cv2.VideoWriter(str(main), four, FPS, MAIN_SIZE)
    ws = cv2.VideoWriter(str(sub), four, FPS, SUB_SIZE)
    for i in range(int(seconds * FPS)):
        f = substream_frame(i)
        wm.write(f)
        ws.write(cv2.resize(f, SUB_SIZE, interpolation=cv2.INTER_AREA))
    wm.release()
    ws.release()
    return main, sub
