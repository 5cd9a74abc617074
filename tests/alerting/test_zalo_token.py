"""Zalo's OA access token expires (about 25 h): the notifier renews it with the stored,
single-use refresh token, keeps the rotated one in SQL (SQLite here, the cloud's own table)
and delivers every notice. Zalo cannot run here: ``zalo_standin`` plays its API and OAuth
endpoint on a real local HTTP server, expiring each access token after a few messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from alerting_helpers import inventory
from local_http import local_http
from pydantic import ValidationError
from zalo_standin import APP_ID, APP_SECRET, OAUTH_PATH, ZaloStandIn, zalo_standin

from cloud.notify.dispatch import Dispatcher
from cloud.notify.messages import Notice
from cloud.notify.settings import RetryConfig, ZaloConfig
from cloud.notify.zalo import ZaloNotifier
from cloud.notify.zalo_token import ZaloToken
from cloud.storage.notice_outbox import SqlNoticeQueue
from cloud.storage.oauth_tokens import OAuthTokenStore
from cloud.storage.sql import SqlStore
from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

FAST = RetryConfig(initial_s=0.05, max_s=0.2, attempts=50, timeout_s=2.0)
T0 = 1_800_000_000.0
FOLLOWERS = ["1111111111111111111", "2222222222222222222"]


def _notice(i: int) -> Notice:
    return Notice("open", i, f"node:n{i}", "node", f"n{i}", "da-ron", "silent", "critical", T0, T0 + 18)


def _cfg(zalo: ZaloStandIn, seed: Path, **over: Any) -> ZaloConfig:
    fields: dict[str, Any] = {
        "base_url": zalo.url,
        "oauth_url": zalo.url + OAUTH_PATH,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "refresh_token_file": seed,
        "user_ids": FOLLOWERS,
        "retry": FAST,
    }
    return ZaloConfig(**{**fields, **over})


def _seed(tmp: Path, zalo: ZaloStandIn) -> tuple[Path, str]:
    token = zalo.authorise()
    path = tmp / "zalo.refresh"
    path.write_text(token + "\n")
    return path, token


async def test_a_token_expiring_every_3_messages_is_renewed_kept_across_a_restart_and_every_notice_arrives(
    tmp_path: Path, sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = sql_url
    with zalo_standin(budget=3) as zalo:
        seed, first = _seed(tmp_path, zalo)
        for notices in (range(1, 5), range(5, 9)):  # the second pass is the cloud after a restart
            sql = SqlStore(db)
            zalo_notifier = ZaloNotifier(_cfg(zalo, seed), OAuthTokenStore(sql.engine), "ciot-cloud-1")
            d = Dispatcher([zalo_notifier], inventory(), queue=SqlNoticeQueue(sql.engine))
            d.start()
            for i in notices:
                d.queue.put("zalo", _notice(i), time.time())
            d.wake()
            assert await d.wait_idle(20)
            assert d.stats["zalo"].given_up == 0
            await d.stop()
            sql.dispose()
    # every notice reached both followers once, in order, through 6 access tokens
    assert [(user, text.splitlines()[-1]) for user, _, text in zalo.delivered] == [
        (user, f"#{i}") for i in range(1, 9) for user in FOLLOWERS
    ]
    assert len({token for _, token, _ in zalo.delivered}) == 6
    # each renewal spent the refresh token the one before received (the configured one
    # first, once), across the restart; Zalo refused none
    assert zalo.refreshes == [(t, True) for t in [first, *zalo.issued[:-1]]]
    # after the restart the stored access token was used up before renewing
    assert zalo.delivered[8][1] == zalo.delivered[7][1]
    sql = SqlStore(db)
    with sql.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT refresh_token FROM oauth_tokens WHERE name = 'zalo'").scalar()
    sql.dispose()
    assert stored == zalo.issued[-1]
    assert "access token renewed" in caplog.text
    assert [s for s in zalo.secrets() if s in caplog.text] == []


async def test_two_workers_renewing_at_once_spend_the_refresh_token_once(
    tmp_path: Path, sql_url: str
) -> None:
    db = sql_url
    with zalo_standin(oauth_delay_s=0.5) as zalo:
        seed, _ = _seed(tmp_path, zalo)
        async with httpx.AsyncClient() as client:
            workers = [
                ZaloToken(_cfg(zalo, seed), OAuthTokenStore(SqlStore(db).engine), f"ciot-cloud-{i}", client)
                for i in (1, 2)
            ]
            got = await asyncio.gather(*(w.get() for w in workers))
            # Zalo then calls that token expired: both ask at once, one renews, both use its answer
            zalo.expire(got[0])
            again = await asyncio.gather(*(w.rejected(got[0]) for w in workers))
    assert [ok for _, ok in zalo.refreshes] == [True, True]
    assert got[0] == got[1] and again[0] == again[1] != got[0]


async def test_a_sender_cancelled_mid_renewal_loses_neither_the_answer_nor_the_refresh_token(
    tmp_path: Path,
) -> None:
    """The dispatcher gives up an attempt after its timeout (and a stop cancels it): Zalo has
    spent the refresh token by then, so its answer must still be stored, and used."""
    with zalo_standin(oauth_delay_s=1.0) as zalo:
        seed, first = _seed(tmp_path, zalo)
        async with httpx.AsyncClient(timeout=5.0) as client:
            token = ZaloToken(
                _cfg(zalo, seed),
                OAuthTokenStore(SqlStore(f"sqlite:///{tmp_path / 'c.db'}").engine),
                "w",
                client,
            )
            sender = asyncio.create_task(token.get())
            await asyncio.to_thread(zalo.wait, lambda z: z.server.requests, 10, "the renewal request")
            sender.cancel()  # while Zalo is still answering
            with pytest.raises(asyncio.CancelledError):
                await sender
            got = await token.get()
            await token.aclose()
    assert zalo.refreshes == [(first, True)]
    assert zalo.remaining == {got: 3}


async def test_the_token_is_renewed_before_it_expires_while_nothing_is_sent(tmp_path: Path) -> None:
    with zalo_standin(expires_in="4") as zalo:
        seed, first = _seed(tmp_path, zalo)
        cfg = _cfg(zalo, seed, refresh_before_s=3.0)  # renewed 1 s after each renewal
        notifier = ZaloNotifier(cfg, OAuthTokenStore(SqlStore(f"sqlite:///{tmp_path / 'c.db'}").engine), "w")
        notifier.start()
        try:
            await asyncio.to_thread(zalo.wait, lambda z: len(z.refreshes) >= 3, 20, "three renewals")
        finally:
            await notifier.aclose()
    assert zalo.refreshes[:3] == [(first, True), (zalo.issued[0], True), (zalo.issued[1], True)]
    assert zalo.delivered == []


async def test_a_follower_outside_the_7_day_window_is_named_and_the_others_still_get_the_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = "3333333333333333333"
    with zalo_standin(silent_followers={silent}) as zalo:
        seed, _ = _seed(tmp_path, zalo)
        cfg = _cfg(zalo, seed, user_ids=[FOLLOWERS[0], silent, FOLLOWERS[1]])
        store = OAuthTokenStore(SqlStore(f"sqlite:///{tmp_path / 'c.db'}").engine)
        d = Dispatcher([ZaloNotifier(cfg, store, "w")], inventory())
        d.start()
        d.submit(_notice(1))
        assert await d.wait_idle(10)
        await d.stop()
    assert [user for user, _, _ in zalo.delivered] == FOLLOWERS  # once each: nothing resent
    assert d.stats["zalo"].given_up == 1 and d.stats["zalo"].failed_attempts == 1
    assert f"cannot reach follower {silent}" in caplog.text
    assert "ask them to send the OA any message" in caplog.text


def test_a_fixed_access_token_is_refused_with_what_to_configure_instead(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"stops working within about 25 h.*refresh_token_file"):
        ZaloConfig(access_token_file=tmp_path / "zalo.token", user_ids=["1"])  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="refresh_token_file"):
        ZaloConfig(app_id=APP_ID, app_secret=APP_SECRET, user_ids=["1"])


def _readyz(cloud: CloudProcess) -> Any:
    try:
        return cloud.get_json("/readyz")
    except urllib.error.HTTPError as exc:  # 503: the body says why
        return json.load(exc)


def _start(cloud: CloudProcess) -> None:
    """Started and connected to the broker (a restarted worker takes a moment to reconnect)."""
    cloud.start()
    deadline = time.monotonic() + 30
    while not _readyz(cloud)["ready"]:
        assert time.monotonic() < deadline, _readyz(cloud)
        time.sleep(0.1)


def test_the_cloud_keeps_the_rotated_token_across_kill9_and_a_refused_renewal_reaches_the_webhook(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    """``commune-iot cloud serve`` itself, killed with SIGKILL and restarted. Notices are put in
    its SQL outbox the way another worker's evaluator puts them there."""
    state = tmp_path / "cloud"
    db = f"sqlite:///{state / 'ciot-cloud.db'}"
    with zalo_standin(budget=2) as zalo, local_http(lambda _r, _i: (200, {"ok": True})) as hook:
        seed, first = _seed(tmp_path, zalo)
        cfg = cloud_config(
            mqtt_url=mosquitto.url,
            influx_url=influx_server.url,
            influx_db=influx_db,
            influx_user=influx_server.username,
            influx_password_file=None,
            state_dir=state,
            http_port=free_port(),
        )
        zalo_cfg = _cfg(zalo, seed, check_s=1.0).model_dump(mode="json", exclude={"app_secret", "retry"})
        zalo_cfg.update(
            app_secret=APP_SECRET, retry={"initial_s": 0.2, "max_s": 1.0, "attempts": 100, "timeout_s": 5.0}
        )
        if influx_server.password:
            cfg["influx"]["password"] = influx_server.password
        cfg["alerting"] = {"notify": {"webhooks": [{"url": hook.url + "/hook"}], "zalo": [zalo_cfg]}}
        cloud = CloudProcess.write(tmp_path, cfg)
        queue = SqlNoticeQueue(SqlStore(db).engine)
        try:
            for i in (1, 2, 3):
                queue.put("zalo", _notice(i), time.time())
            _start(cloud)
            zalo.wait(lambda z: len(z.delivered) >= 6, 30, "the first three notices")
            time.sleep(random.uniform(0.0, 1.0))  # a random instant, the background check running
            assert cloud.proc is not None
            os.killpg(cloud.proc.pid, signal.SIGKILL)
            cloud.proc.wait(10)
            for i in (4, 5, 6):
                queue.put("zalo", _notice(i), time.time())
            _start(cloud)
            zalo.wait(lambda z: len(z.delivered) >= 12, 30, "three more after the restart")
            assert zalo.refreshes == [(t, True) for t in [first, *zalo.issued[:-1]]]

            # Zalo revokes the app: the access token stops working, no refresh is accepted
            zalo.refuse_refresh = True
            zalo.expire(zalo.delivered[-1][1])
            queue.put("zalo", _notice(7), time.time())
            problem = hook.wait_for(1, 30)[0].json()
            ready = _readyz(cloud)
            metrics = urllib.request.urlopen(cloud.request("/metrics"), timeout=5).read().decode()

            # the technician re-authorises and writes the new refresh token: taken without a restart
            zalo.refuse_refresh = False
            seed.write_text(zalo.authorise() + "\n")
            resolved = hook.wait_for(2, 30)[1].json()
            zalo.wait(lambda z: len(z.delivered) >= 14, 30, "the notice held back meanwhile")
        finally:
            cloud.stop()
    assert (problem["notice"]["kind"], problem["notice"]["scope"], problem["notice"]["subject"]) == (
        "open",
        "channel",
        "zalo",
    )
    assert problem["title"] == (
        "🔴 CẢNH BÁO: Kênh cảnh báo zalo: không gửi được tin: Zalo từ chối mã làm mới (refresh token) "
        "(HTTP 200, error -14014: Invalid refresh token)"
    )
    assert "Cần làm: cấp quyền lại cho ứng dụng Zalo" in problem["text"]
    assert resolved["title"].startswith("✅ ĐÃ KHÔI PHỤC: Kênh cảnh báo zalo")
    assert ready["ready"] is True, ready  # it still ingests and judges
    assert ready["notifiers"]["zalo"].startswith("Zalo refused the refresh token")
    assert str(seed) in ready["notifiers"]["zalo"]
    assert 'ciot_notifier_problem{notifier="zalo"} 1' in metrics
    assert [text.splitlines()[-1] for _, _, text in zalo.delivered] == [
        f"#{i}" for i in range(1, 8) for _ in "ab"
    ]
    log = cloud.log_path.read_text()
    assert "re-authorise app " + APP_ID in log
    assert [s for s in zalo.secrets() if s in log] == []
