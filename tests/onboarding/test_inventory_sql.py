"""The inventory in SQL (both engines): seeded from the YAML, exported back the same, changed
only into a consistent inventory, and taken by every process holding it (another process's
live inventory, ingest's converter, alerting) without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cloud.alerting.alerter import Alerter
from cloud.alerting.settings import AlertingConfig
from cloud.ingest.convert import Converted, Converter, Rejected
from cloud.inventory import load_inventory
from cloud.onboarding.live import LiveInventory
from cloud.onboarding.store import Conflict, InventoryError, NewDevice, NotFound
from cloud.storage.alerts_sql import AlertStore
from cloud.storage.sql import SqlStore
from wire import Health, Status, encode
from wire.topics import Channel, topic_for

YAML = Path(__file__).resolve().parents[2] / "firmware_config" / "inventory.yaml"
T0 = 1_800_000_000.0


@pytest.fixture
def sql(sql_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sql_url)
    yield store
    store.dispose()


def _health(node: str, seq: int, at: float) -> bytes:
    return encode(
        Health(node=node, session="a1b2c3d4", seq=seq, ts=at, agent_uptime_s=seq, outbox_depth=0)  # type: ignore[arg-type]
    )


def _status(node: str, state: str, at: float) -> bytes:
    reason = "birth" if state == "online" else "will"
    return encode(Status(node=node, session="a1b2c3d4", seq=0, ts=at, state=state, reason=reason))  # type: ignore[arg-type]


def test_the_yaml_seeds_an_empty_database_and_exports_back_the_same(sql: SqlStore, tmp_path: Path) -> None:
    live = LiveInventory.open(sql.engine, YAML)
    assert live.inventory.version == 1
    assert live.inventory.counts() == {"ap": 35, "camera": 24}
    exported = live.store.export()
    original = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    assert exported == original  # every item, its extra keys (uplink, district...) and the order
    # a second process finds it seeded and does not seed again
    assert LiveInventory.open(sql.engine, tmp_path / "missing.yaml").inventory.version == 1
    # importing an edited file updates what changed and nothing else
    original["sites"][0]["name"] = "Nhà văn hóa thôn 1 (mới)"
    edited = tmp_path / "inventory.yaml"
    edited.write_text(yaml.safe_dump(original, allow_unicode=True), encoding="utf-8")
    report = live.store.import_(load_inventory(edited), "cli:test")
    assert (report.added, report.updated, report.skipped) == ({}, {"sites": 1}, [])
    assert live.refresh() and live.inventory.version == 2
    assert next(s for s in live.inventory.sites if s.id == "dr-thon-01").name == "Nhà văn hóa thôn 1 (mới)"


def test_an_empty_database_without_a_yaml_says_what_to_do(sql: SqlStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holds no inventory .* `commune-iot inventory import FILE`"):
        LiveInventory.open(sql.engine, tmp_path / "missing.yaml")


def test_changes_are_checked_and_reach_another_process_and_its_converter(sql: SqlStore) -> None:
    here = LiveInventory.open(sql.engine, YAML)
    there = LiveInventory.open(sql.engine, YAML)  # another cloud process on the same database
    conv = Converter(there.inventory)
    topic = topic_for("da-ron", "dr-cam-13", Channel.HEALTH)
    before = conv.convert(topic, _health("dr-cam-13", 1, T0), T0)
    assert isinstance(before, Converted) and not before.known  # a stranger so far

    store = here.store
    v = store.version()
    refused = [
        (NewDevice("dr-cam-13", "camera", "da-ron", "nowhere"), InventoryError, "unknown site nowhere"),
        (NewDevice("dr-cam-13", "camera", "da-ron", "tt-thon-01"), InventoryError, "is in commune tu-tra"),
        (NewDevice("dr-cam-01", "camera", "da-ron", "dr-thon-01"), Conflict, "device dr-cam-01 already"),
        (NewDevice("dr-cam-13", "camera", "nope", "x", site_name="X"), InventoryError, "unknown commune"),
        (NewDevice("dr cam", "camera", "da-ron", "dr-thon-01"), InventoryError, "devices.*id"),
    ]
    for new, error, why in refused:
        with pytest.raises(error, match=why):
            store.add_device(new, "tester")
    assert store.version() == v, "a refused change raised the version"

    added = store.add_device(
        NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-13", name="Cổng chợ mới", site_name="Chợ mới"),
        "tester",
    )
    assert added.new_board and added.device.added_by == "tester"
    assert there.refresh() and there.inventory.node("dr-cam-13") is not None
    now = conv.convert(topic, _health("dr-cam-13", 2, T0 + 10), T0 + 10)
    assert isinstance(now, Converted) and now.known
    assert "site=dr-diem-13" in now.lines[0] and "kind=camera" in now.lines[0]

    store.move("dr-cam-13", "da-ron", "dr-thon-02", "tester")
    there.refresh()
    moved = conv.convert(topic, _health("dr-cam-13", 3, T0 + 20), T0 + 20)
    assert isinstance(moved, Converted) and "site=dr-thon-02" in moved.lines[0]

    done = store.decommission("dr-cam-13", "tester")
    assert done.board_retired and done.device.decommissioned_by == "tester"
    there.refresh()
    assert there.inventory.node("dr-cam-13") is None and there.inventory.is_retired("dr-cam-13")
    gone = conv.convert(topic, _health("dr-cam-13", 4, T0 + 30), T0 + 30)
    assert isinstance(gone, Rejected) and "decommissioned" in gone.reason
    # its last status stays retained at the broker: read again at every connection, ignored
    status_topic = topic_for("da-ron", "dr-cam-13", Channel.STATUS)
    assert conv.convert(status_topic, _status("dr-cam-13", "offline", T0 + 30), T0 + 40) is None
    # ids are never reused; a decommissioned device cannot be changed
    with pytest.raises(Conflict, match="never reused"):
        store.add_device(NewDevice("dr-cam-13", "camera", "da-ron", "dr-diem-13"), "tester")
    with pytest.raises(NotFound):
        store.decommission("dr-cam-13", "tester")
    assert [r.id for r in store.records(decommissioned=True) if r.decommissioned_at] == ["dr-cam-13"]


def test_a_second_device_on_a_board_leaves_it_in_service_until_the_last_goes(sql: SqlStore) -> None:
    live = LiveInventory.open(sql.engine, YAML)
    store = live.store
    first = store.add_device(NewDevice("lx-ap-21", "ap", "lac-xuan", "lx-thon-01", node="lx-nvh-01"), "t")
    second = store.add_device(NewDevice("lx-ap-22", "ap", "lac-xuan", "lx-thon-01", node="lx-nvh-01"), "t")
    assert first.new_board and not second.new_board
    with pytest.raises(InventoryError, match="board lx-nvh-01 is at lx-thon-01"):
        store.add_device(NewDevice("lx-ap-23", "ap", "lac-xuan", "lx-thon-02", node="lx-nvh-01"), "t")
    assert not store.decommission("lx-ap-21", "t").board_retired
    assert store.decommission("lx-ap-22", "t").board_retired
    live.refresh()
    assert live.inventory.is_retired("lx-nvh-01")
    # a report of a period that began before they left still counts them
    assert {"lx-ap-21", "lx-ap-22"} <= {d.id for d in live.inventory.devices_since(T0 - 86400 * 365)}
    assert {"lx-ap-21", "lx-ap-22"}.isdisjoint(d.id for d in live.inventory.devices_since(4e9))


def test_a_decommissioned_board_leaves_alerting_without_a_back_up_notice(sql: SqlStore) -> None:
    """Its open alert is resolved (recorded for the outage data, not announced) and nothing it
    or the nodes table says brings it back."""
    live = LiveInventory.open(sql.engine, YAML)
    alerter = Alerter(
        AlertingConfig(reminder_s=600),
        live.inventory,
        AlertStore(sql.engine),
        "worker-a",
        last_seen_source=lambda: {n: ("da-ron", last[n]) for n in last},
    )
    boards = ("dr-cam-01", "dr-cam-02")
    last = {n: T0 for n in boards}
    now = T0
    sent: list[tuple[str, str]] = []
    recorded: list[tuple[str, str]] = []

    def observe(node: str, body: bytes, channel: Channel) -> None:
        res = Converter(live.inventory).convert(topic_for("da-ron", node, channel), body, now)
        if isinstance(res, Converted):
            alerter.observe([(res, now)])

    def run(seconds: int, alive: tuple[str, ...]) -> None:
        nonlocal now
        for _ in range(seconds):
            now += 1
            if int(now) % 10 == 0:
                for n in alive:
                    last[n] = now
                    observe(n, _health(n, int(now), now), Channel.HEALTH)
            res = alerter.step(now, broker_connected=True)
            sent.extend((x.kind, x.subject) for x in res.notices)
            recorded.extend((x.kind, x.subject) for x in res.records)

    for n in boards:
        observe(n, _status(n, "online", now), Channel.STATUS)
    run(60, boards)
    run(60, ("dr-cam-02",))  # dr-cam-01 goes silent: an alert, sent
    assert sent == [("open", "dr-cam-01")]

    live.store.decommission("dr-cam-01", "tester")
    live.refresh()
    run(30, ("dr-cam-02",))
    assert sent == [("open", "dr-cam-01")], "people were told a decommissioned board is back"
    assert recorded[-1] == ("resolve", "dr-cam-01")
    (row,) = AlertStore(sql.engine).query(state="resolved", limit=10)
    assert row.subject == "dr-cam-01"
    # its retained birth read again at a reconnect, and the nodes table's old last-seen, are ignored
    observe("dr-cam-01", _status("dr-cam-01", "online", now), Channel.STATUS)
    run(120, ("dr-cam-02",))
    assert sent == [("open", "dr-cam-01")] and not AlertStore(sql.engine).unresolved()
    assert alerter.engine.node_state("dr-cam-01") == "unknown"  # not watched at all
