"""A full disk and a data folder turning read-only, under a real `lensdb serve` (issue 12).

The data folder is a file system the test makes: a 20 MB tmpfs filled to the last byte, and an
ext4 image on a loop device mounted with `errors=remount-ro`, which the kernel then turns
read-only through ext4's own error path (`/sys/fs/ext4/<dev>/trigger_fs_error`), exactly as a
failing disk does, open files and all (a plain `mount -o remount,ro` is refused while the
server holds its files open for writing). Needs root to mount: skipped without it, failed
under CI.

What must hold: writes fail with status -1 and an `info` that names the cause; reads keep
answering with the right bytes; a login gets a clear answer, never a dropped connection; once
space is freed (or the disk is writable again) the very same writes succeed; and afterwards
`lensdb check` and SQLite's integrity check are clean, with no leftover intent or pack.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LensdbServer
from reliability.workload import Ledger, check_ingest, ingest_query, jpeg, ok
from server.rawclient import RawClient

pytestmark = pytest.mark.sqlite_only


def _run_or_skip(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        why = f"cannot make a test file system ({' '.join(cmd)}): {r.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(why + " (CI runs these tests as root)")
        pytest.skip(why + " (needs root)")


def _unmount(mnt: Path) -> None:
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    _run_or_skip(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)])
    yield mnt
    _unmount(mnt)


def fill(folder: Path) -> Path:
    """Write a file until the file system has no byte left."""
    filler = folder / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    with open(filler, "ab", buffering=0) as f:  # the last partial chunk
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def seed(db, ledger: Ledger, n: int = 5) -> None:
    for i in range(1, n + 1):
        tag = f"seed-{i}"
        r, _ = db.query(ingest_query(tag), [jpeg(i)])
        assert ok(r), r
        ledger.acked.add(f"{tag}@{i}")


def big_rows(tag: str) -> list[dict]:
    """Rows only (no blob), 2 MB of them: more than SQLite's WAL has room for already."""
    return [
        {"AddEntity": {"class": "RelBig", "properties": {"tag": tag, "n": i, "pad": "x" * 200_000}}}
        for i in range(10)
    ]


def count(db, cls: str, tag: str) -> int:
    r, _ = db.query(
        [
            {
                "FindEntity": {
                    "with_class": cls,
                    "constraints": {"tag": ["==", tag]},
                    "results": {"count": True},
                }
            }
        ]
    )
    return r[0]["FindEntity"]["count"]


def assert_refused(r: object, cause: str) -> None:
    assert isinstance(r, dict) and r["status"] == -1, r
    assert cause in r["info"] and "internal error" not in r["info"], r["info"]


def login(server: LensdbServer) -> dict:
    """A fresh login over a raw connection: the answer, or a failure if the server hung up."""
    with RawClient(server.port) as c:
        return c.authenticate("admin", server.admin_password)


