"""Helpers shared by the engine tests: running queries, making images, snapshotting state."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backends import PgTarget
from lensdb import Database

UID = re.compile(r"^\d+\.\d+\.\d+$")


def ok(db: Database, commands: list | str, blobs: list | None = None) -> tuple[list, list]:
    """Run a query that must succeed; return (responses, blobs)."""
    response, out = db.query(commands, blobs or [])
    assert isinstance(response, list), f"query failed: {response}"
    for item in response:
        body = next(iter(item.values()))
        assert body["status"] in (0, 2), item
    return response, out


def body(response: list, i: int = 0) -> dict[str, Any]:
    """The inner object of the i-th command response."""
    return next(iter(response[i].values()))


def one(db: Database, command: dict, blobs: list | None = None) -> dict[str, Any]:
    """Run one command that must succeed; return its inner response object."""
    response, _ = ok(db, [command], blobs)
    return body(response)


def fail(
    db: Database, commands: list | str | Any, blobs: list | None = None, *, status: int = -1
) -> dict[str, Any]:
    """Run a query that must fail as a whole; return the error object."""
    response, out = db.query(commands, blobs)
    assert isinstance(response, dict), f"expected a failure, got {response}"
    assert response["status"] == status, response
    assert isinstance(response.get("info"), str) and response["info"], response
    assert "internal error" not in response["info"], response
    assert out == []
    return response


def entities(db: Database, command: str = "FindEntity", **params: Any) -> list[dict]:
    """The `entities` list of one Find command."""
    return one(db, {command: params}).get("entities", [])


def prop_values(db: Database, key: str, command: str = "FindEntity", **params: Any) -> list:
    params.setdefault("results", {}).setdefault("list", []).append(key)
    return [e[key] for e in entities(db, command, **params)]


# --- images --------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str = "JPEG", **kw: Any) -> bytes:
    buf = BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(width: int = 64, height: int = 48, color: tuple = (200, 30, 30)) -> bytes:
    return encode(Image.new("RGB", (width, height), color), "JPEG", quality=95)


def png(width: int = 64, height: int = 48, color: tuple = (30, 200, 30)) -> bytes:
    return encode(Image.new("RGB", (width, height), color), "PNG")


def gradient_png(width: int = 64, height: int = 48) -> bytes:
    """Red = x, green = y, blue = 100: each pixel tells where it came from (lossless)."""
    ys, xs = np.mgrid[0:height, 0:width]
    arr = np.stack([xs, ys, np.full_like(xs, 100)], axis=-1).astype(np.uint8)
    return encode(Image.fromarray(arr, "RGB"), "PNG")


def decode(data: bytes) -> Image.Image:
    img = Image.open(BytesIO(data))
    img.load()
    return img


# --- state of a database folder ------------------------------------------------------------------


PACK_NAME = re.compile(r"^[0-9a-f]{32}$")


@contextmanager
def _s3_env(target: PgTarget) -> Iterator[None]:
    """The target's S3 endpoint and keys in the AWS variables while its store is made (boto3
    reads them then): moto's and Ceph's endpoints serve one test session side by side."""
    if target.s3 is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in target.s3.env()}
    os.environ.update(target.s3.env())
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def open_db(target: Path | PgTarget, **kw: Any) -> Database:
    """A Database on a test target: a folder, or a PostgreSQL database and its blob folder."""
    if isinstance(target, PgTarget):
        with _s3_env(target):
            db = Database(target.url, blobs=target.blobs, **kw)
    else:
        db = Database(target, **kw)
    db.target = target  # type: ignore[attr-defined] - for snapshot() in shared fixtures
    return db


def pack_files(folder: Path | PgTarget) -> list[str]:
    """Every pack file under the blobs folder, as relative paths (intent files left out)."""
    if isinstance(folder, PgTarget) and folder.s3 is not None:
        return folder.s3.keys(folder.bucket)
    root = folder.blob_root if isinstance(folder, PgTarget) else Path(folder) / "blobs"
    if root is None or not root.exists():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and PACK_NAME.match(p.name)
    )


def intents(folder: Path | PgTarget) -> list:
    """Intents of blob writes not settled yet: files (SQLite) or rows (PostgreSQL)."""
    if isinstance(folder, PgTarget):
        import psycopg

        with psycopg.connect(folder.url) as pg:
            return pg.execute("SELECT pack FROM blob_intents").fetchall()
    return list((Path(folder) / "blobs" / "intents").iterdir())


def packs_on_disk(folder: Path) -> set[str]:
    return {Path(f).name for f in pack_files(folder)}


def packs_in_rows(folder: Path) -> set[str]:
    """The packs that the objects table points into (a key is `<pack>.<offset>.<length>`)."""
    return {blob.split(".")[0] for *_, blob in rows(folder)["objects"] if blob is not None}


def rows(folder: Path | PgTarget) -> dict[str, list[tuple]]:
    """Every row the database holds, read on a separate connection."""
    if isinstance(folder, PgTarget):
        import psycopg

        with psycopg.connect(folder.url) as pg:
            return {
                "objects": pg.execute(
                    "SELECT id, class, props::text, blob FROM objects ORDER BY id"
                ).fetchall(),
                "connections": pg.execute(
                    "SELECT id, class, src, dst, props::text FROM connections ORDER BY id"
                ).fetchall(),
                "indexes": pg.execute(
                    "SELECT kind, class, key FROM property_indexes ORDER BY 1, 2, 3"
                ).fetchall(),
            }
    conn = sqlite3.connect(Path(folder) / "lensdb.sqlite3")
    try:
        return {
            "objects": conn.execute(
                "SELECT id, class, props, blob FROM objects ORDER BY id"
            ).fetchall(),
            "connections": conn.execute(
                "SELECT id, class, src, dst, props FROM connections ORDER BY id"
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT kind, class, key FROM property_indexes ORDER BY 1, 2, 3"
            ).fetchall(),
        }
    finally:
        conn.close()


def snapshot(folder: Path) -> dict[str, Any]:
    state: dict[str, Any] = rows(folder)
    state["files"] = pack_files(folder)
    return state


def reported_commits(out: str) -> list[int]:
    """The query numbers a killed child reported committed, each as one line written at once
    (`sys.stdout.write(f"committed {n}\\n")`, then a flush). Only whole lines count: the kill
    may land while the last one is written (CI once read a bare "committed"), and a cut line is
    safely taken as not acknowledged."""
    whole = out.split("\n")[:-1]
    return [int(m[1]) for line in whole if (m := re.fullmatch(r"committed (\d+)", line))]
