"""The board's twin rules, in process: versions only move forward, a retained copy is not applied
twice, a trial cut short by a restart is reverted, secrets are only ever sealed or kept."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.config import EdgeConfig
from edge.control.state import ControlState, board_key
from edge.control.twin import Apply, Ignore, Refuse, Twin
from wire import crypto

REPO = Path(__file__).resolve().parents[2]
SNMP = {
    "type": "snmp_ap",
    "aps": [{"device": "tt-ap-03", "host": "192.0.2.1"}],
    "snmp": {"community": "local-one"},
}


def local(tmp: Path) -> EdgeConfig:
    return EdgeConfig(
        node="tt-ap-03", commune="tu-tra", outbox={"path": str(tmp / "outbox.sqlite3")}, collectors=[SNMP]
    )


def twin(tmp: Path) -> Twin:
    cfg = local(tmp)
    return Twin(cfg, ControlState(tmp), board_key(tmp), None)


def desired(version: int, config: dict[str, Any], node: str = "tt-ap-03") -> bytes:
    doc = {
        "v": 1,
        "node": node,
        "version": version,
        "issued_by": "test",
        "issued_at": datetime.now(UTC).isoformat(),
        "config": config,
    }
    return json.dumps(doc).encode()


def snmp(community: str, interval_s: float = 30) -> dict[str, Any]:
    return {"collectors": [{**SNMP, "snmp": {"community": community}, "interval_s": interval_s}]}


def test_versions_only_move_forward(tmp_path: Path) -> None:
    t = twin(tmp_path)
    got = t.receive(desired(2, snmp(crypto.REDACTED, 10)))
    assert isinstance(got, Apply) and got.config.collectors[0].options.interval_s == 10  # type: ignore[attr-defined]
    assert got.config.collectors[0].options.snmp.community.get_secret_value() == "local-one"  # type: ignore[attr-defined]
    t.applied(2, got.doc, trial=False)
    assert isinstance(t.receive(desired(2, snmp(crypto.REDACTED, 10))), Ignore)  # the retained copy again
    stale = t.receive(desired(1, snmp(crypto.REDACTED, 20)))
    assert isinstance(stale, Refuse) and stale.state == "stale"
    bad = t.receive(desired(3, {"health_interval_s": -1}))
    assert isinstance(bad, Refuse) and bad.state == "rejected" and "health_interval_s" in bad.error
    t.refused(bad)
    assert isinstance(t.receive(desired(3, snmp(crypto.REDACTED))), Ignore)  # answered already
    assert isinstance(t.receive(desired(4, snmp(crypto.REDACTED))), Apply)
    assert isinstance(t.receive(desired(5, snmp(crypto.REDACTED), node="tt-ap-04")), Ignore)  # not ours


def test_a_trial_cut_short_by_a_restart_is_reverted(tmp_path: Path) -> None:
    t = twin(tmp_path)
    good = t.receive(desired(1, snmp(crypto.REDACTED, 10)))
    assert isinstance(good, Apply)
    t.applied(1, good.doc, trial=False)
    trial = t.receive(desired(2, snmp(crypto.REDACTED, 20)))
    assert isinstance(trial, Apply)
    t.applied(2, trial.doc, trial=True)
    t.state.close()
    again = twin(tmp_path)  # the agent restarts
    cfg = again.startup()
    assert cfg.collectors[0].options.interval_s == 10  # type: ignore[attr-defined]
    st = again.st
    assert (st.running, st.state, st.version, st.good) == (1, "reverted", 2, True)
    assert "on trial when the agent restarted" in (st.error or "")


def test_secrets_are_sealed_for_this_board_or_kept_never_clear(tmp_path: Path) -> None:
    t = twin(tmp_path)
    mine = crypto.board_public_b64(t.key)
    sealed = t.receive(desired(1, snmp(crypto.seal(mine, "new-one"))))
    assert isinstance(sealed, Apply)
    assert sealed.config.collectors[0].options.snmp.community.get_secret_value() == "new-one"  # type: ignore[attr-defined]
    assert "new-one" not in json.dumps(sealed.doc)
    t.applied(1, sealed.doc, trial=False)
    kept = t.receive(desired(2, snmp(crypto.REDACTED, 5)))  # keeps the sealed one, not the local file's
    assert isinstance(kept, Apply)
    assert kept.config.collectors[0].options.snmp.community.get_secret_value() == "new-one"  # type: ignore[attr-defined]
    assert crypto.is_sealed(kept.doc["collectors"][0]["snmp"]["community"])
    other = crypto.board_public_b64(crypto.new_board_key())
    v3 = {"version": "3", "user": "u", "auth_key": crypto.REDACTED}
    cases = [
        (snmp("in-clear"), "a secret in clear"),
        (snmp(crypto.seal(other, "x")), "sealed for another board key"),
        ({"collectors": [{**SNMP, "snmp": v3}]}, "has none"),  # nothing to keep there
    ]
    for version, (config, why) in enumerate(cases, start=3):
        got = t.receive(desired(version, config))
        assert isinstance(got, Refuse) and why in got.error, got


@pytest.mark.parametrize("url", ["rtsp://admin:pw@10.0.0.5/ch1", "rtsp://10.0.0.5/ch1"])
def test_a_password_inside_a_url_counts_as_clear(tmp_path: Path, url: str) -> None:
    t = twin(tmp_path)
    cam = {"type": "camera", "device": "tt-ap-03", "url": url}
    got = t.receive(desired(1, {"collectors": [cam]}))
    assert isinstance(got, Refuse if "pw@" in url else Apply), got


def test_the_cloud_checks_configurations_without_opencv_or_pysnmp() -> None:
    """The twin's schema is the edge's own models, importable where only the cloud extra is."""
    code = (
        "import sys; from cloud.fleet import schema; "
        "schema.check({'collectors': [{'type': 'camera', 'device': 'dr-cam-01', 'url': 'rtsp://h/x'}, "
        "{'type': 'snmp_ap', 'aps': [{'device': 'tt-ap-03', 'host': 'h'}], "
        "'snmp': {'community': '**********'}}]}); "
        "print(sorted(m for m in ('cv2', 'pysnmp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out
