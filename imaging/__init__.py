"""Photo decoding shared by ingestion, training, the gateway and bulk scoring.

One module decides how bytes become the uint8 RGB array the model sees, so a photo
is prepared the same way when it is cached for training and when it is served.
"""

from imaging.decode import (
    SUPPORTED_FORMATS,
    DecodeCost,
    DecodedImage,
    DecodeLimits,
    ImageError,
    brightness,
    decode_image,
    inspect_image,
    jpeg_scans,
    load_for_model,
    prepare_for_model,
    resize_for_model,
    sniff_format,
    to_rgb,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "DecodeCost",
    "DecodeLimits",
    "DecodedImage",
    "ImageError",
    "brightness",
    "decode_image",
    "inspect_image",
    "jpeg_scans",
    "load_for_model",
    "prepare_for_model",
    "resize_for_model",
    "sniff_format",
    "to_rgb",
]
