"""The VDMS Python client (no hello, no auth) on the same port, plain and TLS.

The `vdms` and `aperturedb` packages register the same protobuf symbol in protobuf's
default pool, so they cannot share a process: the VDMS client runs in a subprocess.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import SERVER_BACKENDS, LensdbServer

_DRIVER = textwrap.dedent(
    """
    import json, sys, vdms
    port, tls, ca, queries = int(sys.argv[1]), sys.argv[2] == "tls", sys.argv[3], json.loads(sys.argv[4])
    cert, key = (sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else ("", "")
    db = vdms.vdms(use_tls=tls, ca_cert_file=ca if tls else "", client_cert_file=cert, client_key_file=key)
    out = []
    try:
        db.connect("localhost" if tls else "127.0.0.1", port)
    except Exception as e:
        print(json.dumps([{"exception": type(e).__name__}] * len(queries)))
        sys.exit(0)
    for q in queries:
        try:
            reply = db.query(q)
            out.append(reply[0] if reply is not None else None)
        except Exception as e:
            out.append({"exception": type(e).__name__})
    print(json.dumps(out))
    """
)


def run_vdms(
    server, queries: list, tls: bool = False, client_cert: tuple[str, str] | None = None
) -> list:
    """Run each query (a command list, or a raw string) through vdms.vdms; return the replies."""
    args = [
        sys.executable,
        "-c",
        _DRIVER,
        str(server.port),
        "tls" if tls else "plain",
        server.ca_cert,
        json.dumps(queries),
        *(client_cert or ()),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=SERVER_BACKENDS)
def vdms_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A server with VDMS switched on, clients without credentials allowed to write (VDMS is
    off by default; tests/reliability/test_hostile_access.py checks the read-only default)."""
    folder = tmp_path_factory.mktemp("vdms") / "data"
    args = ["--vdms", "--vdms-unauthenticated", "--vdms-writes"]
    if request.param == "sqlite":
        server = LensdbServer(folder, args).start()
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        s3 = request.getfixturevalue("moto_server")
        server = LensdbServer(
            folder,
            args,
            url=cluster.new_database(),
            blobs=f"s3://{s3.new_bucket()}/lensdb",
            env=s3.env(),
        ).start()
    yield server
    server.stop()


def test_vdms_add_and_find_entity(vdms_server) -> None:
    add = [{"AddEntity": {"class": "VdmsThing", "properties": {"name": "first", "n": 1}}}]
    find = [
        {
            "FindEntity": {
                "class": "VdmsThing",
                "constraints": {"n": ["==", 1]},
                "results": {"list": ["name"]},
            }
        }
    ]
    r_add, r_find = run_vdms(vdms_server, [add, find])
    assert r_add == [{"AddEntity": {"status": 0}}]
    assert r_find[0]["FindEntity"]["entities"] == [{"name": "first"}]


def test_vdms_errors_are_sorted_lists(vdms_server) -> None:
    (r,) = run_vdms(vdms_server, ["this is {not json"])
    assert isinstance(r, list) and r[0]["status"] == -1 and r[0]["FailedCommand"] == "Transaction"
    assert list(r[0]) == sorted(r[0])


def test_vdms_over_tls(vdms_server) -> None:
    q = json.dumps(
        [
            {"AddEntity": {"class": "VdmsTls", "properties": {"n": 7}}},
            {"FindEntity": {"class": "VdmsTls", "results": {"count": ""}}},
        ]
    )
    (r,) = run_vdms(vdms_server, [q], tls=True)
    assert r[0]["AddEntity"]["status"] == 0 and r[1]["FindEntity"]["count"] >= 1


def test_vdms_is_refused_by_default(lensdb_server) -> None:
    server = lensdb_server
    (r,) = run_vdms(server, [[{"FindEntity": {"class": "X"}}]])
    assert r is None or "exception" in r
    assert server.connector().query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0


def _client_certificates(folder: Path) -> tuple[Path, tuple[str, str], tuple[str, str]]:
    """A client CA, a client certificate it signed, and one signed by nobody it trusts."""

    def issue(issuer_key, issuer_name, subject: str, ca: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return key, name, builder.sign(issuer_key or key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    out = {}
    for label in ("trusted", "untrusted"):
        ca_key, ca_name, ca_cert = issue(None, None, f"{label} client CA", True)
        key, _, cert = issue(ca_key, ca_name, "vdms client", False)
        (folder / f"{label}_ca.crt").write_bytes(ca_cert.public_bytes(pem))
        (folder / f"{label}.crt").write_bytes(cert.public_bytes(pem))
        (folder / f"{label}.key").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        out[label] = (str(folder / f"{label}.crt"), str(folder / f"{label}.key"))
    return folder / "trusted_ca.crt", out["trusted"], out["untrusted"]


def test_vdms_mutual_tls(lensdb_server_factory, tmp_path: Path) -> None:
    client_ca, trusted, untrusted = _client_certificates(tmp_path)
    server = lensdb_server_factory("--vdms", "--vdms-client-ca", str(client_ca))
    q = [{"FindEntity": {"class": "Nothing", "results": {"count": ""}}}]
    (ok,) = run_vdms(server, [q], tls=True, client_cert=trusted)
    assert ok[0]["FindEntity"]["status"] == 0
    for cert in (untrusted, None):
        (refused,) = run_vdms(server, [q], tls=True, client_cert=cert)
        assert refused is None or "exception" in refused
    # ApertureDB clients never present certificates and are not affected.
    assert server.connector().query([{"GetStatus": {}}])[0][0]["GetStatus"]["status"] == 0
