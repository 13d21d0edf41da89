"""Images with boxes and polygons loaded into lensdb through the aperturedb SDK, with the expected values."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from .conftest import jpeg_bytes

BOX_LABELS = ["Cat", "Dog"]
POLY_LABELS = ["Road"]
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Text name="caption" value="$caption"/>
  <RectangleLabels name="box" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Road"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Nose"/></KeyPointLabels>
  <Choices name="weather" toName="image"><Choice value="Sunny"/><Choice value="Rainy"/></Choices>
  <TextArea name="note" toName="image"/>
</View>"""


@dataclass
class LoadedImage:
    name: str
    selected: bool
    width: int
    height: int
    data: bytes
    boxes: list[dict] = field(default_factory=list)  # {"x","y","width","height","label"} in pixels
    polygons: list[dict] = field(default_factory=list)  # {"points": [[x, y], ...], "label"}


def load_images(
    connector,
    n: int,
    n_selected: int,
    seed: int = 7,
    batch: int = 50,
    labels: list[str] | None = None,
) -> tuple[str, list[LoadedImage]]:
    """Add n images (the first n_selected tagged selected) with 2 boxes and 1 polygon each.

    Returns the dataset tag (a property on every image) and what was loaded.
    """
    rnd = random.Random(seed)
    tag = uuid.uuid4().hex[:12]
    images = []
    for i in range(n):
        w, h = rnd.choice([(64, 48), (80, 60), (96, 64), (50, 70)])
        img = LoadedImage(
            name=f"{tag}-{i:05d}",
            selected=i < n_selected,
            width=w,
            height=h,
            data=jpeg_bytes(w, h, seed * 100000 + i),
        )
        for _ in range(2):
            bw, bh = rnd.randint(3, w // 2), rnd.randint(3, h // 2)
            img.boxes.append(
                {
                    "x": rnd.randint(0, w - bw),
                    "y": rnd.randint(0, h - bh),
                    "width": bw,
                    "height": bh,
                    "label": rnd.choice(labels or BOX_LABELS),
                }
            )
        x0, y0 = rnd.randint(0, w // 2), rnd.randint(0, h // 2)
        img.polygons.append(
            {
                "points": [[x0, y0], [x0 + w // 3, y0], [x0 + w // 4, y0 + h // 3]],
                "label": POLY_LABELS[0],
            }
        )
        images.append(img)
    for start in range(0, n, batch):
        query, blobs = [], []
        for img in images[start : start + batch]:
            query.append(
                {
                    "AddImage": {
                        "_ref": len(query) + 1,
                        "properties": {
                            "name": img.name,
                            "dataset": tag,
                            "split": "selected" if img.selected else "other",
                            "width": img.width,
                            "height": img.height,
                            "caption": f"caption of {img.name}",
                        },
                    }
                }
            )
            blobs.append(img.data)
            ref = query[-1]["AddImage"]["_ref"]
            for b in img.boxes:
                query.append(
                    {
                        "AddBoundingBox": {
                            "image_ref": ref,
                            "label": b["label"],
                            "rectangle": {
                                "x": b["x"],
                                "y": b["y"],
                                "width": b["width"],
                                "height": b["height"],
                            },
                        }
                    }
                )
            for p in img.polygons:
                query.append(
                    {
                        "AddPolygon": {
                            "image_ref": ref,
                            "label": p["label"],
                            "polygons": [p["points"]],
                        }
                    }
                )
        response, _ = connector.query(query, blobs)
        assert isinstance(response, list) and all(
            next(iter(r.values()))["status"] == 0 for r in response
        ), response
    return tag, images
