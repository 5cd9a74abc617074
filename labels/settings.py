"""The labelling policy's settings: part of both the camera's and the cloud's config.

Pydantic only (no numpy, no model), so that either config loads where the ``labels`` extra
is not installed; the labeller itself is imported only when labelling is switched on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labels.classes import COCO, MIN_CONFIDENCE


class LabelSettings(BaseModel):
    """Knobs of the labelling policy; both sides' configs include them."""

    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(
        default=None,
        description="The ONNX model file, or the directory `commune-iot models fetch` filled; "
        "default: $CIOT_MODELS_DIR or ~/.cache/commune-iot/models.",
    )
    threads: int = Field(default=1, ge=1, le=16, description="CPU threads for one inference.")
    min_confidence: dict[str, float] = Field(
        default_factory=lambda: dict(MIN_CONFIDENCE),
        description="Classes that may label an event, each with the confidence it needs (0..1). "
        "Classes left out are never reported.",
    )
    motion_cover: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of a detection's box that must lie in the picture's moving regions "
        "(when they are known): keeps parked cars and still people off a passer-by's event.",
    )
    crops: int = Field(
        default=3, ge=0, le=8, description="Zoomed views around moving regions, besides the whole picture."
    )
    crop_min: float = Field(
        default=0.45,
        gt=0,
        le=1,
        description="A zoomed view's side is at least this share of the picture's shorter side.",
    )

    @field_validator("min_confidence")
    @classmethod
    def _classes(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(COCO))
        if unknown:
            raise ValueError(f"unknown classes {unknown} (the model's: {', '.join(COCO)})")
        bad = sorted(k for k, c in v.items() if not 0 < c <= 1)
        if bad:
            raise ValueError(f"confidence must be in (0, 1] for {bad}")
        return v
