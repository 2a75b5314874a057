"""Hostile and unusual upload files, built in memory (no fixtures on disk)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, PngImagePlugin

from tests.conftest import image_bytes

SCRIPT = b"<script>alert(document.cookie)</script>"


def _noise(size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(60, 200, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def _save(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb():
    """A few kB that decode to 100 megapixels (10000×10000, 1 bit per pixel, all zero)."""
    return _save(Image.new("1", (10_000, 10_000)), "PNG", optimize=True)


def huge_dimension_png():
    """A PNG header claiming 65535×65535 pixels, followed by a token amount of data."""
    ihdr = struct.pack(">IIBBBBB", 65_535, 65_535, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + _chunk(b"IEND", b""))


def jpeg_claiming_7000x9000():
    """The probe's M1 file: a small JPEG whose frame header claims 7000×9000 pixels (63 MP)."""
    data = _save(_noise((64, 48)), "JPEG")
    at = data.index(b"\xff\xc0") + 5
    return data[:at] + struct.pack(">HH", 9000, 7000) + data[at + 4:]


def flat_png_8000x8000():
    """The probe's other M1 file: a single-colour 8000×8000 PNG of about 200 KB."""
    return _save(Image.new("RGB", (8000, 8000), (200, 150, 130)), "PNG", optimize=True)


def long_strip():
    return _save(_noise((6000, 40)), "PNG")


def jpeg_with_zip_appended():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil.html", "<html>" + SCRIPT.decode() + "</html>")
    return image_bytes("JPEG", size=(120, 90)) + archive.getvalue()


def png_with_html_text_chunk():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><body>" + SCRIPT.decode() + "</body></html>")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" + SCRIPT.decode() + "</x:xmpmeta>")
    return _save(_noise((120, 90)), "PNG", pnginfo=info)


def html_named_png():
    return b"<!DOCTYPE html><html><body>" + SCRIPT + b"</body></html>"


def svg_with_script():
    return b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">' + SCRIPT + b"</svg>"


def truncated_jpeg():
    data = image_bytes("JPEG", size=(400, 300))
    return data[: len(data) // 2]


def truncated_png():
    data = _save(_noise((300, 200)), "PNG")
    return data[: len(data) // 2]


def animated_gif():
    frames = [_noise((64, 64), seed=i).convert("P") for i in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def animated_png():
    frames = [_noise((64, 64), seed=i) for i in range(3)]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


def animated_webp():
    frames = [_noise((64, 64), seed=i) for i in range(3)]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


def cmyk_jpeg():
    return _save(_noise((100, 80), "CMYK"), "JPEG")


def png_16_bit():
    arr = (np.linspace(0, 65535, 100 * 80).reshape(80, 100)).astype(np.uint16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    return _save(img, "PNG")


def greyscale_jpeg():
    return _save(_noise((100, 80), "L"), "JPEG")


def rgba_png():
    img = _noise((100, 80), "RGBA")
    img.putalpha(Image.linear_gradient("L").resize((100, 80)))
    return _save(img, "PNG")


def la_png():
    return _save(_noise((100, 80), "LA"), "PNG")


def palette_png_with_transparency():
    return _save(_noise((100, 80)).convert("P"), "PNG", transparency=0)


def rgba_webp():
    return _save(_noise((100, 80), "RGBA"), "WEBP")


def mpo_from_a_phone():
    """A JPEG with a second picture appended as MPO (as many phone cameras write them)."""
    return _save(_noise((120, 90)), "MPO", save_all=True, append_images=[_noise((120, 90), seed=1)])


def tiny_image():
    return _save(_noise((10, 10)), "PNG")


# name -> (builder, None if accepted else a fragment of the message shown to the user)
CASES = {
    "decompression bomb": (decompression_bomb, "too large"),
    "huge-dimension PNG": (huge_dimension_png, "too large"),
    "JPEG header claiming 7000×9000": (jpeg_claiming_7000x9000, "not a photo"),
    "single-colour 8000×8000 PNG": (flat_png_8000x8000, "too large"),
    "long strip": (long_strip, "too long and narrow"),
    "JPEG+ZIP polyglot": (jpeg_with_zip_appended, None),
    "HTML in a PNG text chunk": (png_with_html_text_chunk, None),
    "HTML named .png": (html_named_png, "not an image"),
    "SVG with a script": (svg_with_script, "not an image"),
    "zero bytes": (lambda: b"", "empty"),
    "truncated JPEG": (truncated_jpeg, "damaged or incomplete"),
    "truncated PNG": (truncated_png, "damaged or incomplete"),
    "animated GIF": (animated_gif, "GIF files are not accepted"),
    "animated PNG": (animated_png, "Animated images are not accepted"),
    "animated WebP": (animated_webp, "Animated images are not accepted"),
    "CMYK JPEG": (cmyk_jpeg, None),
    "16-bit PNG": (png_16_bit, None),
    "greyscale JPEG": (greyscale_jpeg, None),
    "RGBA PNG": (rgba_png, None),
    "greyscale+alpha PNG": (la_png, None),
    "palette PNG with transparency": (palette_png_with_transparency, None),
    "RGBA WebP": (rgba_webp, None),
    "MPO (phone JPEG)": (mpo_from_a_phone, None),
    "10×10 pixels": (tiny_image, "too small"),
}
