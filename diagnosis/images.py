"""Image hygiene for uploads: decode, verify, orient, strip metadata, re-encode.

One pure module (no database, no storage) used by the web form and the API
alike. The file type is decided by decoding the bytes with Pillow, never by
the file name. What comes out is a fresh JPEG with EXIF orientation applied
and no metadata at all (EXIF, GPS, XMP, ICC, comments are not copied).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from ml.preprocessing import to_rgb  # also registers the HEIF opener

#: Pillow format names we accept, with what to call them in messages. MPO is how Pillow names a
#: JPEG that carries extra pictures after the main one (many phone cameras write them).
ACCEPTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "HEIF": "HEIC/HEIF"}
ACCEPTED_DESCRIPTION = "JPEG, PNG, WebP or HEIC"
MIN_SIDE = 32
#: Longer side over shorter side. A photo of a spot is never a 60000×40 strip; stored at
#: STORED_IMAGE_MAX_SIDE such a strip would be a few pixels high, useless to the model.
MAX_ASPECT_RATIO = 8
JPEG_QUALITY = 92


class ImageRejected(ValueError):
    """The upload is not a photo we can accept; the message is meant for the user."""


@dataclass(frozen=True)
class CleanImage:
    content: bytes  # the re-encoded JPEG to store
    width: int
    height: int
    source_format: str
    sha256: str  # of the bytes the user uploaded


def _read_all(upload, max_bytes: int) -> bytes:
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise ImageRejected(_too_big(max_bytes))
    if hasattr(upload, "seek"):
        upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRejected(_too_big(max_bytes))
    if not data:
        raise ImageRejected("The file is empty.")
    return data


def _too_big(max_bytes: int) -> str:
    return f"The file is too large: the limit is {max_bytes // (1024 * 1024)} MB."


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own limit, only reached when MAX_IMAGE_PIXELS is set above it.
        raise ImageRejected(f"The image is too large: the limit is {max_pixels // 1_000_000} megapixels.") from None
    except UnidentifiedImageError:
        raise ImageRejected(
            f"This file is not an image we can read. Please upload a {ACCEPTED_DESCRIPTION} photo.") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad upload
        raise ImageRejected(f"This file could not be read as an image ({exc.__class__.__name__}).") from exc
    if img.format not in ACCEPTED_FORMATS:
        raise ImageRejected(
            f"{img.format or 'This'} files are not accepted. Please upload a {ACCEPTED_DESCRIPTION} photo."
        )
    width, height = img.size
    # Checked from the header, before any pixel is decoded (decompression bombs).
    if width * height > max_pixels:
        raise ImageRejected(
            f"The image is too large: {width}×{height} pixels; the limit is {max_pixels // 1_000_000} megapixels."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(f"The image is too small ({width}×{height}); take a closer photo of the spot.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageRejected(
            f"The image is too long and narrow ({width}×{height}); please upload an ordinary photo of the spot."
        )
    # An MPO's extra frames are other pictures (a depth map, a preview), not an animation: the
    # first frame is the photo itself, and it is the only one decoded.
    if img.format != "MPO" and getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
        raise ImageRejected("Animated images are not accepted; please upload a still photo.")
    return img


def _decode(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise ImageRejected("The image is damaged or incomplete (the upload may have been cut off).") from exc
    return ImageOps.exif_transpose(img)


def sanitize_upload(upload, *, max_bytes: int, max_pixels: int, max_side: int) -> CleanImage:
    """Return a clean, metadata-free JPEG of the upload, or raise ImageRejected (and nothing else)."""
    data = _read_all(upload, max_bytes)
    try:
        img = _open(data, max_pixels)
        source_format = "JPEG" if img.format == "MPO" else img.format
        img = to_rgb(_decode(img))
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        # A new image object carries no info dict: nothing of the original metadata is written.
        clean = Image.new("RGB", img.size)
        clean.paste(img)
        clean.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed EXIF block, an odd mode: a bad upload, not a 500
        raise ImageRejected(f"This image could not be processed ({exc.__class__.__name__}).") from exc
    return CleanImage(
        content=out.getvalue(),
        width=clean.width,
        height=clean.height,
        source_format=source_format,
        sha256=hashlib.sha256(data).hexdigest(),
    )
