"""A power cut under the outbox: what reached the SD card is all there is after reboot.

The outbox lives on an ext4 filesystem of its own, on a loop device. A writer (the agent's
real :class:`edge.outbox.Outbox`) stores messages and deletes "acknowledged" ones, telling
the test each one once the call returned. At a random instant the writer is killed with
SIGKILL and, at once, the image file behind the loop device is copied: the copy holds only
what the filesystem had handed to its block device, and none of the dirty pages still in
its page cache, which is what a card holds when the power goes. The copy is then mounted
(the ext4 journal replays, as at boot) and the outbox reopened on it, and the run continues
on that image, cut after cut.

The guarantee shown (``outbox.sync: full``, the default): the outbox opens without being
set aside as corrupt, ``PRAGMA integrity_check`` says ok, and every message whose ``put``
had returned (the agent's "stored") and whose delete had not is still there. A message
whose delete had not returned may come back (sent again; the cloud drops the duplicate).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]

_WRITER = r"""
import os, random, sys
from pathlib import Path
from edge.outbox import Outbox, Priority
box = Outbox(Path(sys.argv[1]))
rng = random.Random(int(sys.argv[2]))
out = os.fdopen(1, "w", buffering=1)
held = [r.id for r in box.after(0, 1_000_000)]
while True:
    size = 30_000 if rng.random() < 0.05 else rng.randint(150, 600)  # a snapshot now and then
    rid = box.put("ciot/v1/da-ron/dr-ap-01/metrics", os.urandom(size), priority=Priority(rng.randint(0, 2)),
                  is_json=False, session="ab" * 4, link_gen=1)
    out.write(f"A {rid}\n")
    held.append(rid)
    if len(held) > 40 and rng.random() < 0.3:  # the broker's PUBACKs for the oldest arrive
        done, held = held[:20], held[20:]
        out.write("P " + ",".join(map(str, done)) + "\n")  # acknowledged: the delete may land or not
        box.delete(done)
        out.write("D " + ",".join(map(str, done)) + "\n")
"""


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def _mounted(image: Path, where: Path) -> Iterator[Path]:
    dev = _run("losetup", "-f", "--show", str(image))
    try:
        where.mkdir(exist_ok=True)
        _run("mount", "-t", "ext4", dev, str(where))
        try:
            yield where
        finally:
            subprocess.run(["umount", str(where)], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _loop_devices_work(tmp: Path) -> str | None:
    if os.geteuid() != 0:
        return "needs root (loop devices and mount)"
    if not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        return "needs losetup and mkfs.ext4"
    probe = tmp / "probe.img"
    probe.write_bytes(b"")
    os.truncate(probe, 1 << 20)
    try:
        dev = _run("losetup", "-f", "--show", str(probe))
        _run("losetup", "-d", dev)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"loop devices unavailable here: {exc}"
    finally:
        probe.unlink()
    return None


def _cut(
    image: Path, mnt: Path, seed: int, run_s: float, acked: set[int], pending: set[int], deleted: set[int]
) -> Path:
    """Run the writer on ``image`` for ``run_s``, cut the power; return the image after the cut."""
    after = image.with_name(f"cut-{seed}.img")
    with _mounted(image, mnt):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(mnt / "outbox.sqlite3"), str(seed)],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        time.sleep(run_s)  # the cut's instant: random by design, no event to wait for
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        (mnt / "canary").write_bytes(b"x" * 8192)  # in the page cache only: must not be on the card
        shutil.copyfile(image, after)  # what the block device had: the card at the cut
        for line in writer.stdout.read().splitlines():
            kind, _, ids = line.partition(" ")
            if not ids or not ids.replace(",", "").isdigit():
                continue  # a line torn by the kill: its call had not returned
            # A: stored; P: acknowledged by the broker (the delete is under way): may go; D: deleted
            {"A": acked, "P": pending, "D": deleted}[kind].update(int(i) for i in ids.split(","))
    image.unlink()
    return after


def _power_cuts(tmp_path: Path, cuts: int) -> None:
    reason = _loop_devices_work(tmp_path)
    if reason:
        pytest.skip(reason)
    image = tmp_path / "card.img"
    image.write_bytes(b"")
    os.truncate(image, 64 << 20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    rng = random.Random(18)
    acked: set[int] = set()
    pending: set[int] = set()
    deleted: set[int] = set()
    survived_deletes = 0
    for i in range(cuts):
        image = _cut(image, tmp_path / "mnt", i, rng.uniform(0.3, 1.5), acked, pending, deleted)
        with _mounted(image, tmp_path / "mnt") as mnt:  # the reboot: journal replay, then the agent
            canary = mnt / "canary"
            assert not canary.exists() or canary.stat().st_size < 8192, "the cut kept unsynced data"
            path = mnt / "outbox.sqlite3"
            box = Outbox(path)
            assert not list(mnt.glob("*.corrupt-*")), f"cut {i}: the outbox was set aside as corrupt"
            present = {r.id for r in box.after(0, 1_000_000)}
            box.close()
            db = sqlite3.connect(str(path))
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"cut {i}"
            db.close()
            lost = (acked - pending - deleted) - present
            assert not lost, f"cut {i}: {len(lost)} stored messages lost, e.g. {sorted(lost)[:5]}"
            assert present <= acked | {max(present, default=0)}, f"cut {i}: rows nobody stored"
            assert not present & deleted, f"cut {i}: a committed delete undone"
            survived_deletes += len(present & pending)
            acked |= present  # a row committed just before the kill, unannounced: stored all the same
    assert len(acked) > 50 * cuts, "the writer barely wrote: the cuts proved little"
    print(
        f"power cuts: {cuts}, stored {len(acked)}, deleted {len(deleted)}, lost 0, "
        f"acknowledged rows back after a cut (sent again) {survived_deletes}"
    )


def test_outbox_survives_power_cuts(tmp_path: Path) -> None:
    _power_cuts(tmp_path, cuts=6)


@pytest.mark.slow
def test_outbox_survives_many_power_cuts(tmp_path: Path) -> None:
    _power_cuts(tmp_path, cuts=60)
