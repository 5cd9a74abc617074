"""``commune-iot grafana export``: the dashboards as JSON files, one per uid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from commune_iot.grafana.dashboards import all_dashboards

JSON_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"


def rendered() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {f"{d.uid}.json": d.to_json() for d in all_dashboards()}


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(out: Path | None = None) -> int:
    target = out or JSON_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, model in rendered().items():
        (target / name).write_text(dumps(model), encoding="utf-8")
        print(f"wrote {target / name}: {model['title']} ({len(model['panels'])} panels)")
    return 0
