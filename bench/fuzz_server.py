"""The big fuzz run: tests/reliability's fuzz and schemathesis tests with many more cases.

Runs, against real `lensdb serve` processes, the hypothesis fuzzing of the TCP hello, framing,
protobuf, VDMS/ApertureDB confusion and REST multipart layers (`--examples` per layer) and
schemathesis over the whole OpenAPI surface (`--api-examples` per operation), and prints the
cases executed per layer and the server's memory before and after. CI runs the same tests with
200 and 25.

Usage: python bench/fuzz_server.py [--examples 5000] [--api-examples 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--api-examples", type=int, default=500)
    args = ap.parse_args()
    env = {
        **os.environ,
        "LENSDB_FUZZ_EXAMPLES": str(args.examples),
        "LENSDB_SCHEMATHESIS_EXAMPLES": str(args.api_examples),
        "PYTHONPATH": str(ROOT / "src"),
    }
    tests = [
        "tests/reliability/test_hostile_fuzz.py",
        "tests/reliability/test_hostile_schemathesis.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-q", "-s", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith(("fuzz cases", "schemathesis:")) or "passed" in line or "failed" in line:
            print(line.strip(". "))
    if done.returncode:
        print(done.stdout[-5000:], done.stderr[-2000:])
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
