"""Test data: JPEG images with boxes and polygons in a lensdb server."""

from __future__ import annotations

import io

import httpx
from PIL import Image


def jpeg(
    width: int = 64,
    height: int = 48,
    color: tuple[int, int, int] = (200, 30, 30),
    quality: int = 90,
) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (width, height), color)
    # Some structure, so that sizes differ per image and crops are visible.
    for x in range(0, width, 7):
        for y in range(height):
            img.putpixel((x, y), (x * 3 % 256, y * 5 % 256, 90))
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def add_images(
    client,
    n: int,
    dataset: str,
    start: int = 0,
    boxes: bool = True,
    polygons: bool = False,
    width: int = 64,
    height: int = 48,
    label: str = "Cat",
) -> None:
    """Add n images (guid `<dataset>-<i>`) in transactions of 50, each with a box and maybe a polygon."""
    for base in range(start, start + n, 50):
        q: list[dict] = []
        blobs: list[bytes] = []
        for i in range(base, min(base + 50, start + n)):
            ref = len(q) + 1
            q.append(
                {
                    "AddImage": {
                        "_ref": ref,
                        "properties": {
                            "guid": f"{dataset}-{i}",
                            "dataset": dataset,
                            "n": i,
                            "width": width,
                            "height": height,
                        },
                    }
                }
            )
            blobs.append(jpeg(width, height, (i * 37 % 256, 80, 120)))
            if boxes:
                q.append(
                    {
                        "AddBoundingBox": {
                            "image_ref": ref,
                            "label": label,
                            "properties": {"score": 0.9},
                            "rectangle": {"x": 4, "y": 6, "width": 20, "height": 16},
                        }
                    }
                )
            if polygons:
                q.append(
                    {
                        "AddPolygon": {
                            "image_ref": ref,
                            "label": label,
                            "polygons": [[[10, 10], [40, 12], [30, 40]]],
                        }
                    }
                )
        r, _ = client.query(q, blobs)
        assert isinstance(r, list) and all(v["status"] == 0 for c in r for v in c.values()), r


def session_token(server) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{server.http_port}/api/",
        json=[{"Authenticate": {"username": "admin", "password": server.admin_password}}],
    )
    return r.json()["json"][0]["Authenticate"]["session_token"]


def uniqueids(client, constraints: dict) -> list[str]:
    r, _ = client.query(
        [
            {
                "FindImage": {
                    "constraints": constraints,
                    "uniqueids": True,
                    "blobs": False,
                    "sort": "n",
                }
            }
        ]
    )
    return [e["_uniqueid"] for e in r[0]["FindImage"].get("entities") or []]
