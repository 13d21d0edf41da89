"""FindEntity by an indexed property among N entities on PostgreSQL, against the same lookup
through raw psycopg on the same tables, in one run; prints both and their ratio (target <= 2x).

The rows are bulk-loaded with COPY in the store's own format (the benchmark is about lookups,
not ingest), the index is made with the engine's CreateIndex, then both sides look up the same
random keys one query at a time, as a client does.

    python bench/postgres.py [--entities 1000000] [--lookups 2000]
        [--url postgresql://...]   # default: a private cluster like the tests' (PostgreSQL 15)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--url", help="an empty PostgreSQL database (default: a private cluster)")
    args = ap.parse_args()

    import psycopg

    from lensdb import Database

    cluster = None
    url = args.url
    if url is None:
        from backends import PostgresCluster

        cluster = PostgresCluster().start()
        url = cluster.new_database()
    blobs = tempfile.mkdtemp(prefix="lensdb-bench-blobs-")
    try:
        db = Database(url, blobs=f"file://{blobs}")
        n = args.entities
        t = time.perf_counter()
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            with cur.copy("COPY objects (class, props) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row(
                        ("Item", json.dumps({"k": i, "name": f"item{i}", "group": i % 100}))
                    )
        load = time.perf_counter() - t
        t = time.perf_counter()
        r, _ = db.query(
            [{"CreateIndex": {"index_type": "entity", "class": "Item", "property_key": "k"}}]
        )
        assert r[0]["CreateIndex"]["status"] == 0, r
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE objects")
        index = time.perf_counter() - t
        keys = [random.randrange(n) for _ in range(args.lookups)]

        def via_lensdb() -> float:
            t = time.perf_counter()
            for k in keys:
                r, _ = db.query(
                    [
                        {
                            "FindEntity": {
                                "with_class": "Item",
                                "constraints": {"k": ["==", k]},
                                "results": {"all_properties": True},
                            }
                        }
                    ]
                )
                assert r[0]["FindEntity"]["entities"][0]["k"] == k
            return time.perf_counter() - t

        raw = psycopg.connect(url, autocommit=True)
        sql = (
            "SELECT id, class, props, blob FROM objects WHERE class = %s AND "
            "jsonb_typeof(props->'k') = 'number' AND props->'k' = %s ORDER BY id"
        )

        def via_psycopg() -> float:
            from psycopg.types.json import Jsonb

            t = time.perf_counter()
            for k in keys:
                with raw.transaction():  # lensdb reads in a transaction too (one snapshot)
                    rows = raw.execute(sql, ("Item", Jsonb(k))).fetchall()
                assert rows[0][2]["k"] == k
            return time.perf_counter() - t

        via_lensdb(), via_psycopg()  # warm both: caches, prepared statements
        ours, base = via_lensdb(), via_psycopg()
        raw.close()
        db.close()
        print(f"{n:,} entities: COPY {load:.1f} s, CreateIndex + ANALYZE {index:.1f} s")
        print(f"FindEntity by indexed property, {args.lookups} lookups one at a time:")
        print(f"  lensdb (db.query):   {ours * 1e6 / args.lookups:8.0f} us/lookup")
        print(f"  raw psycopg:         {base * 1e6 / args.lookups:8.0f} us/lookup")
        print(f"  ratio lensdb / raw:  {ours / base:.2f}x (target <= 2x)")
    finally:
        if cluster is not None:
            cluster.stop()
        import shutil

        shutil.rmtree(blobs, ignore_errors=True)


if __name__ == "__main__":
    main()
