"""Simulators and the plug-in registry."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.collectors.registry import RegistryError, resolve
from edge.collectors.sim_ap import COUNTER32, SimAccessPoint, SimAPOptions, counter_delta
from edge.collectors.sim_camera import SimCamera, SimCameraOptions
from edge.collectors.snapshot import tiny_jpeg
from edge.collectors.village_day import activity
from wire import MotionEvent
from wire.messages import check_snapshot

VN = "+07:00"


def at(local: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-28T{local}{VN}").astimezone(UTC)


def test_counter32_delta_handles_wrap() -> None:
    assert counter_delta(100, 350) == 250
    assert counter_delta(COUNTER32 - 100, 50) == 150


def test_village_day_shape() -> None:
    night, morning, midday, evening = (
        activity(at(t)) for t in ("02:30:00", "07:00:00", "12:00:00", "20:30:00")
    )
    assert night < 0.05 < morning
    assert night < midday < evening
    assert evening == pytest.approx(1.0)


def test_sim_ap_follows_the_day_and_is_seeded_by_device() -> None:
    def clients(device: str, when: str) -> list[int]:
        ap = SimAccessPoint(SimAPOptions(device=device, peak_clients=40), node=device)
        return [int(ap.sample(at(when), float(i * 30))[0].fields["clients"]) for i in range(20)]

    assert clients("tt-ap-03", "20:30:00") == clients("tt-ap-03", "20:30:00")  # deterministic
    assert clients("tt-ap-03", "20:30:00") != clients("tt-ap-04", "20:30:00")  # but per device
    assert max(clients("tt-ap-03", "03:00:00")) <= 3
    assert sum(clients("tt-ap-03", "20:30:00")) > 3 * sum(clients("tt-ap-03", "12:00:00")) / 2


def test_sim_ap_points_and_wrapping_counters() -> None:
    ap = SimAccessPoint(SimAPOptions(device="dr-ap-01", ssids=["A", "B"], peak_clients=200), node="dr-ap-01")
    first = ap.sample(at("20:30:00"), 0.0)
    by = {(p.measurement, tuple(p.tags.items())): p for p in first}
    assert set(by) == {
        ("ap", ()),
        ("ap_radio", (("band", "2.4GHz"),)),
        ("ap_radio", (("band", "5GHz"),)),
        ("ap_ssid", (("ssid", "A"),)),
        ("ap_ssid", (("ssid", "B"),)),
        ("ap_if", (("ifname", "eth0"),)),
    }
    total = by[("ap", ())].fields["clients"]
    assert sum(p.fields["clients"] for p in first if p.measurement == "ap_radio") == total  # type: ignore[misc]
    assert sum(p.fields["clients"] for p in first if p.measurement == "ap_ssid") == total  # type: ignore[misc]
    assert "in_bps" not in first[-1].fields  # no rate without a previous reading
    ap.in_octets = COUNTER32 - 1000  # as if the last reading had been just below the wrap
    ap._last = (0.0, ap.in_octets, ap.out_octets)
    wan1 = {"in_octets": ap.in_octets}
    second = ap.sample(at("20:30:30"), 30.0)
    wan2 = second[-1].fields
    assert isinstance(wan2["in_octets"], int) and wan2["in_octets"] < wan1["in_octets"]  # wrapped
    assert 0 <= wan2["in_octets"] < COUNTER32
    # The rate is computed across the wrap, not negative and not 2**32-sized.
    assert wan2["in_bps"] == pytest.approx(
        counter_delta(wan1["in_octets"], wan2["in_octets"]) * 8 / 30, rel=1e-3
    )
    assert 0 < wan2["in_bps"] < 1e9  # type: ignore[operator]
    assert isinstance(wan2["in_bps"], float) and isinstance(wan2["out_bps"], float)


def test_sim_camera_event_is_a_valid_motion_event_with_its_snapshot() -> None:
    cam = SimCamera(SimCameraOptions(device="dr-cam-02"), node="dr-cam-02")
    point = cam.stream_point(at("20:00:00"))
    assert point.measurement == "camera" and point.fields["up"] is True and point.fields["frozen"] is False
    assert isinstance(point.fields["fps"], float) and isinstance(point.fields["decode_errors"], int)
    hashes = set()
    for _ in range(3):
        event, jpeg = cam.motion_event(at("20:00:00"))
        check_snapshot(jpeg)
        sha = hashlib.sha256(jpeg).hexdigest()
        hashes.add(sha)
        msg = MotionEvent(
            node="dr-cam-02",
            session="ab12cd34",
            seq=1,
            ts=at("20:00:00"),
            snapshot_sha256=sha,
            snapshot_bytes=len(jpeg),
            **event,
        )
        assert msg.phase == "end" and msg.end is not None and msg.start < msg.end and msg.boxes
    assert len(hashes) == 3, "each snapshot must have its own hash"
    assert cam.event_rate_per_s(at("20:30:00")) > 5 * cam.event_rate_per_s(at("03:00:00"))


def test_tiny_jpeg_structure() -> None:
    jpeg = tiny_jpeg("evt-1")
    check_snapshot(jpeg)
    assert b"\xff\xfe" in jpeg and b"evt-1" in jpeg  # COM segment
    assert b"\xff\xc0" in jpeg and b"\xff\xda" in jpeg  # baseline frame and scan


def test_registry_is_lazy_and_accepts_module_paths() -> None:
    repo = str(Path(__file__).resolve().parents[2])
    code = (
        "import sys\n"
        "from edge.collectors.registry import resolve\n"
        "resolve('sim_ap')\n"
        "print('edge.collectors.sim_camera' in sys.modules, 'edge.collectors.sim_ap' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=repo)
    )
    assert out.stdout.split() == ["False", "True"], out.stderr
    assert resolve("edge.collectors.sim_camera:SimCamera") is SimCamera
    with pytest.raises(RegistryError, match="unknown collector type"):
        resolve("snmp_magic")
    with pytest.raises(RegistryError, match="cannot import"):
        resolve("no_such_pkg.mod:Thing")
    with pytest.raises(RegistryError, match="not a Collector"):
        resolve("edge.collectors.sim_ap:SimAPOptions")
