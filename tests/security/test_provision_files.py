"""``commune-iot provision`` replaces the broker's files without changing who may read them,
and refuses (changing nothing) when it cannot.

Mosquitto reads passwd, acl and its TLS files as its own user, again on every SIGHUP: a file
rewritten as root's own 0600 locks every client out (issue 14). The broker itself is in
test_broker_security.py and test_broker_live_provisioning.py; these look at the files.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from commune_iot.cli import main as cli
from commune_iot.localsvc import REPO, broker_account, broker_home

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acts as other users (CI runs as root)")
COMPOSE_UID = 1883  # the broker's user and group in the eclipse-mosquitto image


def _state(directory: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file in ``directory``: owner, group, mode, content."""
    out = {}
    for p in sorted(directory.iterdir()):
        st = p.stat()
        out[p.name] = (st.st_uid, st.st_gid, st.st_mode & 0o7777, p.read_bytes())
    return out


def _provision(broker_dir: Path, *args: str) -> None:
    argv = ["provision", *args, "--broker-dir", str(broker_dir), "--out", str(broker_dir.parent / "out")]
    if not args[0].startswith("-") and "--revoke" not in args:
        argv += ["--broker-url", "mqtts://127.0.0.1:8883"]
    assert cli(argv) == 0, argv


@needs_root
def test_files_given_to_the_broker_keep_their_owner_group_and_mode(tmp_path: Path) -> None:
    """An existing setup whose files were chowned to the broker's user (the README used to
    say `chown -R 1883:1883 var/broker`): adding and revoking boards and a new server
    certificate, run as root, leave them the broker's, mode 0600."""
    auth = tmp_path / "broker"
    _provision(auth, "--ca", "--host", "127.0.0.1")
    for args in (["--cloud-user", "ciot-cloud-1"], ["dr-cam-01"], ["dr-cam-02"]):
        _provision(auth, *args)
    for p in [auth, *auth.iterdir()]:
        os.chown(p, COMPOSE_UID, COMPOSE_UID)
        if p.is_file():
            p.chmod(0o600)
    before = _state(auth)

    _provision(auth, "dr-cam-03")
    _provision(auth, "dr-cam-02", "--revoke")
    _provision(auth, "--ca", "--host", "127.0.0.1", "--host", "mqtt.example.vn")

    after = _state(auth)
    assert after.keys() == before.keys(), "files appeared or vanished (a temporary file left behind?)"
    for name, (uid, gid, mode, _) in after.items():
        assert (uid, gid, mode) == (COMPOSE_UID, COMPOSE_UID, 0o600), name
    changed = {n for n in after if after[n][3] != before[n][3]}
    assert changed == {"passwd", "acl", "server.crt", "server.key"}
    users = {line.split(":")[0] for line in after["passwd"][3].decode().splitlines()}
    assert users == {"ciot-cloud-1", "dr-cam-01", "dr-cam-03"}


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command as an unprivileged user who is not the files' owner."""
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    argv += [sys.executable, "-m", "commune_iot", "provision", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)


@needs_root
def test_the_readme_layout_works_for_an_operator_who_is_not_root() -> None:
    """The README's directory (the operator's, the broker's group, set-group-ID) lets an
    operator who is not in the broker's group provision, add and revoke without sudo, and
    every file stays readable by the broker's group."""
    nobody = pwd.getpwnam("nobody")
    account = broker_account()
    assert account is not None
    with broker_home() as home:
        var = home / "var"
        var.mkdir()
        os.chown(var, nobody.pw_uid, nobody.pw_gid)
        auth = var / "broker"  # install -d -o "$USER" -g 1883 -m 2750 var/broker
        auth.mkdir()
        os.chown(auth, nobody.pw_uid, account.pw_gid)
        auth.chmod(0o2750)
        out = ["--out", str(var / "bundles")]
        url = ["--broker-url", "mqtts://127.0.0.1:8883"]
        for args in (
            ["--ca", "--host", "127.0.0.1"],
            ["--cloud-user", "ciot-cloud-1", "--out", str(var / "secrets")],
            ["dr-cam-01", *out, *url],
            ["dr-cam-02", *out, *url],
            ["dr-cam-02", "--revoke"],
        ):
            res = _as_nobody(*args, "--broker-dir", str(auth))
            assert res.returncode == 0, res
        state = _state(auth)
        assert sorted(state) == ["acl", "ca.crt", "ca.key", "passwd", "server.crt", "server.key"]
        for name, (uid, gid, mode, _) in state.items():
            assert (uid, gid) == (nobody.pw_uid, account.pw_gid), name
            assert mode == (0o600 if name == "ca.key" else 0o640), name
        users = {line.split(":")[0] for line in state["passwd"][3].decode().splitlines()}
        assert users == {"ciot-cloud-1", "dr-cam-01"}


