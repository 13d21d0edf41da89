"""The mixed load and the crash ingest of issue 12, shared by tests/reliability and bench/.

Every worker is a real aperturedb SDK client (`Connector` over TLS or plain TCP, or
`ConnectorRest`) and touches only objects carrying its own `worker` number, so each answer it
gets can be checked exactly against what it knows it added and deleted. A `Ledger` keeps the
writes the server acknowledged; `check_ingest` reads everything back after crashes.
"""

from __future__ import annotations

import io
import itertools
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

LOAD_CLASS = "RelLoad"  # the load's entities
KILL_KIND = "rel-kill"  # the crash ingest's images, entities and connections


def jpeg(seed: int, size: int = 32) -> bytes:
    """A small JPEG whose bytes differ by seed (so a blob read back proves which one it is)."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size), (rnd.randrange(256), rnd.randrange(256), seed % 256))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def ok(response: Any) -> bool:
    """Every command answered status 0 or 2 (exists)."""
    return isinstance(response, list) and all(
        isinstance(c, dict) and all(b.get("status") in (0, 2) for b in c.values()) for c in response
    )


def body(response: list, name: str, i: int = 0) -> dict:
    """The answer of the i-th command called `name` (by name, never by position alone)."""
    return [c[name] for c in response if name in c][i]


@dataclass
class Stats:
    """What one run saw: latencies (seconds), counts and every unexpected error."""

    latencies: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each query ended (monotonic)
    errors: list[str] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    by_op: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.times.append(time.monotonic())
            self.by_op[op] = self.by_op.get(op, 0) + 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text[:300])
            self.error_times.append(time.monotonic())

    @property
    def queries(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.queries / max(self.ended - self.started, 1e-9)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]

    def summary(self) -> str:
        return (
            f"{self.queries:,} queries in {self.ended - self.started:.1f} s = "
            f"{self.rate():,.0f} q/s; p50 {self.pct(50) * 1e3:.1f} ms, "
            f"p99 {self.pct(99) * 1e3:.1f} ms; errors {len(self.errors)}, "
            f"wrong answers {len(self.wrong)}; mix {dict(sorted(self.by_op.items()))}"
        )


class ProcSampler:
    """Samples a process's RSS and open file descriptors from /proc every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        # (time, RSS bytes, open fds, anonymous RSS bytes: RSS less the mapped database pages)
        self.samples: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int, int]:
        return rss_bytes(self.pid), fd_count(self.pid), rss_bytes(self.pid, "RssAnon")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, fds, anon = self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return
            self.samples.append((time.monotonic(), rss, fds, anon))
            self._stop.wait(self.every)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[tuple[float, int, int, int]]:
        return [s for s in self.samples if start <= s[0] <= end]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- the mixed load ----------------------------------------------------------------------------


