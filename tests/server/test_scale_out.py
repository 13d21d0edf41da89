"""Two `lensdb serve` processes on one PostgreSQL + S3 (moto's server), through the real SDK:
what one server writes the other reads, a token made on one works on the other, media links
signed by one verify on the other, and concurrent if_not_found adds create exactly one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from io import BytesIO

import httpx
import pytest
from PIL import Image

from conftest import LensdbServer


def _jpeg(color: tuple[int, int, int]) -> bytes:
    out = BytesIO()
    Image.new("RGB", (32, 24), color).save(out, "JPEG")
    return out.getvalue()


def test_what_one_server_writes_the_other_reads(pair):
    a, b = pair
    image = _jpeg((10, 200, 30))
    r, _ = a.connector().query(
        [
            {"AddImage": {"_ref": 1, "properties": {"name": "shared-pic"}}},
            {
                "AddBoundingBox": {
                    "image_ref": 1,
                    "label": "cat",
                    "rectangle": {"x": 1, "y": 1, "width": 10, "height": 10},
                }
            },
        ],
        [image],
    )
    assert [next(iter(c.values()))["status"] for c in r] == [0, 0]
    r, blobs = b.connector().query(
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "constraints": {"name": ["==", "shared-pic"]},
                    "blobs": True,
                    "uniqueids": True,
                }
            },
            {"FindBoundingBox": {"image_ref": 1, "labels": True, "results": {"list": ["_label"]}}},
        ]
    )
    assert blobs == [image]
    assert r[1]["FindBoundingBox"]["entities"][0]["_label"] == "cat"
    assert r[0]["FindImage"]["entities"][0]["_uniqueid"].startswith("2.0.")


def test_a_token_created_on_one_server_works_on_the_other(pair):
    a, b = pair
    r, _ = a.connector().query([{"GenerateToken": {}}])
    token = r[0]["GenerateToken"]["token"]
    r, _ = a.connector().query([{"UpdateUser": {"username": "admin", "add_tokens": [token]}}])
    assert r[0]["UpdateUser"]["status"] == 0
    r, _ = b.connector(user=None, token=token).query([{"GetStatus": {}}])
    assert r[0]["GetStatus"]["status"] == 0
    # Revoked through b, it stops working on a within a second (servers poll the change).
    r, _ = b.connector().query([{"UpdateUser": {"username": "admin", "remove_tokens": [token]}}])
    assert r[0]["UpdateUser"]["status"] == 0
    time.sleep(1.1)
    with pytest.raises(Exception, match="Authentication failed"):
        a.connector(user=None, token=token).query([{"GetStatus": {}}])
    # And a user made with the CLI on the shared database logs in on both.
    made = a.cli("users", "add", "carol", "--password", "carol-password-1", "--role", "admin")
    assert made.returncode == 0, made.stderr
    for server in pair:
        r, _ = server.connector(user="carol", password="carol-password-1").query(
            [{"GetStatus": {}}]
        )
        assert r[0]["GetStatus"]["status"] == 0


def test_concurrent_if_not_found_adds_through_both_servers_create_one(pair):
    a, b = pair

    def add(server: LensdbServer, k: int) -> int:
        r, _ = server.connector().query(
            [
                {
                    "AddEntity": {
                        "class": "Racer",
                        "properties": {"k": k},
                        "if_not_found": {"k": ["==", k]},
                    }
                }
            ]
        )
        return r[0]["AddEntity"]["status"]

    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(add, s, k) for k in range(40) for s in (a, b, a, b)]
        statuses = [j.result() for j in jobs]
    assert statuses.count(0) == 40 and statuses.count(2) == 120
    r, _ = b.connector().query(
        [{"FindEntity": {"with_class": "Racer", "results": {"count": True}}}]
    )
    assert r[0]["FindEntity"]["count"] == 40


@contextmanager
def _writer_lock_held(url: str) -> Iterator[Callable[[int], None]]:
    """Hold the servers' writer lock from the test, like a third server's long commit. Yields
    a function waiting until n transactions queue for the lock; released on leaving. Queries
    sent meanwhile read without the lock (optimistic) and queue at their first write, in the
    order sent: PostgreSQL grants a lock to its waiters in the order they asked."""
    import psycopg

    from lensdb.store.postgres import WRITER_LOCK

    def waiting(n: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            queued = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s AND objid = %s AND objsubid = 2",
                WRITER_LOCK,
            ).fetchone()[0]
            if queued >= n:
                return
            assert time.monotonic() < deadline, f"{queued} of {n} queries queued for the lock"
            time.sleep(0.02)

    with (
        psycopg.connect(url, autocommit=True) as holder,
        psycopg.connect(url, autocommit=True) as watcher,
    ):
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITER_LOCK)
        try:
            yield waiting
        finally:
            holder.execute("COMMIT")


def _status(response: list | dict) -> int:
    return (
        response["status"]
        if isinstance(response, dict)
        else max(abs(next(iter(c.values()))["status"]) for c in response)
    )


def _box_query(name: str) -> list[dict]:
    return [
        {"FindImage": {"_ref": 1, "unique": True, "constraints": {"name": ["==", name]}}},
        {
            "AddBoundingBox": {
                "image_ref": 1,
                "label": name,
                "rectangle": {"x": 1, "y": 1, "width": 5, "height": 5},
            }
        },
    ]


def _boxes_and_images(server: LensdbServer, name: str) -> tuple[int, int, int]:
    """(images named `name`, boxes labelled `name`, connections from those boxes)."""
    r, _ = server.connector().query(
        [
            {"FindImage": {"constraints": {"name": ["==", name]}, "results": {"count": True}}},
            {"FindBoundingBox": {"_ref": 1, "with_label": name, "results": {"count": True}}},
            {"FindConnection": {"src": 1, "results": {"count": True}}},
        ]
    )
    return (
        r[0]["FindImage"]["count"],
        r[1]["FindBoundingBox"]["count"],
        r[2]["FindConnection"]["count"],
    )


def _image_and_its_delete(server, name: str, color: tuple[int, int, int]) -> list[dict]:
    """An image named `name` added through `server`; the query deleting it."""
    r, _ = server.connector().query([{"AddImage": {"properties": {"name": name}}}], [_jpeg(color)])
    assert r[0]["AddImage"]["status"] == 0
    return [{"DeleteImage": {"constraints": {"name": ["==", name]}}}]


def test_a_box_added_while_the_other_server_deletes_its_image_fails_cleanly(pair):
    """The delete (server b) commits between the box query's reads (server a: its image
    found) and its commit: the box query finds under the writer lock that what it read
    changed, runs again, and fails as ApertureDB does for a missing image. No box, no
    connection to a deleted image."""
    a, b = pair
    delete = _image_and_its_delete(a, "doomed", (1, 2, 3))
    with ThreadPoolExecutor(2) as pool, _writer_lock_held(b.url) as queued:
        deleting = pool.submit(b.connector().query, delete)
        queued(1)  # b read the image and waits to delete it
        boxing = pool.submit(a.connector().query, _box_query("doomed"))
        queued(2)  # a read the image too (still there) and waits to commit its box
    r, _ = deleting.result()
    assert r[0]["DeleteImage"]["status"] == 0 and r[0]["DeleteImage"]["count"] == 1, r
    r, _ = boxing.result()
    assert _status(r) != 0, r
    text = str(r)
    assert "image_ref" in text and "internal error" not in text, r
    assert _boxes_and_images(a, "doomed") == (0, 0, 0)
    assert "Traceback" not in a.log() + b.log()


def test_an_image_deleted_while_the_other_server_adds_a_box_goes_with_the_box(pair):
    """The other order: the box commits first (server a), then the delete (server b), which
    had listed the image's boxes before the box existed: it runs again under the lock and
    removes the new box with its image."""
    a, b = pair
    delete = _image_and_its_delete(a, "boxed", (3, 2, 1))
    with ThreadPoolExecutor(2) as pool, _writer_lock_held(b.url) as queued:
        boxing = pool.submit(a.connector().query, _box_query("boxed"))
        queued(1)
        deleting = pool.submit(b.connector().query, delete)
        queued(2)
    r, _ = boxing.result()
    assert _status(r) == 0, r
    r, _ = deleting.result()
    assert r[0]["DeleteImage"]["status"] == 0 and r[0]["DeleteImage"]["count"] == 1, r
    assert _boxes_and_images(a, "boxed") == (0, 0, 0)


def test_if_not_found_adds_queued_on_both_servers_create_one(pair):
    """Both servers look the object up (absent) before either commits; the second to take
    the lock sees the first's row when it checks what it read, runs again and finds it."""
    a, b = pair
    add = [
        {
            "AddEntity": {
                "class": "Queued",
                "properties": {"k": 1},
                "if_not_found": {"k": ["==", 1]},
            }
        }
    ]
    with ThreadPoolExecutor(2) as pool, _writer_lock_held(a.url) as queued:
        first = pool.submit(a.connector().query, add)
        second = pool.submit(b.connector().query, add)
        queued(2)
    statuses = sorted(r[0]["AddEntity"]["status"] for r, _ in (first.result(), second.result()))
    assert statuses == [0, 2], statuses
    r, _ = a.connector().query(
        [{"FindEntity": {"with_class": "Queued", "results": {"count": True}}}]
    )
    assert r[0]["FindEntity"]["count"] == 1


