"""Open the storage backend a `--data` value names.

A folder (or any text that is not a URL) is the embedded default: SQLite plus a folder of pack
files, unchanged. A `postgresql://` URL is the scale-out backend: rows in PostgreSQL, bytes
where `blobs` says, `s3://BUCKET/PREFIX` or `file:///shared/path`. The choice is made here once,
so the engine and the servers only ever see the `Store` interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lensdb.store.base import Store, StoreError

POSTGRES_SCHEMES = ("postgresql", "postgres")


class ConfigError(StoreError):
    """A `--data` or `--blobs` value that cannot work; the text says what to change."""


@dataclass(frozen=True)
class Location:
    """Where a dataset lives: `data` (folder or PostgreSQL URL) and, for PostgreSQL, `blobs`."""

    data: str
    blobs: str | None = None

    @property
    def is_postgres(self) -> bool:
        return is_postgres_url(self.data)

    @property
    def folder(self) -> Path | None:
        """The data folder of the embedded backend; None for PostgreSQL."""
        return None if self.is_postgres else Path(self.data)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_postgres_url(data: str | Path) -> bool:
    return isinstance(data, str) and urlsplit(data).scheme in POSTGRES_SCHEMES


def check_location(data: str | Path, blobs: str | None, *, need_blobs: bool = True) -> None:
    """Raise `ConfigError` for a --data/--blobs pair that cannot work, before opening anything
    (need_blobs=False: a command that only manages users and tokens)."""
    if is_postgres_url(data):
        from lensdb.store.postgres import probe

        probe(str(data))
        if not blobs and need_blobs:
            raise ConfigError(
                "with --data postgresql://... give --blobs s3://BUCKET/PREFIX or "
                "file:///shared/path (env LENSDB_BLOBS): where the bytes go"
            )
    elif blobs:
        raise ConfigError(
            f"--blobs {blobs} needs --data postgresql://...: a data folder "
            "keeps its blobs inside itself"
        )


def open_store(data: str | Path, blobs: str | None = None, *, durable: bool = False) -> Store:
    """The backend for `data`; raises `ConfigError` (one line, what to fix) when it cannot be
    opened as given."""
    if not is_postgres_url(data):
        if blobs:
            raise ConfigError(
                f"--blobs {blobs} needs --data postgresql://...: a data folder "
                "keeps its blobs inside itself"
            )
        from lensdb.store.sqlite import SQLiteStore

        return SQLiteStore(Path(data), durable=durable)
    if not blobs:
        raise ConfigError(
            "with --data postgresql://... give --blobs s3://BUCKET/PREFIX or "
            "file:///shared/path (env LENSDB_BLOBS): where the bytes go"
        )
    from lensdb.store.postgres import PostgresStore

    return PostgresStore(str(data), open_blobs(blobs))


def open_blobs(url: str):  # noqa: ANN201 - a BlobBackend; imported lazily (boto3 is optional)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"--blobs {url}: a file URL names a local path, file:///path")
        from lensdb.store.blobfiles import FileBlobs

        return FileBlobs(Path(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"--blobs {url}: give the bucket, s3://BUCKET/PREFIX")
        from lensdb.store.s3 import S3Blobs

        return S3Blobs(parts.netloc, parts.path.strip("/"))
    raise ConfigError(f"--blobs {url}: expected s3://BUCKET/PREFIX or file:///path")