class LoadWorker:
    """One client's loop: finds with constraints, if_not_found adds, an image with two boxes in
    one query, finds with blobs, deletes of its own earlier adds; every answer checked."""

    def __init__(self, number: int, connect: Callable[[], Any], stats: Stats) -> None:
        self.n = number
        self.connect = connect
        self.stats = stats
        self.rnd = random.Random(number)
        self.entities: dict[int, str] = {}  # seq -> tag, alive (acknowledged adds, not deleted)
        # Adds and deletes sent but never answered (the server died): either outcome is right.
        self.unsure: set[int] = set()
        self._deleting: int | None = None
        self.images: dict[str, int] = {}  # tag -> seed of its bytes
        self.seq = 0

    def login(self) -> Any:
        db = self.connect()
        db.query([{"GetStatus": {}}])  # the login (argon2) happens before the clock runs
        return db

    def run(self, db: Any, until: float, stop: threading.Event | None = None) -> None:
        ops = [self.add, self.add, self.find, self.image, self.find_blobs, self.delete]
        while time.monotonic() < until and not (stop is not None and stop.is_set()):
            op = self.rnd.choice(ops)
            seq = self.seq
            try:
                op(db)
            except Exception as e:  # a dropped connection or an SDK error: count it, go on
                self.stats.error(f"worker {self.n} {op.__name__}: {e!r}")
                self.unsure.update(range(seq + 1, self.seq + 1))  # an add with no answer
                if self._deleting is not None:
                    self.unsure.add(self._deleting)
                    self.entities.pop(self._deleting, None)
                    self._deleting = None
                try:
                    db.close()
                    db = self.login()
                except Exception:
                    time.sleep(0.5)
        db.close()

    def _query(self, db: Any, op: str, q: list, blobs: list[bytes] | None = None) -> tuple:
        t = time.perf_counter()
        r, out = db.query(q, blobs or [])
        self.stats.record(op, time.perf_counter() - t)
        if not ok(r):
            self.stats.error(f"worker {self.n} {op}: {str(r)[:300]}")
            return None, []
        return r, out

    def _wrong(self, what: str) -> None:
        with self.stats.lock:
            self.stats.wrong.append(f"worker {self.n}: {what}"[:300])

    def add(self, db: Any) -> None:
        self.seq += 1
        tag = f"w{self.n}-e{self.seq}"
        props = {"worker": self.n, "seq": self.seq, "tag": tag, "pad": "x" * 64}
        q = [
            {
                "AddEntity": {
                    "class": LOAD_CLASS,
                    "properties": props,
                    "if_not_found": {"tag": ["==", tag]},
                }
            }
        ]
        r, _ = self._query(db, "add", q)
        if r is not None:
            self.entities[self.seq] = tag
            # Sent again: must answer "exists" and add nothing.
            r2, _ = self._query(db, "add_again", q)
            if r2 is not None and body(r2, "AddEntity")["status"] != 2:
                self._wrong(f"if_not_found re-add of {tag} answered {r2}")

    def find(self, db: Any) -> None:
        low = max(0, self.seq - 30)
        q = [
            {
                "FindEntity": {
                    "with_class": LOAD_CLASS,
                    "constraints": {"worker": ["==", self.n], "seq": [">", low]},
                    "results": {"list": ["seq", "tag"], "sort": "seq"},
                }
            }
        ]
        r, _ = self._query(db, "find", q)
        if r is None:
            return
        got = [
            e["seq"]
            for e in body(r, "FindEntity").get("entities", [])
            if e["seq"] not in self.unsure
        ]
        want = sorted(s for s in self.entities if s > low and s not in self.unsure)
        if got != want:
            self._wrong(f"find seq>{low}: got {got}, want {want}")

    def image(self, db: Any) -> None:
        self.seq += 1
        tag = f"w{self.n}-i{self.seq}"
        seed = self.n * 1_000_000 + self.seq
        q = [
            {"AddImage": {"_ref": 1, "properties": {"worker": self.n, "tag": tag}}},
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 1, "y": 2, "width": 10, "height": 8},
                    "label": "a",
                    "properties": {"tag": tag},
                }
            },
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "rectangle": {"x": 5, "y": 5, "width": 20, "height": 20},
                    "label": "b",
                    "properties": {"tag": tag},
                }
            },
        ]
        r, _ = self._query(db, "image", q, [jpeg(seed)])
        if r is not None:
            self.images[tag] = seed

    def find_blobs(self, db: Any) -> None:
        if not self.images:
            return self.image(db)
        tag = self.rnd.choice(list(self.images))
        q = [
            {
                "FindImage": {
                    "_ref": 1,
                    "constraints": {"tag": ["==", tag]},
                    "blobs": True,
                    "results": {"list": ["tag"]},
                }
            },
            {
                "FindBoundingBox": {
                    "image_ref": 1,
                    "results": {"list": ["_label"], "sort": "_label"},
                }
            },
        ]
        r, blobs = self._query(db, "find_blobs", q)
        if r is None:
            return None
        labels = [b["_label"] for b in body(r, "FindBoundingBox").get("entities", [])]
        if blobs != [jpeg(self.images[tag])] or labels != ["a", "b"]:
            self._wrong(f"image {tag}: {len(blobs)} blob(s), boxes {labels}")
        return None

    def delete(self, db: Any) -> None:
        if len(self.entities) < 4:
            return self.add(db)
        seq = self.rnd.choice(list(self.entities)[:-2])
        tag = self.entities[seq]
        q = [{"DeleteEntity": {"with_class": LOAD_CLASS, "constraints": {"tag": ["==", tag]}}}]
        self._deleting = seq
        r, _ = self._query(db, "delete", q)
        self._deleting = None
        if r is None:
            return None
        if body(r, "DeleteEntity").get("count") != 1 and seq not in self.unsure:
            self._wrong(f"delete {tag}: {r}")
        del self.entities[seq]
        return None


