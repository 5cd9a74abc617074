"""Issue 17 item 3: signed evidence. Tampering with any file of an export ZIP (as someone who
also recomputes SHA256SUMS would) makes ``commune-iot evidence verify`` fail and name the
file, without ``--expect-sha256``; an export made before a key rotation still verifies."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from web_helpers import jpeg

from cloud.events.evidence import PUBLIC_KEY, SIGNATURE, STATEMENT, EvidenceExports
from cloud.events.signing import EvidenceSigner
from cloud.events.store import EventRecord, EventStore
from cloud.storage.snapshots import SnapshotStore
from cloud.storage.sql import BatchUpdate, SqlStore

Files = dict[str, bytes]


@pytest.fixture
def made(tmp_path: Path) -> tuple[EvidenceExports, list[int]]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'c.db'}")
    snaps = SnapshotStore(tmp_path / "snapshots")
    store = EventStore(sql.engine)
    now = time.time()
    recs = []
    for i in range(2):
        r = EventRecord(
            device="dr-cam-01",
            event_id=f"ev-{i}",
            node="dr-cam-01",
            commune="da-ron",
            site="dr-spot-01",
            phase="end",
            start=now - 600 + i * 60,
            end=now - 590 + i * 60,
            msg_ts=now - 590 + i * 60,
            peak_area_pct=4.0,
            boxes=[],
            zones=[],
            score=0.9,
            frames=20,
            snapshot_sha256=snaps.put(jpeg(i)),
        )
        recs.append(r)
    sql.apply(BatchUpdate(events=recs))
    ids = [e.id for e in store.get_many([1, 2], None)]
    store.add_note(ids[0], "ca-daron", "Người đi xe máy, biển số 49-B1 123.45")
    exports = EvidenceExports(
        sql.engine, store, snaps, tmp_path / "exports", EvidenceSigner(tmp_path / "keys/k.pem")
    )
    return exports, ids


def _files(path: Path) -> Files:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(files: Files, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return path


def _resum(files: Files) -> None:
    """What a forger does next: recompute SHA256SUMS so ``sha256sum -c`` passes again."""
    listed = [n for n in sorted(files) if n != "SHA256SUMS" and not n.startswith("signature/")]
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in listed).encode()


def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commune_iot", "evidence", "verify", str(path), *extra],
        capture_output=True,
        text=True,
    )


def _edit_note(f: Files) -> str:
    m = json.loads(f["manifest.json"])
    m["events"][0]["notes"] = m["events"][0]["notes"].replace("49-B1 123.45", "49-B1 999.99")
    f["manifest.json"] = json.dumps(m, ensure_ascii=False, indent=2).encode()
    f["manifest.csv"] = f["manifest.csv"].replace(b"49-B1 123.45", b"49-B1 999.99")
    _resum(f)
    return "manifest.json"


def _edit_manifest(f: Files) -> str:
    m = json.loads(f["manifest.json"])
    m["events"][1]["start_local"] = "2026-11-20 03:00:00 (UTC+7)"
    f["manifest.json"] = json.dumps(m, ensure_ascii=False, indent=2).encode()
    _resum(f)
    return "manifest.json"


def _edit_csv(f: Files) -> str:
    f["manifest.csv"] = f["manifest.csv"].replace(b"dr-spot-01", b"dr-spot-09", 1)
    _resum(f)
    return "manifest.csv"


def _swap_snapshot(f: Files) -> str:
    name = next(n for n in f if n.endswith(".jpg"))
    f[name] = jpeg(99)
    _resum(f)
    return name


def _edit_sums(f: Files) -> str:
    f["SHA256SUMS"] = f["SHA256SUMS"].replace(b"manifest.csv", b"manifest.CSV")
    return "SHA256SUMS"


def _edit_signature(f: Files) -> str:
    sig = bytearray(f[SIGNATURE])
    sig[5] ^= 0x01
    f[SIGNATURE] = bytes(sig)
    return SIGNATURE


def _edit_statement(f: Files) -> str:
    """A forger who rewrites the signed list to match the edited files cannot re-sign it."""
    _edit_note(f)
    st = json.loads(f[STATEMENT])
    st["files"] = {n: hashlib.sha256(b).hexdigest() for n, b in f.items() if not n.startswith("signature/")}
    f[STATEMENT] = (json.dumps(st, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    return STATEMENT


@pytest.mark.parametrize(
    "tamper",
    [_edit_note, _edit_manifest, _edit_csv, _swap_snapshot, _edit_sums, _edit_signature, _edit_statement],
)
def test_tampering_with_any_file_fails_and_names_it(
    made: tuple[EvidenceExports, list[int]], tmp_path: Path, tamper: Callable[[Files], str]
) -> None:
    exports, ids = made
    rec = exports.create(exports.store.get_many(ids, None), "ca-daron", reason="Hồ sơ 12/2026")
    original = exports.path(rec)
    assert _verify(original).returncode == 0
    files = _files(original)
    named = tamper(files)
    forged = _write(files, tmp_path / "forged.zip")
    if tamper is not _edit_sums:  # the forger's SHA256SUMS is consistent: only the signature catches it
        sums = subprocess.run(
            ["sha256sum", "-c", "--quiet", "-"],
            input=files["SHA256SUMS"],
            cwd=_unpack(files, tmp_path / "x"),
            capture_output=True,
        )
        assert sums.returncode == 0, sums.stdout
    out = _verify(forged)
    assert out.returncode == 1, out.stdout
    problems = [line for line in out.stdout.splitlines() if "PROBLEM" in line]
    assert any(named in line for line in problems), out.stdout
    assert "FAILED" in out.stdout


def _unpack(files: Files, root: Path) -> Path:
    for n, b in files.items():
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b)
    return root


def test_a_zip_resigned_with_another_key_fails_against_the_servers_fingerprint(
    made: tuple[EvidenceExports, list[int]], tmp_path: Path
) -> None:
    exports, ids = made
    rec = exports.create(exports.store.get_many(ids, None), "ca-daron")
    files = _files(exports.path(rec))
    _edit_note(files)
    mine = Ed25519PrivateKey.generate()
    st = json.loads(files[STATEMENT])
    st["files"] = {
        n: hashlib.sha256(b).hexdigest() for n, b in files.items() if not n.startswith("signature/")
    }
    from cloud.events.signing import fingerprint

    st["key_fingerprint"] = fingerprint(mine.public_key())
    files[STATEMENT] = (json.dumps(st, indent=2, sort_keys=True) + "\n").encode()
    files[SIGNATURE] = mine.sign(files[STATEMENT])
    files[PUBLIC_KEY] = mine.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _write(files, tmp_path / "resigned.zip")
    alone = _verify(forged)  # consistent in itself: the output says which key, and to compare it
    assert alone.returncode == 0 and st["key_fingerprint"] in alone.stdout and "compare" in alone.stdout
    out = _verify(forged, "--trusted-fingerprint", rec.key_fingerprint or "")
    assert out.returncode == 1 and PUBLIC_KEY in out.stdout and "not one of the trusted" in out.stdout


def test_an_export_made_before_a_key_rotation_still_verifies(
    made: tuple[EvidenceExports, list[int]], tmp_path: Path
) -> None:
    exports, ids = made
    signer = exports.signer
    before = exports.create(exports.store.get_many(ids[:1], None), "ca-daron")
    assert stat.S_IMODE(signer.key_file.stat().st_mode) == 0o600  # made on first use, private
    old_fp = before.key_fingerprint
    old, new = signer.rotate()
    assert old is not None and old.fingerprint == old_fp and new.fingerprint != old_fp
    assert stat.S_IMODE(signer.key_file.stat().st_mode) == 0o600
    after = exports.create(exports.store.get_many(ids[1:], None), "ca-daron")
    assert after.key_fingerprint == new.fingerprint
    assert [k.fingerprint for k in signer.retired()] == [old_fp]
    # The old ZIP verifies on its own and against the server's old (retired, still published) key.
    assert _verify(exports.path(before)).returncode == 0
    out = _verify(exports.path(before), "--trusted-fingerprint", " ".join(old.grouped.split()))
    assert out.returncode == 0 and "one of the trusted fingerprints" in out.stdout, out.stdout
    both = ["--trusted-fingerprint", new.fingerprint, "--trusted-fingerprint", old_fp or ""]
    assert _verify(exports.path(before), *both).returncode == 0
    assert _verify(exports.path(after), *both).returncode == 0
    assert _verify(exports.path(before), "--trusted-fingerprint", new.fingerprint).returncode == 1
    # Without commune-iot: the OpenSSL command of VERIFY.txt.
    root = _unpack(_files(exports.path(after)), tmp_path / "after")
    ossl = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            PUBLIC_KEY,
            "-rawin",
            "-in",
            STATEMENT,
            "-sigfile",
            SIGNATURE,
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert ossl.returncode == 0 and "Signature Verified Successfully" in ossl.stdout, (
        ossl.stdout + ossl.stderr
    )
    assert new.fingerprint in (root / "VERIFY.txt").read_text()
    assert b"Signing key" in (root / "summary.html").read_bytes()


def test_the_rotate_key_command_keeps_the_old_public_key(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.yaml"
    cfg.write_text(f"sql:\n  url: sqlite:///{tmp_path / 'c.db'}\nevents:\n  signing_key_file: keys/ev.pem\n")
    first = EvidenceSigner(tmp_path / "keys" / "ev.pem").current()
    out = subprocess.run(
        [sys.executable, "-m", "commune_iot", "evidence", "rotate-key", "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert f"retired key {first.fingerprint}" in out.stdout
    assert (tmp_path / "keys" / "retired" / f"{first.fingerprint}.pub.pem").exists()
    assert out.stdout.count("new signing key") == 1


def test_an_unsigned_export_fails_unless_accepted_as_made_before_signing(
    made: tuple[EvidenceExports, list[int]], tmp_path: Path
) -> None:
    exports, ids = made
    rec = exports.create(exports.store.get_many(ids, None), "ca-daron")
    files = {n: b for n, b in _files(exports.path(rec)).items() if not n.startswith("signature/")}
    legacy = _write(files, tmp_path / "legacy.zip")
    out = _verify(legacy)
    assert out.returncode == 1 and "the export is not signed" in out.stdout
    assert _verify(legacy, "--allow-unsigned").returncode == 0