def test_plain_adds_through_both_servers_are_all_stored_with_distinct_ids(pair):
    """Queries without look-ups from 8 threads on two servers at once (images with a box
    each, entities connected to them): every one is stored whole, under its own ids."""
    a, b = pair

    def add(server: LensdbServer, k: int) -> list:
        r, _ = server.connector().query(
            [
                {"AddImage": {"_ref": 1, "properties": {"plain": k}}},
                {
                    "AddBoundingBox": {
                        "image_ref": 1,
                        "label": "plain",
                        "rectangle": {"x": 0, "y": 0, "width": 3, "height": 3},
                    }
                },
                {"AddEntity": {"_ref": 2, "class": "Plain", "properties": {"plain": k}}},
                {"AddConnection": {"class": "shows", "src": 2, "dst": 1}},
            ],
            [_jpeg((k % 256, 7, 7))],
        )
        return r

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda k: add((a, b)[k % 2], k), range(80)))
    assert all(_status(r) == 0 for r in results), results
    r, _ = b.connector().query(
        [
            {
                "FindImage": {
                    "_ref": 1,
                    "constraints": {"plain": [">=", 0]},
                    "uniqueids": True,
                    "results": {"list": ["plain"]},
                }
            },
            {"FindBoundingBox": {"image_ref": 1, "results": {"count": True}}},
            {"FindEntity": {"with_class": "Plain", "results": {"list": ["plain"]}}},
            {"FindConnection": {"with_class": "shows", "results": {"count": True}}},
        ]
    )
    images = r[0]["FindImage"]["entities"]
    assert sorted(e["plain"] for e in images) == list(range(80))
    assert len({e["_uniqueid"] for e in images}) == 80
    assert r[1]["FindBoundingBox"]["count"] == 80
    assert sorted(e["plain"] for e in r[2]["FindEntity"]["entities"]) == list(range(80))
    assert r[3]["FindConnection"]["count"] == 80


