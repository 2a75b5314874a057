"""The upload sanitiser: accepted formats, rejected files, metadata stripped."""

import io

import pytest
from PIL import Image

from diagnosis.images import ImageRejected, sanitize_upload
from tests.conftest import image_bytes, upload_file

LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 4_000_000, "max_side": 1024}


def sanitize(content, name="spot.jpg", **overrides):
    return sanitize_upload(upload_file(content, name), **{**LIMITS, **overrides})


def decoded(clean):
    return Image.open(io.BytesIO(clean.content))


@pytest.mark.parametrize("fmt,name", [
    ("JPEG", "spot.jpg"), ("JPEG", "spot.jpeg"), ("JPEG", "spot.jfif"),
    ("PNG", "spot.png"), ("WEBP", "spot.webp"),
])
def test_accepted_formats_become_clean_jpegs(fmt, name):
    clean = sanitize(image_bytes(fmt, size=(80, 60)), name)
    assert clean.source_format == fmt
    img = decoded(clean)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (80, 60)


def test_heic_from_a_phone_is_accepted():
    from pillow_heif import register_heif_opener

    register_heif_opener()
    clean = sanitize(image_bytes("HEIF", size=(80, 60)), "IMG_0001.HEIC")
    assert clean.source_format == "HEIF"
    assert decoded(clean).size == (80, 60)


def test_type_is_decided_by_content_not_extension():
    clean = sanitize(image_bytes("PNG"), "looks-like.txt")
    assert clean.source_format == "PNG"


@pytest.mark.parametrize("content,message", [
    (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
    (b"just some text pretending to be a photo\n" * 20, "not an image"),
    (b"", "empty"),
])
def test_non_images_are_rejected(content, message):
    with pytest.raises(ImageRejected, match=message):
        sanitize(content, "photo.jpg")


def test_truncated_jpeg_is_rejected():
    data = image_bytes("JPEG", size=(400, 300))
    with pytest.raises(ImageRejected, match="damaged or incomplete"):
        sanitize(data[: len(data) // 2])


def test_other_image_formats_are_rejected():
    with pytest.raises(ImageRejected, match="GIF files are not accepted"):
        sanitize(image_bytes("GIF"), "spot.gif")


def test_too_many_bytes_is_rejected():
    with pytest.raises(ImageRejected, match="too large"):
        sanitize(image_bytes("PNG", size=(300, 300)), max_bytes=1000)


def test_too_many_pixels_is_rejected_before_decoding():
    with pytest.raises(ImageRejected, match="megapixels"):
        buf = io.BytesIO()
        Image.new("RGB", (3000, 2000)).save(buf, format="PNG")  # tiny file, many pixels
        sanitize(buf.getvalue(), max_pixels=1_000_000)


def test_exif_and_gps_are_removed_and_orientation_applied():
    img = Image.new("RGB", (80, 40), (180, 120, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0)}  # GPS IFD
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), comment=b"secret note")
    clean = sanitize(buf.getvalue())
    out = decoded(clean)
    assert out.size == (40, 80)  # rotated upright
    assert not out.getexif()
    assert "exif" not in out.info and "comment" not in out.info and "icc_profile" not in out.info
    assert b"PhoneMaker" not in clean.content and b"secret note" not in clean.content


def test_png_text_and_transparency_are_handled():
    from PIL import PngImagePlugin

    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Author", "someone@example.com")
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=meta)
    clean = sanitize(buf.getvalue(), "spot.png")
    out = decoded(clean)
    assert out.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)  # transparent → white
    assert b"someone@example.com" not in clean.content


def test_large_photos_are_downscaled_for_storage():
    clean = sanitize(image_bytes("JPEG", size=(2000, 1000)), max_side=1000)
    assert (clean.width, clean.height) == (1000, 500)


def test_sha256_identifies_the_uploaded_bytes():
    data = image_bytes("PNG")
    import hashlib

    assert sanitize(data, "a.png").sha256 == hashlib.sha256(data).hexdigest()
