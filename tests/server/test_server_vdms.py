"""The VDMS Python client (no hello, no auth) on the same port, plain and TLS.

The `vdms` and `aperturedb` packages register the same protobuf symbol in protobuf's
default pool, so they cannot share a process: the VDMS client runs in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_DRIVER = textwrap.dedent(
    """
    import json, sys, vdms
    port, tls, ca, queries = int(sys.argv[1]), sys.argv[2] == "tls", sys.argv[3], json.loads(sys.argv[4])
    db = vdms.vdms(use_tls=tls, ca_cert_file=ca if tls else "")
    db.connect("localhost" if tls else "127.0.0.1", port)
    out = []
    for q in queries:
        try:
            reply = db.query(q)
            out.append(reply[0] if reply is not None else None)
        except Exception as e:
            out.append({"exception": type(e).__name__})
    print(json.dumps(out))
    """
)


def run_vdms(server, queries: list, tls: bool = False) -> list:
    """Run each query (a command list, or a raw string) through vdms.vdms; return the replies."""
    args = [sys.executable, "-c", _DRIVER, str(server.port), "tls" if tls else "plain", server.ca_cert,
            json.dumps(queries)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_vdms_add_and_find_entity(lensdb_server) -> None:
    add = [{"AddEntity": {"class": "VdmsThing", "properties": {"name": "first", "n": 1}}}]
    find = [{"FindEntity": {"class": "VdmsThing", "constraints": {"n": ["==", 1]},
                            "results": {"list": ["name"]}}}]
    r_add, r_find = run_vdms(lensdb_server, [add, find])
    assert r_add == [{"AddEntity": {"status": 0}}]
    assert r_find[0]["FindEntity"]["entities"] == [{"name": "first"}]


def test_vdms_errors_are_sorted_lists(lensdb_server) -> None:
    (r,) = run_vdms(lensdb_server, ["this is {not json"])
    assert isinstance(r, list) and r[0]["status"] == -1 and r[0]["FailedCommand"] == "Transaction"
    assert list(r[0]) == sorted(r[0])


def test_vdms_over_tls(lensdb_server) -> None:
    q = json.dumps([{"AddEntity": {"class": "VdmsTls", "properties": {"n": 7}}},
                    {"FindEntity": {"class": "VdmsTls", "results": {"count": ""}}}])
    (r,) = run_vdms(lensdb_server, [q], tls=True)
    assert r[0]["AddEntity"]["status"] == 0 and r[1]["FindEntity"]["count"] >= 1


def test_vdms_can_be_refused(lensdb_server_factory) -> None:
    server = lensdb_server_factory("--no-vdms")
    (r,) = run_vdms(server, [[{"FindEntity": {"class": "X"}}]])
    assert r is None or "exception" in r
    assert server.connector().query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
