import sys
from pathlib import Path

# `helpers` is imported by name, like tests/connector does with its own.
sys.path.insert(0, str(Path(__file__).parent))
