"""Every acknowledged write survives SIGKILL, the full run of issue 12 (CI runs fewer kills in
tests/reliability/test_durability_kill.py).

Eight aperturedb SDK clients ingest one transaction after another (an image, two boxes on it,
an entity and a connection between them), recording each query the server acknowledged. The
server gets SIGKILL at a random moment `--kills` times and is started again. Then: every
acknowledged query must be there with its image bytes, none partly there, and `lensdb check`
clean. Prints acknowledged, stored, lost and partial.

Usage: python bench/kill.py [--kills 20] [--threads 8] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import LensdbServer  # noqa: E402
from reliability.workload import check_ingest, kill_cycles  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seed", type=int, default=20)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lensdb-kill-"))
    cleanup = []
    if args.backend == "postgres":
        from backends import MotoServer, PostgresCluster

        cluster, s3 = PostgresCluster().start(), MotoServer().start()
        cleanup += [cluster.stop, s3.stop]
        server = LensdbServer(
            tmp / "state",
            url=cluster.new_database(),
            blobs=f"s3://{s3.new_bucket()}/lensdb",
            env=s3.env(),
        )
    else:
        server = LensdbServer(tmp / "data")
    try:
        server.start()
        t0 = time.monotonic()
        ledger = kill_cycles(
            server,
            args.kills,
            lambda: server.connector(use_ssl=False, retry_max_attempts=1),
            threads=args.threads,
            rnd=random.Random(args.seed),
        )
        report = check_ingest(server.connector(), ledger)
        took = time.monotonic() - t0
        server.stop()
        checked = server.cli("check", check=False)
    finally:
        server.stop()
        for stop in cleanup:
            stop()
    print(
        f"{args.backend}: {args.kills} SIGKILLs during a {args.threads}-thread ingest "
        f"({took:.0f} s): {report['acknowledged']:,} acknowledged, {report['stored']:,} stored, "
        f"lost {len(report['lost'])}, partial {len(report['partial'])}, bad bytes "
        f"{len(report['bad_bytes'])}, never sent {len(report['unexplained'])}, unanswered but "
        f"committed {report['in_flight_committed']}"
    )
    print("lensdb check:", checked.stdout.strip().splitlines()[-1] if checked.stdout else "")
    bad = report["lost"] or report["partial"] or report["bad_bytes"] or report["unexplained"]
    sys.exit(1 if bad or checked.returncode else 0)


if __name__ == "__main__":
    main()
