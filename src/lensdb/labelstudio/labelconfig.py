"""Read what a Label Studio labeling config offers: which controls exist, for which object, with which labels.

Pure stdlib so the storage plugin and a standalone connector can share it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

# Control tags whose results carry region geometry, by the region kind they produce.
REGION_CONTROLS = {
    "rectanglelabels": "box",
    "rectangle": "box",
    "polygonlabels": "polygon",
    "polygon": "polygon",
    "keypointlabels": "keypoint",
    "keypoint": "keypoint",
}
OBJECT_TAGS = {"image", "text", "audio", "video", "hypertext", "timeseries", "paragraphs", "table"}


@dataclass
class Control:
    """One control tag (`<RectangleLabels name=... toName=...>`)."""

    name: str
    type: str  # lower-case tag, e.g. "rectanglelabels"
    to_name: str
    labels: list[str] = field(default_factory=list)


@dataclass
class LabelConfig:
    controls: list[Control] = field(default_factory=list)
    objects: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (tag, value var)

    def first(self, *types: str) -> Control | None:
        """The first control of one of these types, in the order the types are given."""
        for t in types:
            for c in self.controls:
                if c.type == t:
                    return c
        return None

    def box_control(self) -> Control | None:
        return self.first("rectanglelabels", "rectangle")

    def polygon_control(self) -> Control | None:
        return self.first("polygonlabels", "polygon")

    def image_data_key(self, default: str = "image") -> str:
        """The task data key the first Image tag reads (`value="$image"` -> `image`)."""
        for tag, value in self.objects.values():
            if tag == "image" and value.startswith("$"):
                return value[1:]
        return default

    def names_of(self, *types: str) -> list[str]:
        return [c.name for c in self.controls if c.type in types]


def _labels_for(elem: ET.Element) -> list[str]:
    own = [
        child.get("value", "") for child in elem.iter() if child.tag.lower() in ("label", "choice")
    ]
    return [x for x in own if x]


def parse_label_config(xml: str | None) -> LabelConfig:
    """Parse a labeling config; an empty or broken config gives an empty LabelConfig."""
    cfg = LabelConfig()
    if not xml or not xml.strip():
        return cfg
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return cfg
    # `<Labels>` tags combined with a plain `<Rectangle>` share their label list via toName.
    plain_labels: dict[str, list[str]] = {}
    for elem in root.iter():
        tag = elem.tag.lower()
        name = elem.get("name")
        if not name:
            continue
        if tag in OBJECT_TAGS:
            cfg.objects[name] = (tag, elem.get("value", ""))
        elif elem.get("toName") is not None:
            labels = _labels_for(elem)
            cfg.controls.append(
                Control(name=name, type=tag, to_name=elem.get("toName", ""), labels=labels)
            )
            if tag == "labels":
                plain_labels.setdefault(elem.get("toName", ""), []).extend(labels)
    for c in cfg.controls:
        if c.type in ("rectangle", "polygon", "keypoint") and not c.labels:
            c.labels = list(plain_labels.get(c.to_name, []))
    return cfg
