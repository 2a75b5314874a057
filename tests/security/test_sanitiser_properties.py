"""Property tests of diagnosis.images.sanitize_upload with Hypothesis.

1. Any bytes at all: the sanitiser returns a clean image or raises ImageRejected, nothing else.
2. Any valid image (mode, size, format drawn at random): a metadata-free RGB JPEG of the same
   proportions comes out, never larger than the storage limit.
3. A valid image with bytes flipped or cut off: again, only a clean image or ImageRejected.
"""

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from diagnosis.images import MAX_ASPECT_RATIO, MIN_SIDE, ImageRejected, sanitize_upload
from tests.conftest import upload_file

LIMITS = {"max_bytes": 2 * 1024 * 1024, "max_pixels": 1_000_000, "max_side": 256}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JFIF_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive", "progression"}

# Pillow modes each format can write.
FORMAT_MODES = {
    "JPEG": ["RGB", "L", "CMYK"],
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
    "WEBP": ["RGB", "RGBA"],
}


def sanitize(data):
    return sanitize_upload(upload_file(data), **LIMITS)


def check_clean(clean):
    img = Image.open(io.BytesIO(clean.content))
    assert img.format == "JPEG" and img.mode == "RGB"
    assert not set(img.info) - JFIF_KEYS, img.info
    assert max(img.size) <= LIMITS["max_side"]
    assert (clean.width, clean.height) == img.size
    return img


@st.composite
def images(draw):
    fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    width = draw(st.integers(MIN_SIDE, 400))
    height = draw(st.integers(max(MIN_SIDE, -(-width // MAX_ASPECT_RATIO)), min(400, width * MAX_ASPECT_RATIO)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    kwargs = {"exif": Image.Exif()} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, format=fmt, **kwargs)
    return fmt, (width, height), buf.getvalue()


@PROPERTY
@given(st.binary(max_size=4096))
def test_random_bytes_only_ever_raise_image_rejected(data):
    try:
        check_clean(sanitize(data))
    except ImageRejected as exc:
        assert str(exc)  # a message for the person


@PROPERTY
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a"]),
       st.binary(max_size=2048))
def test_random_bytes_after_a_real_signature_only_raise_image_rejected(signature, rest):
    try:
        check_clean(sanitize(signature + rest))
    except ImageRejected as exc:
        assert str(exc)


@PROPERTY
@given(images())
def test_valid_images_become_rgb_jpegs_without_metadata(image):
    fmt, (width, height), data = image
    clean = sanitize(data)
    img = check_clean(clean)
    assert clean.source_format == fmt
    # Same proportions (to a pixel of rounding when downscaled). A JPEG over max_side decodes at
    # the 1/2^k scale that fits it (issue 13, M1): never more than it stores, at least half of it.
    longest = max(width, height)
    if fmt == "JPEG" and longest > LIMITS["max_side"]:
        assert LIMITS["max_side"] // 2 <= max(img.size) <= LIMITS["max_side"]
        scale = max(img.size) / longest
    else:
        scale = min(1.0, LIMITS["max_side"] / longest)
    assert abs(img.width - width * scale) <= 1 and abs(img.height - height * scale) <= 1


@PROPERTY
@given(images(), st.data())
def test_damaged_images_only_raise_image_rejected(image, data):
    _fmt, _size, original = image
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        position = data.draw(st.integers(0, len(damaged) - 1), label="position")
        damaged[position] ^= data.draw(st.integers(1, 255), label="xor")
    cut = data.draw(st.integers(1, len(damaged)), label="cut")
    try:
        check_clean(sanitize(bytes(damaged[:cut])))
    except ImageRejected as exc:
        assert str(exc)
