"""Peak memory of a web process while it sanitises uploads (issue 13, M1): writes docs/upload_memory.json.

    .venv/bin/python -m bench.upload_memory              # every scenario, ~1 min
    .venv/bin/python -m bench.upload_memory --uploads 6 --out /tmp/mem.json

Each scenario runs in a fresh process set up as the web process is (Django settings and the whole
URL conf imported). It sanitises one small photo to warm up, notes its resident memory, then N
threads (gunicorn's gthread workers serve several requests at once) hand the same kind of file to
``diagnosis.services.clean_upload`` at the same moment, the code path of the upload form and the
API. Reported: resident memory before, peak (``VmHWM``) after, and what each upload got back.

Scenarios: a 640×480 JPEG whose header claims 7000×9000 pixels (like the probe's 9.3 KB file; this one is 5 KB), a real
single-colour 7000×9000 JPEG, a single-colour 8000×8000 PNG (the probe's 198 KB file), a 6300×6300 PNG with a patch of noise
that makes it big enough per pixel to pass for a photo (the worst PNG that is accepted), progressive
JPEGs of 14000×14000 and 7900×7900 (the largest accepted; their decoder holds every coefficient at
full size), and a 12-megapixel phone-like JPEG (a skin photo upscaled with sensor
noise, ``bench.inference.make_phone_photo``) and a 48-megapixel WebP made the same way (decoded at full
size like a 48-MP HEIC, and bigger than the whole decode budget: it runs alone; the HEIC encoder
here wrote 48-MP files that libheif could not decode).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-cache" / "upload_memory"  # made once: the 48-MP photo takes a while
SCENARIOS = ("bomb_jpeg_header", "bomb_jpeg", "bomb_png", "bomb_png_plausible", "progressive_jpeg_14000",
             "progressive_jpeg_largest", "phone_12mp", "photo_48mp_webp")


def _claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims another size than its data holds."""
    at = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[at + 4:]


def make_file(kind: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if kind == "bomb_jpeg_header":
        return _claiming(_small_jpeg(), 7000, 9000)
    if kind == "bomb_jpeg":
        Image.new("RGB", (7000, 9000), (200, 150, 130)).save(buf, "JPEG", quality=1, subsampling=2)
    elif kind == "bomb_png":
        Image.new("RGB", (8000, 8000), (200, 150, 130)).save(buf, "PNG", optimize=True)
    elif kind == "bomb_png_plausible":  # the worst a hostile PNG can do: the largest accepted, noise to look real
        import numpy as np

        img = Image.new("RGB", (6300, 6300), (200, 150, 130))
        noise = np.random.default_rng(0).integers(0, 256, (460, 460, 3), dtype=np.uint8)
        img.paste(Image.fromarray(noise), (0, 0))
        img.save(buf, "PNG")
    elif kind in ("progressive_jpeg_14000", "progressive_jpeg_largest"):
        # A progressive JPEG decodes through a full-size coefficient buffer whatever the draft scale
        # (found in review): the 196-MP one the reviewer sent, and the largest still accepted.
        import numpy as np

        side = 14000 if kind == "progressive_jpeg_14000" else 7900
        img = Image.new("RGB", (side, side), (200, 150, 130))
        noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
        img.paste(Image.fromarray(noise), (0, 0))
        img.save(buf, "JPEG", quality=90, progressive=True, subsampling=0)
    elif kind == "phone_12mp":
        from .inference import make_phone_photo

        return make_phone_photo()
    elif kind == "photo_48mp_webp":  # the size of an iPhone's 48-MP "HEIF Max", in a format decoded at full size
        from .inference import make_phone_photo

        Image.open(io.BytesIO(make_phone_photo(size=(8064, 6048)))).save(buf, "WEBP", quality=80)
    else:
        raise ValueError(kind)
    return buf.getvalue()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cached_file(kind: str) -> Path:
    path = CACHE / f"{kind}.bin"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(make_file(kind))
        tmp.replace(path)
    return path


def child(kind: str, uploads: int) -> dict:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skinsite.settings")
    import django

    django.setup()
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - import every view, as a serving process has
    from diagnosis.images import ImageRejected
    from diagnosis.services import clean_upload

    clean_upload(io.BytesIO(_small_jpeg()))  # warm up the decoders
    data = cached_file(kind).read_bytes()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start, outcomes = threading.Barrier(uploads), [None] * uploads

    def upload(i: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            clean = clean_upload(io.BytesIO(data))
            outcomes[i] = {"accepted": f"{clean.width}x{clean.height}", "s": round(time.perf_counter() - t0, 2)}
        except ImageRejected as exc:
            outcomes[i] = {"rejected": str(exc), "s": round(time.perf_counter() - t0, 2)}

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(uploads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"scenario": kind, "file_bytes": len(data), "uploads": uploads, "rss_before_mb": round(before / 1024, 1),
            "peak_mb": round(_status_kib("VmHWM") / 1024, 1), "wall_s": round(time.perf_counter() - t0, 2),
            "outcomes": outcomes}


def _small_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 150, 130)).save(buf, "JPEG")
    return buf.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uploads", type=int, default=6, help="uploads at once")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "upload_memory.json")
    p.add_argument("--label", default="", help="what this run measures (e.g. 'before')")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.uploads)))
        return 0
    results = []
    for kind in a.scenarios.split(","):
        cached_file(kind)  # made here, so that the measured process holds only the file
        proc = subprocess.run([sys.executable, "-m", "bench.upload_memory", "--child", kind, "--uploads", str(a.uploads)],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        kinds = sorted({next(iter(o)) for o in result["outcomes"]})
        print(f"{kind:11s} {result['file_bytes'] / 1024:9.1f} KB  x{a.uploads}: RSS {result['rss_before_mb']} MB -> "
              f"peak {result['peak_mb']} MB in {result['wall_s']} s ({', '.join(kinds)})")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"label": a.label, "uploads_at_once": a.uploads, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
