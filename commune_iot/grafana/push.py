"""``commune-iot grafana push``: data source and dashboards into an existing Grafana.

Idempotent: the folder and the data source are looked up by uid and updated when they
exist; dashboards are posted with their stable uid and ``overwrite``, so a second push
updates (a new version in Grafana's history) instead of duplicating. Uses grafana-client,
the maintained successor of grafana-api.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from commune_iot import __version__
from commune_iot.grafana.dashboards import all_dashboards
from commune_iot.grafana.model import DATASOURCE_UID

FOLDER_UID = "commune-iot"


@dataclass(frozen=True)
class InfluxSource:
    url: str
    database: str
    username: str = ""
    password: str = ""

    def datasource(self) -> dict[str, Any]:
        """The same data source the provisioning file describes (dashboards/provisioning)."""
        ds: dict[str, Any] = {
            "name": "InfluxDB (commune-iot)",
            "uid": DATASOURCE_UID,
            "type": "influxdb",
            "access": "proxy",
            "url": self.url,
            "basicAuth": bool(self.username),
            "basicAuthUser": self.username,
            "jsonData": {"dbName": self.database, "httpMode": "POST", "timeInterval": "10s"},
            "isDefault": False,
        }
        if self.password:
            ds["secureJsonData"] = {"basicAuthPassword": self.password}
        return ds


def push(url: str, token: str, source: InfluxSource, folder: str = "commune-iot") -> list[str]:
    """Upload everything; returns one line per object for the operator."""
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(url, credential=token, timeout=15.0)
    done: list[str] = []
    try:
        api.folder.get_folder(FOLDER_UID)
        done.append(f"folder {folder!r}: exists")
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(folder, uid=FOLDER_UID)
        done.append(f"folder {folder!r}: created")
    ds = source.datasource()
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
        done.append(f"data source {ds['name']!r}: updated ({source.url}, database {source.database})")
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(ds)
        done.append(f"data source {ds['name']!r}: created ({source.url}, database {source.database})")
    for d in all_dashboards():
        model = d.to_json()
        model["id"] = None  # identity is the uid
        api.dashboard.update_dashboard(
            {
                "dashboard": model,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": f"commune-iot {__version__}",
            }
        )
        done.append(f"dashboard {d.uid!r} ({d.title}): saved")
    return done


def main(url: str, token: str, source: InfluxSource, folder: str) -> int:
    from grafana_client.client import GrafanaException

    try:
        for line in push(url, token, source, folder):
            print(line)
    except GrafanaException as exc:
        status = f"HTTP {exc.status_code}: " if exc.status_code else ""
        hint = ""
        if exc.status_code in (401, 403):
            hint = " (check the token: a service account with the Editor or Admin role)"
        print(f"grafana push to {url} failed: {status}{exc.message}{hint}", file=sys.stderr)
        return 1
    return 0
