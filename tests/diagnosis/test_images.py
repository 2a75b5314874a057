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


# --------------------------------------------------------------------------- bounded decoding (issue 13, M1)

def flat_jpeg(size, quality=1) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 150, 130)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The size of every image as the sanitiser decodes it (after draft, before any resize)."""
    from diagnosis import images

    sizes, real = [], images._decode

    def spy(img):
        out = real(img)
        sizes.append(img.size)
        return out

    monkeypatch.setattr(images, "_decode", spy)
    return sizes


def test_a_large_jpeg_is_decoded_at_reduced_scale_never_above_what_is_stored(decoded_sizes):
    # 9000×7000 declared and real (963 KB of flat colour): accepted, but decoded at 1/4 scale
    clean = sanitize(flat_jpeg((9000, 7000)), max_pixels=100_000_000, max_side=4096)
    assert decoded_sizes == [(2250, 1750)]
    assert (clean.width, clean.height) == (2250, 1750)


def test_a_jpeg_just_over_the_stored_side_decodes_at_half(decoded_sizes):
    clean = sanitize(image_bytes("JPEG", size=(2000, 1000)), max_side=1024)
    assert decoded_sizes == [(1000, 500)] and (clean.width, clean.height) == (1000, 500)


def test_a_large_png_is_decoded_whole_then_stored_at_the_stored_side(decoded_sizes):
    clean = sanitize(image_bytes("PNG", size=(2000, 1000)), max_side=1024)
    assert decoded_sizes == [(2000, 1000)] and (clean.width, clean.height) == (1024, 512)


def test_declared_pixels_implausible_for_the_file_size_are_refused_before_decoding(decoded_sizes):
    from tests.security.hostile import jpeg_claiming_7000x9000

    data = jpeg_claiming_7000x9000()
    assert len(data) < 10_000
    with pytest.raises(ImageRejected, match=r"7000×9000 pixels but holds only \d+ KB: it is not a photo"):
        sanitize(data, max_pixels=100_000_000)
    assert decoded_sizes == []


def test_formats_decoded_at_full_size_have_a_limit_from_the_decode_memory(decoded_sizes):
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000), (200, 150, 130)).save(buf, "PNG")
    png = buf.getvalue()
    # 6 MP at 11 bytes a pixel is 66 MB: refused under 50 MB, with the JPEG way out named
    with pytest.raises(ImageRejected, match="limit is 4 megapixels for PNG .an ordinary JPEG may be larger"):
        sanitize(png, max_pixels=100_000_000, max_decode_bytes=50 * 2**20, max_side=4096)
    # the same pixels as JPEG decode at reduced scale: the decode memory does not limit them
    sanitize(flat_jpeg((3000, 2000), quality=90), max_pixels=100_000_000, max_decode_bytes=50 * 2**20, max_side=1024)
    assert decoded_sizes == [(750, 500)]


def test_the_decode_budget_bounds_decodes_at_once_and_lets_a_big_one_run_alone():
    import threading

    from diagnosis.images import DecodeBudget

    budget, inside, peak, lock = DecodeBudget(100), [0], [0], threading.Lock()
    release = threading.Event()

    def decode(cost):
        with budget.hold(cost, wait_s=5):
            with lock:
                inside[0] += cost
                peak[0] = max(peak[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= cost

    threads = [threading.Thread(target=decode, args=(60,)) for _ in range(3)] + [
        threading.Thread(target=decode, args=(500,))]  # bigger than the budget: waits to run alone
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert peak[0] <= 500 and all(not t.is_alive() for t in threads)
    assert peak[0] in (60, 500)  # never two 60s (120 > 100), never a 60 beside the 500


def test_a_decode_that_finds_no_room_in_time_is_refused_with_a_retry_message():
    from diagnosis.images import DecodeBudget

    budget = DecodeBudget(10)
    with budget.hold(10, wait_s=1):
        with pytest.raises(ImageRejected, match="busy.*try again"):
            sanitize(image_bytes("JPEG", size=(80, 60)), budget=budget, wait_s=0.05)
    clean = sanitize(image_bytes("JPEG", size=(80, 60)), budget=budget, wait_s=0.05)  # room again
    assert clean.width == 80


def test_a_progressive_jpeg_is_limited_and_charged_at_its_declared_size(decoded_sizes):
    """A progressive JPEG is decoded through a full-size coefficient buffer whatever the draft
    scale (issue 13 review: 2.3 MB declaring 14000×14000 took a process to 1.26 GB)."""
    from diagnosis import images

    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (200, 150, 130)).save(buf, "JPEG", quality=90, progressive=True)
    progressive = buf.getvalue()
    # 3 MP × 7 bytes = 21 MB: refused under a 15 MB decode limit, where a baseline JPEG passes
    with pytest.raises(ImageRejected, match="limit is 2 megapixels for progressive JPEG"):
        sanitize(progressive, max_pixels=100_000_000, max_decode_bytes=15 * 2**20, max_side=1024)
    sanitize(flat_jpeg((2000, 1500), quality=90), max_pixels=100_000_000, max_decode_bytes=15 * 2**20, max_side=1024)
    # accepted under a larger limit, and charged to the budget for its declared pixels
    charged = []
    budget = images.DecodeBudget(2**40)
    real_hold = budget.hold
    budget.hold = lambda cost, wait_s: (charged.append(cost), real_hold(cost, wait_s))[1]
    sanitize(progressive, max_pixels=100_000_000, max_decode_bytes=100 * 2**20, max_side=1024, budget=budget)
    assert charged == [2000 * 1500 * images.PROGRESSIVE_BYTES_PER_PIXEL]
    assert decoded_sizes[-1] == (1000, 750)  # still drafted