def create_indexes(db: Any) -> None:
    """Index what the load and the ingest look objects up by, as a user of a growing dataset
    would (unindexed, each find scans its whole class: the soak's latency grew with the data)."""
    q = [
        {"CreateIndex": {"index_type": "entity", "class": cls, "property_key": key}}
        for cls, key in (
            (LOAD_CLASS, "worker"),
            (LOAD_CLASS, "tag"),
            ("_Image", "tag"),
            ("_Image", "kind"),
            ("_BoundingBox", "kind"),
            ("RelCapture", "kind"),
        )
    ]
    q.append(
        {"CreateIndex": {"index_type": "connection", "class": "RelShows", "property_key": "kind"}}
    )
    r, _ = db.query(q)
    if not ok(r):
        raise RuntimeError(f"CreateIndex failed: {r}")


def run_load(
    connectors: list[Callable[[], Any]],
    seconds: float,
    first: int = 0,
    on_start: Callable[[], None] | None = None,
    numbers: list[int] | None = None,
) -> tuple[Stats, list[LoadWorker]]:
    """One thread per connector factory, each a LoadWorker, for `seconds` after every client
    has logged in (`on_start` runs then, e.g. to sample the server)."""
    stats = Stats()
    numbers = numbers or [first + i for i in range(len(connectors))]
    workers = [LoadWorker(n, c, stats) for n, c in zip(numbers, connectors, strict=True)]
    start: list[float] = []

    def go() -> None:  # runs once, when every client has logged in, before any is released
        if on_start is not None:
            on_start()
        start.append(time.monotonic())

    ready = threading.Barrier(len(workers) + 1, action=go)

    def work(w: LoadWorker) -> None:
        try:
            db = w.login()
        except Exception as e:
            stats.error(f"worker {w.n} login: {e!r}")
            ready.abort()
            return
        ready.wait()
        w.run(db, start[0] + seconds)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        ready.wait(300)
    except threading.BrokenBarrierError:
        return stats, workers
    stats.started = start[0]
    for t in threads:
        t.join(seconds + 120)
    stats.ended = time.monotonic()
    return stats, workers


def verify_load(db: Any, workers: list[LoadWorker]) -> list[str]:
    """After the load: each worker's entities are exactly its acknowledged, undeleted adds."""
    problems = []
    for w in workers:
        r, _ = db.query(
            [
                {
                    "FindEntity": {
                        "with_class": LOAD_CLASS,
                        "constraints": {"worker": ["==", w.n]},
                        "results": {"list": ["seq"], "sort": "seq"},
                    }
                }
            ]
        )
        got = [
            e["seq"] for e in body(r, "FindEntity").get("entities", []) if e["seq"] not in w.unsure
        ]
        if got != sorted(s for s in w.entities if s not in w.unsure):
            problems.append(f"worker {w.n}: {len(got)} entities stored, {len(w.entities)} expected")
    return problems


# -- the crash ingest --------------------------------------------------------------------------


def ingest_query(tag: str) -> list[dict]:
    """One transaction: an image, two boxes on it, an entity and a connection between them."""
    return [
        {"AddImage": {"_ref": 1, "properties": {"kind": KILL_KIND, "tag": tag}}},
        {
            "AddBoundingBox": {
                "image_ref": 1,
                "rectangle": {"x": 0, "y": 0, "width": 4, "height": 4},
                "label": "a",
                "properties": {"kind": KILL_KIND, "tag": tag},
            }
        },
        {
            "AddBoundingBox": {
                "image_ref": 1,
                "rectangle": {"x": 4, "y": 4, "width": 4, "height": 4},
                "label": "b",
                "properties": {"kind": KILL_KIND, "tag": tag},
            }
        },
        {
            "AddEntity": {
                "_ref": 2,
                "class": "RelCapture",
                "properties": {"kind": KILL_KIND, "tag": tag},
            }
        },
        {
            "AddConnection": {
                "class": "RelShows",
                "src": 2,
                "dst": 1,
                "properties": {"kind": KILL_KIND, "tag": tag},
            }
        },
    ]


