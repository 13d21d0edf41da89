"""`helpers` importable by name; a stock Label Studio from tests/connector's fixtures (loaded by path:
`tests` is no package)."""

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

_spec = importlib.util.spec_from_file_location(
    "lensdb_formats_connector_conftest", Path(__file__).parents[1] / "connector" / "conftest.py"
)
_connector = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_connector)
label_studio = _connector.label_studio
ls_api = _connector.ls_api
