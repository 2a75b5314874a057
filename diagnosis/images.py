"""Image hygiene for uploads: decode, verify, orient, strip metadata, re-encode.

One pure module (no database, no storage) used by the web form and the API
alike. The file type is decided by decoding the bytes with Pillow, never by
the file name. What comes out is a fresh JPEG with EXIF orientation applied
and no metadata at all (EXIF, GPS, XMP, ICC, comments are not copied).
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from contextlib import contextmanager, nullcontext
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
#: Formats Pillow decodes at 1/2, 1/4 or 1/8 scale (``Image.draft``): what decoding them costs does
#: not grow with the size their header declares, so a 200-megapixel phone JPEG is as cheap as a
#: 12-megapixel one. PNG, WebP and HEIC are decoded at full size.
DRAFT_FORMATS = {"JPEG", "MPO"}
#: Memory a decoded pixel costs at the sanitiser's peak, measured with bench/upload_memory.py:
#: Pillow keeps RGB in 4 bytes a pixel, and the upright copy, the clean copy, the encoder's buffers
#: and (above STORED_IMAGE_MAX_SIDE) the resize's intermediate come on top: 9 bytes for a 12-MP
#: JPEG, 11 for a 40-MP PNG; Pillow's WebP decoder goes through an RGBA buffer and a second copy.
DECODE_BYTES_PER_PIXEL = {"JPEG": 9, "MPO": 9, "PNG": 11, "HEIF": 11, "WEBP": 17}
#: A progressive JPEG is decoded through a buffer of every DCT coefficient of the whole image,
#: at its declared size whatever the draft scale (2 bytes each, up to 3 colour planes at full
#: resolution, 7 bytes a pixel as measured): a 2.3 MB progressive file declaring 14000×14000 took a
#: process to 1.26 GB.
PROGRESSIVE_BYTES_PER_PIXEL = 7
#: A photo is never smaller than this per pixel: a 12-megapixel phone JPEG is 2-5 MB (0.15-0.4
#: bytes a pixel), a heavily compressed one 0.05. A 9 KB file that declares 63 megapixels is a
#: decoding bomb, not a photo (issue 13, M1). Checked above PLAUSIBILITY_FROM_PIXELS only.
MIN_BYTES_PER_PIXEL = 0.01
PLAUSIBILITY_FROM_PIXELS = 4_000_000
# Pillow's own decompression-bomb guard (an error at twice this) stays a backstop above our limits,
# which are checked from the header right after opening (the largest JPEG we accept is 210 MP).
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 128_000_000)


class ImageRejected(ValueError):
    """The upload is not a photo we can accept; the message is meant for the user."""


class DecodeBudget:
    """How many bytes this process may spend on decoding at once, across the threads serving uploads.

    gunicorn's gthread workers sanitise several uploads at the same moment. Without a bound six
    12-MP photos at once took a web process from 160 to 810 MB, six decoding bombs to 3 GB. A
    decode waits until its cost fits (one bigger than the whole budget waits to run alone) or
    gives up after ``wait_s`` with a message to try again.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self._free = self.size
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, cost: int, wait_s: float):
        need = min(int(cost), self.size)
        with self._changed:
            if not self._changed.wait_for(lambda: self._free >= need, timeout=wait_s):
                raise ImageRejected("The server is busy with other photos right now; please try again in a minute.")
            self._free -= need
        try:
            yield
        finally:
            with self._changed:
                self._free += need
                self._changed.notify_all()


_budgets: dict[int, DecodeBudget] = {}
_budgets_lock = threading.Lock()


def budget_of(size: int) -> DecodeBudget:
    """The process-wide budget of that many bytes (one per configured size, made on first use)."""
    with _budgets_lock:
        return _budgets.setdefault(int(size), DecodeBudget(size))


def decode_cost_per_pixel(img: Image.Image) -> int:
    return DECODE_BYTES_PER_PIXEL.get(img.format, max(DECODE_BYTES_PER_PIXEL.values()))


def full_size_bytes_per_pixel(img: Image.Image) -> int:
    """What each *declared* pixel costs whatever the draft scale: 0 for a baseline JPEG."""
    if img.format in DRAFT_FORMATS:
        return PROGRESSIVE_BYTES_PER_PIXEL if img.info.get("progressive") else 0
    return decode_cost_per_pixel(img)