@dataclass
class Ledger:
    """Tags of ingest queries the server acknowledged, and of those sent but never answered."""

    acked: set[str] = field(default_factory=set)
    unsure: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ingest_until_error(
    connect: Callable[[], Any],
    ledger: Ledger,
    prefix: str,
    stop: threading.Event,
    ready: threading.Barrier | None = None,
) -> None:
    """Log in (then wait at `ready`), and send ingest queries until the connection breaks (the
    server was killed) or `stop`."""
    db = None
    try:
        db = connect()
        db.query([{"GetStatus": {}}])  # the login (argon2) happens here, before the clock runs
    except Exception:
        db = None
    if ready is not None:
        try:
            ready.wait(120)
        except threading.BrokenBarrierError:
            return
    if db is None:
        return
    i = 0
    while not stop.is_set():
        i += 1
        tag = f"{prefix}-{i}"
        seed = next(_seeds)
        with ledger.lock:
            ledger.unsure.add(tag)
        try:
            r, _ = db.query(ingest_query(tag), [jpeg(seed)])
        except Exception:
            return  # not answered: it may or may not have committed (either, but whole)
        with ledger.lock:
            ledger.unsure.discard(tag)
            if ok(r):
                ledger.acked.add(f"{tag}@{seed}")
        if not ok(r):  # refused, so it must be absent; a dead server answers nothing more
            return


_seeds = itertools.count(1_000_000)


def _list(db: Any, command: str, key: str = "tag", **extra: Any) -> list[dict]:
    params: dict[str, Any] = {
        "constraints": {"kind": ["==", KILL_KIND]},
        "results": {"list": [key]},
        **extra,
    }
    r, blobs = db.query([{command: params}])
    found = body(r, command)
    rows = found.get("entities") or found.get("connections") or []
    if blobs:
        for row, b in zip(rows, blobs, strict=True):
            row["_blob"] = b
    return rows


def check_ingest(db: Any, ledger: Ledger) -> dict[str, Any]:
    """Read everything back: acknowledged tags present with their bytes, none partial."""
    images = _list(db, "FindImage", blobs=True)
    boxes = _list(db, "FindBoundingBox")
    entities = _list(db, "FindEntity", with_class="RelCapture")
    conns = _list(db, "FindConnection", with_class="RelShows")
    count: dict[str, list[int]] = {}
    for i, rows in enumerate((images, boxes, entities, conns)):
        for row in rows:
            count.setdefault(row["tag"], [0, 0, 0, 0])[i] += 1
    partial = {t: c for t, c in count.items() if c != [1, 2, 1, 1]}
    blob_of = {row["tag"]: row["_blob"] for row in images}
    lost, bad_bytes = [], []
    for entry in ledger.acked:
        tag, _, seed = entry.partition("@")
        if tag not in count:
            lost.append(tag)
        elif blob_of.get(tag) != jpeg(int(seed)):
            bad_bytes.append(tag)
    acked_tags = {e.partition("@")[0] for e in ledger.acked}
    unexplained = sorted(set(count) - acked_tags - ledger.unsure)
    return {
        "acknowledged": len(ledger.acked),
        "stored": len(count),
        "lost": sorted(lost),
        "partial": partial,
        "bad_bytes": sorted(bad_bytes),
        "unexplained": unexplained,
        "in_flight_committed": len(set(count) & ledger.unsure),
    }


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def kill_cycles(
    server: Any,
    kills: int,
    connect: Callable[[], Any],
    threads: int = 8,
    ledger: Ledger | None = None,
    rnd: random.Random | None = None,
    window: tuple[float, float] = (0.5, 2.0),
) -> Ledger:
    """`kills` times: `threads` clients ingest, the server gets SIGKILL at a random moment of
    `window` seconds into it, and is started again (`server` is a tests' LensdbServer)."""
    import signal

    ledger = ledger or Ledger()
    rnd = rnd or random.Random(12)
    for k in range(kills):
        stop = threading.Event()
        ready = threading.Barrier(threads + 1)
        workers = [
            threading.Thread(
                target=ingest_until_error,
                args=(connect, ledger, f"k{k}t{t}", stop, ready),
                daemon=True,
            )
            for t in range(threads)
        ]
        for w in workers:
            w.start()
        ready.wait(180)  # every client has logged in
        time.sleep(rnd.uniform(*window))
        server.stop(signal.SIGKILL)
        stop.set()
        for w in workers:
            w.join(60)
        server.start()
    return ledger
