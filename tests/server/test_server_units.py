"""Protocol and permission pieces on their own (no server process)."""

from __future__ import annotations

import struct

import pytest

from lensdb.auth import permissions
from lensdb.auth.service import AuthService
from lensdb.auth.store import AuthError, AuthStore
from lensdb.server import framing, message


def test_message_matches_the_sdk_and_the_documented_bytes() -> None:
    from aperturedb import queryMessage as sdk

    assert message.encode("[]", token="abc") == bytes.fromhex("0a025b5d1a03616263")
    ours = message.encode('[{"GetStatus": {}}]', [b"\x00\x01", b""], "adbs_x")
    theirs = sdk.queryMessage()
    theirs.ParseFromString(ours)
    assert theirs.json == '[{"GetStatus": {}}]' and list(theirs.blobs) == [b"\x00\x01", b""]
    assert theirs.token == "adbs_x"
    back = message.decode(theirs.SerializeToString())
    assert (back.json, back.blobs, back.token) == (
        '[{"GetStatus": {}}]',
        [b"\x00\x01", b""],
        "adbs_x",
    )


@pytest.mark.parametrize("payload", [b"\x0a\xff", b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff"])
def test_malformed_payloads_raise_malformed_message(payload: bytes) -> None:
    with pytest.raises(message.MalformedMessage):
        message.decode(payload)


def test_hello_detection_and_negotiation() -> None:
    hello = struct.pack("<II", 1, 2)
    assert framing.looks_like_hello(hello)
    assert not framing.looks_like_hello(message.encode("[1,2,3]")[:8])
    both = framing.PROTO_TCP | framing.PROTO_TLS
    assert framing.negotiate(1, 2, both) == (1, 2)
    assert framing.negotiate(1, 1, both) == (1, 1)
    assert framing.negotiate(1, 1, framing.PROTO_TLS) == (1, 0)
    assert framing.negotiate(7, 2, both) == (0, 0)
    assert framing.frame(b"ab") == b"\x02\x00\x00\x00ab"


def test_tls_client_hello_is_told_apart_from_a_length_prefix() -> None:
    assert framing.classify_first_bytes(b"\x16\x03\x01\x02") is None
    assert framing.is_tls_client_hello(b"\x16\x03\x01\x02\x00\x01")
    assert not framing.is_tls_client_hello(b"\x16\x03\x01\x02\x00\x0a")
    assert framing.classify_first_bytes(b"\x08\x00\x00\x00") is framing.Opening.FRAME


@pytest.mark.parametrize(
    ("command", "need"),
    [
        ("FindImage", ("images", "read")),
        ("GetSchema", ("objects", "read")),
        ("AddBoundingBox", ("bounding_boxes", "create")),
        ("CreateIndex", ("indexes", "create")),
        ("UpdateEntity", ("entities", "update")),
        ("DeleteConnection", ("connections", "delete")),
        ("RemoveIndex", ("indexes", "delete")),
        ("FindDescriptorSet", ("descriptor_sets", "read")),
        ("GetStatus", None),
        ("MysteryCommand", ("objects", "update")),
    ],
)
def test_command_permissions(command: str, need: tuple[str, str] | None) -> None:
    assert permissions.required(command) == need


def test_specific_kinds_override_objects_only_for_named_actions() -> None:
    role = {"objects": {"read": True}, "images": {"create": True, "read": False}}
    assert permissions.allows([role], "entities", "read")
    assert not permissions.allows([role], "images", "read")
    assert permissions.allows([role], "images", "create")
    assert not permissions.allows([role], "entities", "create")
    assert not permissions.allows([role], "users", "read")  # users never falls back to objects
    assert permissions.allows([role, {"objects": {"create": True}}], "entities", "create")
    with pytest.raises(permissions.PermissionSpecError):
        permissions.validate({"objects": {"write": True}})


def test_store_sessions_tokens_and_revocation(tmp_path) -> None:
    store = AuthStore(tmp_path)
    assert store.bootstrap("pw") is None
    assert store.bootstrap("other") is None  # only on an empty store
    auth = AuthService(store, session_ttl=60, refresh_ttl=120)
    s = auth.login_password("admin", "pw")
    assert s.session_token.startswith("adbs_") and s.refresh_token.startswith("adbr_")
    assert auth.principal(s.session_token).username == "admin"
    with pytest.raises(AuthError):
        auth.login_password("admin", "nope")
    with pytest.raises(AuthError):
        auth.login_password("ghost", "pw")

    store.create_role("reader", permissions.validate({"objects": {"read": True}}))
    store.create_user("ann", "pw2", ["reader"])
    store.add_token("ann", "adbp_" + "a" * 35)
    t = auth.login_token("adbp_" + "a" * 35)
    p = auth.principal(t.session_token)
    assert p.username == "ann" and auth.denied(p, ["FindImage"]) is None
    assert "may not create" in auth.denied(p, ["FindImage", "AddImage"])

    # A second store on the same file (like `lensdb users`) changes things under the service.
    other = AuthStore(tmp_path)
    other.update_role("reader", {"objects": {"create": True}})
    assert auth.denied(auth.principal(t.session_token), ["AddImage"]) is None
    other.remove_tokens("ann", ["adbp_aaaaaaaa"])  # by prefix
    assert auth.principal(t.session_token) is None
    assert auth.principal(s.session_token) is not None

    refreshed = auth.refresh(s.refresh_token)
    with pytest.raises(AuthError):
        auth.refresh(s.refresh_token)  # single use
    assert auth.principal(refreshed.session_token) is not None
    other.update_user("admin", password="new")
    assert auth.principal(refreshed.session_token) is None
    other.close()
    store.close()


@pytest.mark.parametrize("sizes", [[], [0], [1, 127, 128, 300], [16384, 2**21 + 5]])
@pytest.mark.parametrize(
    "json_text", ["", "[]", '[{"FindImage": {"info": "\u00e9t\u00e9 \U0001f600"}}]', "x" * 200]
)
def test_encoder_matches_protobuf_serialisation(json_text: str, sizes: list[int]) -> None:
    blobs = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    for token in ("", "adbs_" + "t" * 35):
        reference = message.QueryMessage(json=json_text, token=token)
        reference.blobs.extend(blobs)
        assert message.encode(json_text, blobs, token) == reference.SerializeToString()
