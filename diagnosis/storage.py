"""Encrypted storage for the submitted photos.

Photos are encrypted before they reach the storage backend and decrypted when
read, so ``submission.image.open()`` (the worker, the photo views, the data
export) sees the JPEG while the disk, a backup or an S3 bucket only ever holds
ciphertext. Fernet (AES-128-CBC + HMAC-SHA256) rather than a home-made AES mode:
it authenticates the data, and ``MultiFernet`` gives key rotation for free.

Keys come from settings: ``MEDIA_ENCRYPTION_KEYS`` is a list whose first key
encrypts; all of them decrypt (old keys stay listed until ``manage.py
rotate_media_key`` has re-encrypted every file with the new one).

The backend stays pluggable: ``EncryptedStorageMixin`` goes in front of any
Django storage class (``EncryptedFileSystemStorage`` is the local default; for
S3 see the README). Reading a file that is not a valid token fails closed
(``InvalidToken``) instead of serving whatever bytes happen to be there.
"""

from __future__ import annotations

import io
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, storages
from django.db import transaction

__all__ = ["EncryptedFileSystemStorage", "EncryptedStorageMixin", "InvalidToken", "delete_files",
           "delete_files_on_commit", "fernet", "photo_storage"]

logger = logging.getLogger(__name__)


def fernet(keys=None) -> MultiFernet:
    """The configured keys, newest first (read on each call so tests and rotations see changes)."""
    keys = list(keys if keys is not None else settings.MEDIA_ENCRYPTION_KEYS)
    if not keys:
        raise ValueError("MEDIA_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(key) for key in keys])


class EncryptedStorageMixin:
    """Encrypt on save, decrypt on open. Put it before the storage class in the bases."""

    def _save(self, name, content):
        if hasattr(content, "seek"):
            content.seek(0)
        token = fernet().encrypt(content.read())
        return super()._save(name, ContentFile(token))

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("encrypted files are written through save(), not opened for writing")
        with super()._open(name, "rb") as raw:
            token = raw.read()
        return File(io.BytesIO(fernet().decrypt(token)), name=name)

    def read_raw(self, name) -> bytes:
        """The stored bytes as they are on the backend (rotate_media_key inspects them)."""
        with super()._open(name, "rb") as raw:
            return raw.read()


class EncryptedFileSystemStorage(EncryptedStorageMixin, FileSystemStorage):
    """Local disk under MEDIA_ROOT, encrypted. There is no URL: photos go through owner-checking views."""

    def url(self, name):
        raise ValueError("photos have no public URL; serve them through diagnosis.photos.private_photo_response")


def photo_storage():
    """The storage of ``Submission.image`` (a callable, so migrations do not pin a backend)."""
    return storages["photos"]


def delete_files(names) -> None:
    """Delete stored files now; a failure is logged by name (never content), not raised.

    The rows are already gone (or were never saved): an orphan file is ciphertext, and
    ``manage.py purge_expired --orphans`` catches it later.
    """
    storage = photo_storage()
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except Exception:  # noqa: BLE001 - see the docstring
            logger.exception("could not delete stored file %s", name)


def delete_files_on_commit(names) -> None:
    """Delete stored files once the surrounding transaction commits (a rollback keeps them)."""
    names = [name for name in names if name]
    transaction.on_commit(lambda: delete_files(names))