def assert_clean(server: LensdbServer, folder: Path) -> None:
    server.stop()
    checked = server.cli("check", "--data", str(folder), check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok: every blob row's bytes are on disk" in checked.stdout
    assert "no row uses" not in checked.stdout, checked.stdout
    for name in ("lensdb.sqlite3", "auth.sqlite3"):
        with sqlite3.connect(folder / name) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert list((folder / "blobs" / "intents").iterdir()) == []
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_full_disk_refuses_writes_clearly_keeps_reads_and_recovers(tmpfs: Path) -> None:
    server = LensdbServer(tmpfs).start()
    try:
        db = server.connector()
        ledger = Ledger()
        seed(db, ledger)
        filler = fill(tmpfs)

        # An image with its boxes: its pack cannot be written.
        r, _ = db.query(ingest_query("full-blob"), [jpeg(100)])
        assert_refused(r, "no space left on the device")
        # Rows only: SQLite cannot grow its log; its own rollback must not hide why.
        r, _ = db.query(big_rows("full-rows"))
        assert_refused(r, "no space left on the device")
        assert count(db, "RelBig", "full-rows") == 0  # nothing of the query applied

        # Reads keep working, bytes included.
        report = check_ingest(db, ledger)
        assert report["lost"] == report["bad_bytes"] == [] and report["partial"] == {}, report
        assert report["stored"] == 5

        # Logins write a session row: a clear answer every time, never a dropped connection.
        answers = [login(server) for _ in range(5)]
        refused = [a for a in answers if a["status"] != 0]
        assert refused, "no login needed space: the test did not fill the disk"
        for a in refused:
            assert a["status"] == -1 and "no space left" in a["info"], a

        filler.unlink()  # space again: the same writes go through
        r, _ = db.query(ingest_query("full-blob"), [jpeg(100)])
        assert ok(r), r
        ledger.acked.add("full-blob@100")
        r, _ = db.query(big_rows("full-rows"))
        assert ok(r), r
        assert count(db, "RelBig", "full-rows") == 10
        assert login(server)["status"] == 0
        report = check_ingest(db, ledger)
        assert report["lost"] == report["bad_bytes"] == [] and report["partial"] == {}, report
        assert "no space left on the device" in server.log()  # the operator is told too
    finally:
        assert_clean(server, tmpfs)


# -- read-only ---------------------------------------------------------------------------------


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An ext4 image mounted on a loop device with errors=remount-ro: (mount point, image)."""
    image, mnt = tmp_path / "disk.img", tmp_path / "disk"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    _run_or_skip(["mkfs.ext4", "-q", "-F", str(image)])
    _run_or_skip(["mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)])
    yield mnt, image
    _unmount(mnt)
    # A loop device set up by `mount -o loop` can stay attached after a lazy unmount: free it.
    attached = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    for line in attached.stdout.splitlines():
        subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)


def make_read_only(mnt: Path) -> None:
    """ext4's error path: the kernel remounts it read-only, files open for writing included."""
    device = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", str(mnt)], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.sync()  # what was acknowledged is on the disk; the fault starts now
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("lensdb test\n")
    with pytest.raises(OSError) as e:
        (mnt / "probe").write_text("x")
    assert e.value.errno == errno.EROFS


def test_read_only_folder_refuses_writes_clearly_keeps_reads_and_recovers(
    ext4: tuple[Path, Path],
) -> None:
    mnt, image = ext4
    folder = mnt / "data"
    server = LensdbServer(folder).start()
    try:
        read_only_then_writable(server, mnt, image, folder)
    finally:
        server.stop()  # also when an assertion failed: the unmount needs its files closed


def read_only_then_writable(server: LensdbServer, mnt: Path, image: Path, folder: Path) -> None:
    db = server.connector()
    ledger = Ledger()
    seed(db, ledger)
    make_read_only(mnt)

    r, _ = db.query(ingest_query("ro-blob"), [jpeg(200)])
    assert_refused(r, "read-only")
    r, _ = db.query([{"AddEntity": {"class": "RelBig", "properties": {"tag": "ro-row"}}}])
    assert_refused(r, "read-only")
    report = check_ingest(db, ledger)
    assert report["lost"] == report["bad_bytes"] == [] and report["partial"] == {}, report
    answer = login(server)
    assert answer["status"] == -1 and "read-only" in answer["info"], answer
    assert server.running()

    # Writable again (unmount, fsck as an operator would, mount): the same writes succeed.
    server.stop()
    _unmount(mnt)
    fsck = subprocess.run(["e2fsck", "-f", "-y", str(image)], capture_output=True, text=True)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: errors fixed
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    server.start()
    db = server.connector()
    r, _ = db.query(ingest_query("ro-blob"), [jpeg(200)])
    assert ok(r), r
    ledger.acked.add("ro-blob@200")
    report = check_ingest(db, ledger)
    assert report["lost"] == report["bad_bytes"] == [] and report["partial"] == {}, report
    assert report["unexplained"] == [], report
    assert login(server)["status"] == 0
    assert_clean(server, folder)
