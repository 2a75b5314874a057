"""A model artifact is a directory: model files plus ``metadata.json``.

The metadata names the classes, input size, preprocessing, temperature,
thresholds and version, and records the sha256 of every other file so that
a corrupted or swapped model is refused instead of silently serving.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

METADATA_FILE = "metadata.json"
#: The artifact shipped in ``ml/artifacts/`` and served by default (the site's ``ML_MODEL_NAME``).
DEFAULT_MODEL_NAME = "effnetlite0-v8"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
DEFAULT_MODEL_DIR = ARTIFACTS_DIR / DEFAULT_MODEL_NAME
REQUIRED_KEYS = ("version", "classes", "input_size", "preprocessing")


class ArtifactError(Exception):
    """The model directory is missing, incomplete or fails its checksums."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _payload_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != METADATA_FILE)


def write_artifact(directory: str | Path, metadata: dict) -> dict:
    """Checksum every file in ``directory`` and write ``metadata.json`` beside them."""
    directory = Path(directory)
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f"metadata lacks {', '.join(missing)}")
    metadata = dict(metadata)
    metadata["files"] = {p.relative_to(directory).as_posix(): sha256_of(p) for p in _payload_files(directory)}
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    return metadata


def read_metadata(directory: str | Path, verify: bool = True) -> dict:
    """Read ``metadata.json``; with ``verify`` check every listed file's sha256."""
    directory = Path(directory)
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"no model artifact at {directory} ({METADATA_FILE} missing)")
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"unreadable {meta_path}: {exc}") from exc
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f"{meta_path} lacks {', '.join(missing)}")
    if verify:
        for name, expected in metadata.get("files", {}).items():
            path = directory / name
            if not path.is_file():
                raise ArtifactError(f"model file {name} is missing from {directory}")
            if sha256_of(path) != expected:
                raise ArtifactError(f"model file {name} fails its sha256 check")
    return metadata
