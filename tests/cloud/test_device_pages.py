"""The fleet list one page at a time (``/api/v1/devices?limit=&offset=``), as a screen of a
province-wide fleet reads it; without ``limit`` it answers every device, as it always did."""

from __future__ import annotations

import httpx
from cloud_helpers import encoded, eventually, health, publish, topic
from support import admin_headers

from cloud.api.app import create_app
from cloud.runtime import Runtime
from commune_iot.localsvc import Mosquitto
from wire import Channel


async def test_pages_add_up_to_the_whole_list(runtime: Runtime, mosquitto: Mosquitto) -> None:
    traffic = [
        (topic("da-ron", "dr-ap-01", Channel.HEALTH), encoded(health("dr-ap-01", 1))),
        (topic("da-ron", "dr-ap-01", Channel.HEALTH), encoded(health("dr-ap-01", 3))),  # seq 2 lost
        (
            topic("lac-xuan", "lx-ap-99", Channel.HEALTH),
            encoded(health("lx-ap-99", 1)),
        ),  # not in the inventory
    ]
    publish(mosquitto, traffic)
    await eventually(runtime.sql.node_communes, lambda n: {"dr-ap-01", "lx-ap-99"} <= n.keys(), what="nodes")
    app = create_app(runtime, manage_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(runtime.sql.engine)
    ) as api:
        everything = (await api.get("/api/v1/devices")).json()
        assert len(everything) == 60 and everything[-1]["id"] == "lx-ap-99"  # 59 listed, then strangers
        pages: list[dict[str, object]] = []
        url: str | None = "/api/v1/devices?limit=7"
        while url is not None:
            r = await api.get(url)
            assert r.status_code == 200 and r.headers["X-Total-Count"] == "60"
            pages += r.json()
            link = r.headers.get("Link")
            url = link[1 : link.index(">")] if link else None
        assert pages == everything
        page = (
            await api.get("/api/v1/devices", params={"limit": 2, "offset": 0, "commune": "da-ron"})
        ).json()
        assert [d["id"] for d in page] == [d["id"] for d in everything if d["commune"] == "da-ron"][:2]
        first = page[0]
        assert first["id"] == "dr-ap-01" and first["messages"] == 2 and first["gaps"] == 1
        beyond = await api.get("/api/v1/devices", params={"limit": 10, "offset": 1000})
        assert beyond.json() == [] and "Link" not in beyond.headers
        assert (await api.get("/api/v1/devices", params={"limit": 0})).status_code == 422
        assert (await api.get("/api/v1/devices", params={"limit": 1001})).status_code == 422