@needs_root
@pytest.mark.parametrize("layout", ["operator-only directory", "someone else's acl"])
def test_a_user_who_cannot_keep_the_owners_is_refused_and_nothing_changes(layout: str) -> None:
    nobody = pwd.getpwnam("nobody")
    account = broker_account()
    assert account is not None
    with broker_home() as home:
        auth = home / "auth"
        auth.mkdir()
        _provision(auth, "--ca", "--host", "127.0.0.1")
        for board in ("dr-cam-01", "dr-cam-02"):
            _provision(auth, board)
        if layout == "operator-only directory":  # the README's layout, made by root: nobody cannot even read
            os.chown(auth, 0, account.pw_gid)
            auth.chmod(0o2750)
            expect = f"cannot open {auth}"
        else:  # nobody may rewrite passwd and the directory, but not the acl: both must stay as they are
            os.chown(auth, nobody.pw_uid, nobody.pw_gid)
            os.chown(auth / "passwd", nobody.pw_uid, nobody.pw_gid)
            # the acl is read first (boards the inventory does not list keep their commune)
            expect = f"cannot read {auth / 'acl'} (owner root (0)"
        before = _state(auth)

        res = _as_nobody("dr-cam-02", "--revoke", "--broker-dir", str(auth))

        assert res.returncode == 1, res
        assert expect in res.stderr, res.stderr
        assert "run provision as root (sudo)" in res.stderr and "nothing was changed" in res.stderr
        assert "Traceback" not in res.stderr
        assert _state(auth) == before


def test_a_failed_reload_keeps_the_change_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The files are right before the reload runs: the bundle is written all the same (its
    password is in passwd), and the operator is told to reload by hand."""
    auth, out = tmp_path / "broker", tmp_path / "out"
    _provision(auth, "--ca", "--host", "127.0.0.1")
    argv = ["provision", "dr-cam-03", "--broker-dir", str(auth), "--out", str(out)]
    argv += ["--broker-url", "mqtts://127.0.0.1:8883", "--reload", "false"]
    assert cli(argv) == 1
    err = capsys.readouterr().err
    assert "the broker files are updated but `false` failed (exit 1" in err and "reload by hand" in err
    assert (out / "dr-cam-03" / "mqtt.password").is_file()
    assert (auth / "passwd").read_text().startswith("dr-cam-03:")


def test_a_board_provisioned_with_the_cloud_key_takes_only_signed_commands_and_a_bad_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--cloud-key` puts the cloud's command key into the board's edge.yaml (the agent then
    refuses unsigned commands); a key that is not one is refused before any file changes."""
    from edge.config import load_config
    from wire import crypto

    auth = tmp_path / "broker"
    _provision(auth, "--ca", "--host", "127.0.0.1")
    key = crypto.verify_key_b64(crypto.new_signing_key())
    (tmp_path / "cloud.key").write_text(key + "\n")
    _provision(auth, "dr-cam-04", "--cloud-key", str(tmp_path / "cloud.key"))
    edge_yaml = tmp_path / "out" / "dr-cam-04" / "edge.yaml"
    assert load_config(edge_yaml).control.cloud_public_key == key

    before = _state(auth)
    argv = ["provision", "dr-cam-05", "--broker-dir", str(auth), "--out", str(tmp_path / "out")]
    argv += ["--broker-url", "mqtts://127.0.0.1:8883", "--cloud-key", "bm90IGEga2V5"]
    assert cli(argv) == 2
    assert "--cloud-key: control.cloud_public_key is not an Ed25519 public key" in capsys.readouterr().err
    assert _state(auth) == before and not (tmp_path / "out" / "dr-cam-05").exists()
