from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lensdb import Database


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def db(folder: Path) -> Iterator[Database]:
    database = Database(folder)
    yield database
    database.close()
