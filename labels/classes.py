"""What the detector can name, what we keep, and how people read it.

The model knows the 80 COCO classes; an event keeps only those a commune camera has reason to
report (people, road vehicles, animals on the road). Everything else (an "umbrella", a
"potted plant") is dropped: a wrong label is worse than none. Pure Python, no model needed,
so the cloud's web pages can import it without the ``labels`` extra.
"""

from __future__ import annotations

from typing import Final

#: The model's output order (COCO 2017, 80 classes), with spaces as underscores.
COCO: Final = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic_light", "fire_hydrant", "stop_sign", "parking_meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports_ball", "kite",
    "baseball_bat", "baseball_glove", "skateboard", "surfboard", "tennis_racket", "bottle",
    "wine_glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot_dog", "pizza", "donut", "cake", "chair", "couch", "potted_plant",
    "bed", "dining_table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell_phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy_bear", "hair_drier", "toothbrush",
)  # fmt: skip

#: Classes an event may carry, with the confidence each needs by default. Person and the road
#: vehicles were chosen on the shared clips for precision >= 0.9 (``commune-iot bench labels``);
#: the animals cannot be measured there and get a stricter bar.
MIN_CONFIDENCE: Final[dict[str, float]] = {
    "person": 0.5,
    "bicycle": 0.5,
    "motorcycle": 0.5,
    "car": 0.5,
    "bus": 0.5,
    "truck": 0.5,
    "dog": 0.6,
    "cat": 0.6,
    "cow": 0.6,
    "horse": 0.6,
    "sheep": 0.6,
    "bird": 0.6,
}

#: Groups a filter may ask for instead of one class.
GROUPS: Final[dict[str, frozenset[str]]] = {
    "vehicle": frozenset({"bicycle", "motorcycle", "car", "bus", "truck"}),
    "animal": frozenset({"dog", "cat", "cow", "horse", "sheep", "bird"}),
}

VI: Final[dict[str, str]] = {
    "person": "người",
    "bicycle": "xe đạp",
    "motorcycle": "xe máy",
    "car": "ô tô",
    "bus": "xe buýt",
    "truck": "xe tải",
    "dog": "chó",
    "cat": "mèo",
    "cow": "bò",
    "horse": "ngựa",
    "sheep": "cừu, dê",
    "bird": "chim",
    "vehicle": "xe (mọi loại)",
    "animal": "động vật",
}
EN: Final[dict[str, str]] = {
    "person": "person",
    "bicycle": "bicycle",
    "motorcycle": "motorbike",
    "car": "car",
    "bus": "bus",
    "truck": "truck",
    "dog": "dog",
    "cat": "cat",
    "cow": "cow",
    "horse": "horse",
    "sheep": "sheep, goat",
    "bird": "bird",
    "vehicle": "vehicle (any)",
    "animal": "animal",
}


#: What the event list's object filter offers, in this order.
FILTER_CHOICES: Final = (
    "person", "vehicle", "motorcycle", "car", "truck", "bus", "bicycle",
    "animal", "dog", "cat", "cow", "horse", "sheep", "bird",
)  # fmt: skip


def members(name: str) -> frozenset[str]:
    """The classes a filter value stands for: a group's members, or the class itself."""
    return GROUPS.get(name, frozenset({name}))


def known(name: str) -> bool:
    """A class or group a filter may name."""
    return name in MIN_CONFIDENCE or name in GROUPS


def display(name: str, lang: str = "vi") -> str:
    return (VI if lang == "vi" else EN).get(name, name.replace("_", " "))
