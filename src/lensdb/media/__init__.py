"""Media handling: probing, transforming and re-encoding stored images."""

from lensdb.media.images import (
    ImageInfo,
    MediaError,
    encode_format,
    probe,
    probe_complete,
    probe_header,
    render,
    validate_operations,
)
from lensdb.media.ranges import parse_range
from lensdb.media.sniff import content_type

__all__ = [
    "ImageInfo",
    "MediaError",
    "content_type",
    "encode_format",
    "parse_range",
    "probe",
    "probe_complete",
    "probe_header",
    "render",
    "validate_operations",
]
