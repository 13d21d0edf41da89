"""lensdb: a multimodal database for labeling workflows that speaks the ApertureDB query language."""

from lensdb.engine.database import Database
from lensdb.errors import QueryError

__all__ = ["Database", "QueryError", "__version__"]
__version__ = "0.1.0"