def test_a_media_link_signed_by_one_server_verifies_on_the_other(pair):
    a, b = pair
    image = _jpeg((200, 10, 10))
    a.connector().query([{"AddImage": {"properties": {"name": "linked"}}}], [image])
    # The task list signs media links with the shared key; fetch one from the other server.
    client = a.connector()
    client.query([{"GetStatus": {}}])
    session = client.shared_data.session.session_token
    tasks = httpx.get(
        f"http://127.0.0.1:{a.http_port}/labelstudio/tasks",
        timeout=30,
        params={"constraints": '{"name": ["==", "linked"]}'},
        headers={"Authorization": f"Bearer {session}"},
    )
    assert tasks.status_code == 200, tasks.text
    link = tasks.json()[0]["data"]["image"]
    assert "sig=" in link, link
    path = link.split(f":{a.http_port}", 1)[1]
    got = httpx.get(f"http://127.0.0.1:{b.http_port}{path}", timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == image


def test_check_is_clean_on_the_shared_backend(pair):
    done = pair[0].cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok:" in done.stdout


INGEST = """
import io, sys
from PIL import Image
from aperturedb.Connector import Connector
port, ca, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
db = Connector(host="localhost", port=port, user="admin", password=password, ca_cert=ca,
               use_ssl=True, retry_interval_seconds=0)
for i in range(100000):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (i % 256, 0, 0)).save(buf, "JPEG")
    r, _ = db.query([{"AddImage": {"_ref": 1, "properties": {"n": i, "run": "kill"}}},
                     {"AddBoundingBox": {"image_ref": 1, "rectangle": {"x": 0, "y": 0,
                      "width": 4, "height": 4}}}], [buf.getvalue()])
    if isinstance(r, list) and r[0]["AddImage"]["status"] == 0:
        print(i, flush=True)  # acknowledged
"""


def test_sigkill_of_one_server_during_ingest_loses_nothing_acknowledged(pair, tmp_path):
    """A client ingests through server a; a is killed with SIGKILL mid-stream while b keeps
    answering. Every acknowledged query is then found through b, and `lensdb check` is clean
    (the killed server's unfinished upload is swept as abandoned)."""
    import signal

    a, b = pair
    acked = tmp_path / "acked.txt"
    with open(acked, "w") as out:
        client = subprocess.Popen(
            [sys.executable, "-c", INGEST, str(a.port), a.ca_cert, a.admin_password],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        reader = b.connector()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(acked.read_text().split()) < 30:
            r, _ = reader.query(
                [
                    {
                        "FindImage": {
                            "constraints": {"run": ["==", "kill"]},
                            "results": {"count": True},
                        }
                    }
                ]
            )
            assert r[0]["FindImage"]["status"] == 0
        a.stop(signal.SIGKILL)
        client.wait(30)
    numbers = [int(n) for n in acked.read_text().split()]
    assert len(numbers) >= 30
    r, _ = reader.query(
        [
            {"FindImage": {"constraints": {"run": ["==", "kill"]}, "results": {"list": ["n"]}}},
            {"FindBoundingBox": {"results": {"count": True}}},
        ]
    )
    stored = {e["n"] for e in r[0]["FindImage"]["entities"]}
    assert set(numbers) <= stored  # at most one unacknowledged query more (in flight)
    assert len(stored - set(numbers)) <= 1
    done = b.cli("check")
    assert done.returncode == 0 and "ok:" in done.stdout, done.stdout + done.stderr
    assert "no row uses" not in done.stdout
    a.start()  # the killed server comes back on the same database
    r, _ = a.connector().query(
        [{"FindImage": {"constraints": {"run": ["==", "kill"]}, "results": {"count": True}}}]
    )
    assert r[0]["FindImage"]["count"] == len(stored)


def _images_csv(folder, n: int):  # noqa: ANN001, ANN202
    """An ImageDataCSV file of n small JPEGs, each added `if_not_found` by its id."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "id", "constraint_id"])
        for i in range(n):
            image = folder / f"{i}.jpg"
            image.write_bytes(_jpeg((i % 256, 40, 90)))
            w.writerow([str(image), i, i])
    return path


def _ingest(server: LensdbServer, csv_path) -> int:  # noqa: ANN001
    """ParallelLoader over the server; returns how many queries failed."""
    from aperturedb.ImageDataCSV import ImageDataCSV
    from aperturedb.ParallelLoader import ParallelLoader

    loader = ParallelLoader(server.connector())
    loader.ingest(ImageDataCSV(str(csv_path), check_image=False), batchsize=5, numthreads=2)
    return loader.error_counter


def test_the_connectors_state_is_shared_between_servers(pair):
    """The connector keeps its state as lensdb entities, through the query language (it is a
    client): what a push recorded and a pull's cursor, written through one server, are what
    a push or pull through the other reads. These are the connector's own query builders."""
    from lensdb.connector import state

    a, b = pair
    ls_url, project = "http://Label-Studio.example:8080/", 7
    r, _ = a.connector().query(
        [{"AddImage": {"properties": {"name": "pushed"}}}], [_jpeg((5, 5, 5))]
    )
    assert r[0]["AddImage"]["status"] == 0, r
    r, _ = a.connector().query(
        [{"FindImage": {"constraints": {"name": ["==", "pushed"]}, "uniqueids": True}}]
    )
    uid = r[0]["FindImage"]["entities"][0]["_uniqueid"]
    a.connector().query(state.record_push_query(ls_url, project, [(uid, 41)]))
    r, _ = b.connector().query(state.sent_images_query("http://label-studio.example:8080", project))
    assert state.sent_images(r) == {uid: 41}
    a.connector().query(
        state.set_cursor_commands(
            ls_url, project, "2026-11-27T12:00:00Z", "2026-11-27T12:00:01Z", 1
        )
    )
    r, _ = b.connector().query(state.cursor_query(ls_url, project))
    assert state.cursor_of(r) == ("2026-11-27T12:00:00Z", "2026-11-27T12:00:01Z")


def test_postgres_restart_during_a_parallel_ingest(postgres_cluster, moto_server, tmp_path):
    """PostgreSQL restarts (pg_ctl stop, start) while a ParallelLoader ingests through a
    server. While it is down a query answers a clear status; the server recovers by itself
    (its pool replaces the dead connections, it takes a new session lock); no query is half
    applied; and the same ingest run again completes, every image stored exactly once."""
    import threading

    if postgres_cluster.folder is None:
        pytest.skip("needs the private cluster (LENSDB_TEST_POSTGRES_URL is set)")
    url = postgres_cluster.new_database()
    server = LensdbServer(
        tmp_path / "state",
        url=url,
        blobs=f"s3://{moto_server.new_bucket()}/restart",
        env=moto_server.env(),
    ).start()
    try:
        n = 400
        csv_path = _images_csv(tmp_path / "images", n)
        errors: list[int] = []
        loading = threading.Thread(target=lambda: errors.append(_ingest(server, csv_path)))
        loading.start()
        watcher = server.connector()
        count = [{"FindImage": {"results": {"count": True}}}]
        deadline = time.monotonic() + 120
        while watcher.query(count)[0][0]["FindImage"]["count"] < 40:
            assert time.monotonic() < deadline and loading.is_alive(), "the ingest did not start"
            time.sleep(0.05)
        postgres_cluster.stop_server()
        try:
            r, _ = watcher.query(count)
            assert isinstance(r, dict) and r["status"] == -1, r
            assert "PostgreSQL" in r["info"] and "internal error" not in r["info"], r
        finally:
            postgres_cluster.start_server()
        loading.join(300)
        assert not loading.is_alive()
        # Queries in flight at the restart failed (or the loader retried them); now the same
        # ingest again: what is there is found (if_not_found), what is missing is added.
        assert _ingest(server, csv_path) == 0
        r, _ = watcher.query([{"FindImage": {"results": {"list": ["id"]}, "blobs": False}}])
        ids = sorted(e["id"] for e in r[0]["FindImage"]["entities"])
        assert ids == list(range(n)), f"{errors=}: missing or doubled ids"
        # A restart while the server sits idle: every pooled connection, the session lock's
        # and the users' are dead. The first login, write and read after it succeed at once.
        postgres_cluster.stop_server()
        postgres_cluster.start_server()
        fresh = server.connector()
        r, _ = fresh.query([{"AddImage": {"properties": {"after": 1}}}], [_jpeg((9, 9, 9))])
        assert r[0]["AddImage"]["status"] == 0, r
        r, _ = watcher.query(
            [{"FindImage": {"constraints": {"after": ["==", 1]}, "results": {"count": True}}}]
        )
        assert r[0]["FindImage"]["count"] == 1, r
        done = server.cli("check", check=False)
        assert done.returncode == 0 and "ok:" in done.stdout, done.stdout + done.stderr
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        postgres_cluster.drop(url)


def _labelstudio(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from lensdb.cli import main; main()",
            "labelstudio",
            "start",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_labelstudio_start_refuses_a_wrong_backend_in_one_line(tmp_path):
    import os

    env = {**os.environ, "LENSDB_ADMIN_PASSWORD": "pw-for-the-test"}
    wrong = _labelstudio(
        "--data",
        "postgresql://nobody:secret@127.0.0.1:1/x",
        "--blobs",
        "s3://bucket/p",
        "--state",
        str(tmp_path / "s"),
        env=env,
    )
    out, _ = wrong.communicate(timeout=60)
    assert wrong.returncode != 0
    assert "cannot open PostgreSQL" in out and "***" in out and "secret" not in out, out
    assert "Traceback" not in out
    misplaced = _labelstudio("--data", str(tmp_path / "f"), "--blobs", "s3://bucket/p", env=env)
    out, _ = misplaced.communicate(timeout=60)
    assert misplaced.returncode != 0 and "needs --data postgresql://" in out, out


def test_labelstudio_start_runs_its_lensdb_on_postgres_and_s3(
    postgres_cluster, moto_server, tmp_path
):
    """`lensdb labelstudio start --data postgresql://... --blobs s3://...` (here through
    LENSDB_DATA and LENSDB_BLOBS, the same settings as `lensdb serve`) starts its lensdb on
    that backend: what the SDK adds through it is in that PostgreSQL database."""
    import os

    import psutil

    from conftest import free_port
    from lensdb import Database
    from lensdb.labelstudio.launcher import port_in_use

    if port_in_use("127.0.0.1", 55555) or port_in_use("127.0.0.1", 55556):
        if os.environ.get("CI"):
            pytest.fail("ports 55555/55556 are busy: `lensdb labelstudio start` needs them")
        pytest.skip("ports 55555/55556 are busy (another lensdb runs here)")
    url, bucket = postgres_cluster.new_database(), moto_server.new_bucket()
    env = {
        **os.environ,
        **moto_server.env(),
        "LENSDB_ADMIN_PASSWORD": "pw-for-the-test",
        "LENSDB_DATA": url,
        "LENSDB_BLOBS": f"s3://{bucket}/ls",
    }
    state = tmp_path / "state"
    proc = _labelstudio("--port", str(free_port()), "--state", str(state), env=env)
    children: list = []
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Storage form:") or proc.poll() is not None:
                break
        text = "".join(lines)
        assert "lensdb: started on 127.0.0.1:55555" in text, text
        assert f"blobs in s3://{bucket}/ls" in text and "postgresql://" in text, text
        children = psutil.Process(proc.pid).children(recursive=True)
        from aperturedb.Connector import Connector

        client = Connector(
            host="127.0.0.1",
            port=55555,
            user="admin",
            password="pw-for-the-test",
            ca_cert=str(state / "lensdb" / "state" / "tls" / "ca.crt"),
        )
        r, _ = client.query(
            [{"AddImage": {"properties": {"name": "via-labelstudio-start"}}}], [_jpeg((1, 2, 3))]
        )
        assert r[0]["AddImage"]["status"] == 0, r
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for child in children:  # what it started, if it could not stop them itself
            if child.is_running():
                child.kill()
    db = Database(url, blobs=f"s3://{bucket}/ls")
    try:
        r, blobs = db.query(
            [
                {
                    "FindImage": {
                        "constraints": {"name": ["==", "via-labelstudio-start"]},
                        "blobs": True,
                    }
                }
            ]
        )
        assert blobs == [_jpeg((1, 2, 3))]
    finally:
        db.close()
        postgres_cluster.drop(url)
