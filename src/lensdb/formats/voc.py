"""Pascal VOC in and out: one XML file per image (`Annotations/`), images in `JPEGImages/`,
splits in `ImageSets/Main/<split>.txt`. Boxes are `xmin ymin xmax ymax`, kept as given (floats
stay floats); VOC has no polygons or keypoints, so an export leaves those out and says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lensdb.formats.model import (
    PREDICTIONS,
    Box,
    Category,
    Dataset,
    FormatError,
    ImageRecord,
    Labeling,
    number,
)

OBJECT_ATTRS = ("pose", "truncated", "difficult", "occluded")


def _xml_files(source: Path) -> list[Path]:
    folder = source / "Annotations"
    return sorted((folder if folder.is_dir() else source).rglob("*.xml"))


def _splits(source: Path) -> dict[str, str]:
    main = source / "ImageSets" / "Main"
    out: dict[str, str] = {}
    if main.is_dir():
        for f in sorted(main.glob("*.txt")):
            if "_" in f.stem or f.stem == "trainval":
                continue  # per-class lists and the union of train and val
            for line in f.read_text().split():
                out.setdefault(line, f.stem)
    return out


def _text(path: Path, node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise FormatError(path, f"{where}/{tag}", "missing")
    return child.text.strip()


def read(source: Path, images_dir: Path | None, kind: str) -> Dataset:
    """Parse every XML file under SOURCE (its Annotations/ folder when there is one)."""
    data = Dataset(source=str(source))
    splits = _splits(source)
    labels: dict[str, None] = {}
    files = _xml_files(source)
    if not files:
        raise FormatError(source, "Annotations", "no .xml files found")
    for xml_path in files:
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as e:
            line, col = e.position
            raise FormatError(xml_path, f"line {line} column {col}", str(e)) from None
        name = _text(xml_path, root, "filename", "annotation")
        candidates = [
            *(d / name for d in [images_dir] if d is not None),
            source / "JPEGImages" / name,
            xml_path.parent / name,
        ]
        image = next((c for c in candidates if c.is_file()), candidates[0])
        size = root.find("size")
        w = h = None
        if size is not None and size.find("width") is not None:
            w = number(xml_path, "size/width", _text(xml_path, size, "width", "size"))
            h = number(xml_path, "size/height", _text(xml_path, size, "height", "size"))
        boxes = []
        for i, obj in enumerate(root.findall("object")):
            where = f"object[{i + 1}]"
            label = _text(xml_path, obj, "name", where)
            bb = obj.find("bndbox")
            if bb is None:
                raise FormatError(xml_path, f"{where}/bndbox", "missing")
            x1, y1, x2, y2 = (
                number(xml_path, f"{where}/bndbox/{t}", _text(xml_path, bb, t, f"{where}/bndbox"))
                for t in ("xmin", "ymin", "xmax", "ymax")
            )
            if x2 <= x1 or y2 <= y1:
                raise FormatError(xml_path, f"{where}/bndbox", "xmax/ymax must exceed xmin/ymin")
            props: dict[str, Any] = {}
            for a in OBJECT_ATTRS:
                node = obj.find(a)
                if node is not None and node.text and node.text.strip():
                    t = node.text.strip()
                    props[a] = int(t) if t.lstrip("-").isdigit() else t
            score_node = obj.find("score")
            score = (
                number(xml_path, f"{where}/score", score_node.text)
                if score_node is not None
                else None
            )
            labels[label] = None
            boxes.append(Box(label, x1, y1, x2 - x1, y2 - y1, score, None, props))
        props = {"voc_xml": xml_path.name}
        folder = root.find("folder")
        if folder is not None and folder.text:
            props["folder"] = folder.text.strip()
        split = splits.get(Path(name).stem) or splits.get(xml_path.stem)
        if split:
            props["split"] = split
        this_kind = PREDICTIONS if any(b.score is not None for b in boxes) else kind
        data.images.append(
            ImageRecord(
                file_name=name,
                path=image,
                width=w,
                height=h,
                properties=props,
                labelings=(Labeling(this_kind, tuple(boxes)),) if boxes else (),
            )
        )
    data.categories = [Category(n, i + 1) for i, n in enumerate(sorted(labels))]
    return data


def xml(rec: ImageRecord, file_name: str, kinds: set[str], depth: int = 3) -> bytes:
    """The VOC XML of one image (boxes of the chosen kinds; predictions carry <score>)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(rec.width or 0))
    ET.SubElement(size, "height").text = str(int(rec.height or 0))
    ET.SubElement(size, "depth").text = str(depth)
    ET.SubElement(root, "segmented").text = "0"
    for lab in rec.labelings:
        if lab.kind not in kinds:
            continue
        for b in lab.boxes:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = b.label
            ET.SubElement(obj, "pose").text = str(b.properties.get("pose", "Unspecified"))
            ET.SubElement(obj, "truncated").text = str(b.properties.get("truncated", 0))
            ET.SubElement(obj, "difficult").text = str(b.properties.get("difficult", 0))
            if lab.kind == PREDICTIONS and b.score is not None:
                ET.SubElement(obj, "score").text = repr(b.score)
            bb = ET.SubElement(obj, "bndbox")
            for tag, v in (
                ("xmin", b.x),
                ("ymin", b.y),
                ("xmax", b.x + b.width),
                ("ymax", b.y + b.height),
            ):
                ET.SubElement(bb, tag).text = repr(float(v))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