def decode_cost(img: Image.Image, declared: tuple[int, int]) -> int:
    """Bytes the sanitiser will hold for this image at its peak (``img`` after ``_draft``)."""
    return max(img.width * img.height * decode_cost_per_pixel(img),
               declared[0] * declared[1] * full_size_bytes_per_pixel(img))


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


def _open(data: bytes, max_pixels: int, max_decode_bytes: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits follow
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # Pillow's own guard, above every limit of ours.
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
    # A baseline JPEG decodes at reduced scale; the other formats (and progressive JPEGs) hold
    # something at full size, so their own limit is the size whose decoding fits max_decode_bytes
    # (PNG and HEIC 40 MP, WebP 25 MP, progressive JPEG 62 MP by default).
    per_pixel = full_size_bytes_per_pixel(img)
    limit = min(max_pixels, max_decode_bytes // per_pixel) if per_pixel else max_pixels
    if width * height > limit:
        kind = "progressive JPEG" if img.format in DRAFT_FORMATS else ACCEPTED_FORMATS[img.format]
        raise ImageRejected(
            f"The image is too large: {width}×{height} pixels; the limit is {limit // 1_000_000} megapixels"
            + (f" for {kind} (an ordinary JPEG may be larger)." if per_pixel else ".")
        )
    if width * height > PLAUSIBILITY_FROM_PIXELS and len(data) < MIN_BYTES_PER_PIXEL * width * height:
        raise ImageRejected(
            f"This file says it is {width}×{height} pixels but holds only {len(data) // 1024} KB: it is not a "
            "photo as a camera saves it. Please upload the original photo."
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


def _draft(img: Image.Image, max_side: int) -> None:
    """Let a JPEG decode at the smallest of the scales 1/2, 1/4, 1/8 at which its longer side is at
    most max_side: the sanitiser then holds no more than it stores, whatever the header declares.
    (A photo just over max_side is stored at about half of it; phones write 4000-4080 px, or
    8000-8160 px at 48-50 MP, which lands at 4000-4080.) Other formats decode at full size."""
    if img.format not in DRAFT_FORMATS:
        return
    scale = 1
    while max(img.size) > max_side * scale and scale < 8:
        scale *= 2
    if scale > 1:
        img.draft("RGB", (img.width // scale, img.height // scale))


def _decode(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise ImageRejected("The image is damaged or incomplete (the upload may have been cut off).") from exc
    return ImageOps.exif_transpose(img)


def sanitize_upload(upload, *, max_bytes: int, max_pixels: int, max_side: int, max_decode_bytes: int | None = None,
                    budget: DecodeBudget | None = None, wait_s: float = 20.0) -> CleanImage:
    """Return a clean, metadata-free JPEG of the upload, or raise ImageRejected (and nothing else).

    ``max_pixels`` bounds what the header may declare; ``max_decode_bytes`` what decoding one
    upload may cost (it lowers the limit of the formats decoded at full size); ``budget`` bounds
    what this process decodes at once, waiting up to ``wait_s`` for room.
    """
    data = _read_all(upload, max_bytes)
    try:
        img = _open(data, max_pixels, max_decode_bytes or max_pixels * max(DECODE_BYTES_PER_PIXEL.values()))
        source_format = "JPEG" if img.format == "MPO" else img.format
        declared = img.size
        _draft(img, max_side)
        with budget.hold(decode_cost(img, declared), wait_s) if budget else nullcontext():
            clean = _clean_copy(img, max_side)
            del img
            out = io.BytesIO()
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


def _clean_copy(img: Image.Image, max_side: int) -> Image.Image:
    """Decoded, upright, RGB, at most max_side, in a new image object: a new object carries no
    info dict, so nothing of the original metadata is written."""
    img = to_rgb(_decode(img))
    if max(img.size) > max_side:
        # reduce() by an integer factor first, then Lanczos: large PNGs shrink without a full-size resample
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    clean = Image.new("RGB", img.size)
    clean.paste(img)
    return clean
