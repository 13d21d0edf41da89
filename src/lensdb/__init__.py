"""lensdb: a multimodal database for labeling workflows that speaks the ApertureDB query language.

`lensdb.Database` (the engine, with SQLite and Pillow) is imported on first use, so that
`import lensdb.client` inside another program (Label Studio) loads neither.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from lensdb.errors import LensdbError, QueryError, Status

if TYPE_CHECKING:
    from lensdb.engine.database import Database

__all__ = ["Database", "LensdbError", "QueryError", "Status", "__version__"]

try:
    __version__ = version("lensdb")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "Database":
        from lensdb.engine.database import Database

        return Database
    raise AttributeError(f"module 'lensdb' has no attribute {name!r}")
