"""The protobuf `queryMessage` both client families put inside each frame.

The message class is built at runtime from a hand-written descriptor, so there is no
generated code and no protoc step. VDMS clients use the same message without field 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError


def _build_message_class() -> type:
    proto = descriptor_pb2.FileDescriptorProto(
        name="lensdb_queryMessage.proto", package="VDMS.protobufs", syntax="proto3"
    )
    msg = proto.message_type.add(name="queryMessage")
    f = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="json", number=1, label=f.LABEL_OPTIONAL, type=f.TYPE_STRING)
    msg.field.add(name="blobs", number=2, label=f.LABEL_REPEATED, type=f.TYPE_BYTES)
    msg.field.add(name="token", number=3, label=f.LABEL_OPTIONAL, type=f.TYPE_STRING)
    # A private pool: the aperturedb SDK registers the same full name in the default pool.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("VDMS.protobufs.queryMessage"))


QueryMessage = _build_message_class()


class MalformedMessage(ValueError):
    """The payload is not a valid queryMessage."""


@dataclass
class Message:
    json: str
    blobs: list[bytes] = field(default_factory=list)
    token: str = ""


def decode(payload: bytes) -> Message:
    """Parse one frame payload; raises MalformedMessage on anything protobuf rejects."""
    msg = QueryMessage()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise MalformedMessage(str(e) or "undecodable protobuf payload") from e
    return Message(json=msg.json, blobs=list(msg.blobs), token=msg.token)


def encode(json_text: str, blobs: list[bytes] | tuple[bytes, ...] = (), token: str = "") -> bytes:
    """Serialise a response (or request) payload."""
    msg = QueryMessage(json=json_text, token=token)
    if blobs:
        msg.blobs.extend(blobs)
    return msg.SerializeToString()
