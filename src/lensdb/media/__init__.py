"""Media handling: probing, transforming and re-encoding stored images."""

from lensdb.media.images import (
    ImageInfo,
    MediaError,
    encode_format,
    probe,
    render,
    validate_operations,
)

__all__ = ["ImageInfo", "MediaError", "encode_format", "probe", "render", "validate_operations"]
