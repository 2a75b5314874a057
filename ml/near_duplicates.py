"""Near-duplicate photos (the same picture saved at two sizes or re-compressed) found by a
difference hash, so that a split never puts one copy in training and the other in test.

fitz17k holds such pairs: the atlases served one photo at several sizes. Splitting by file
would leak them; splitting by the groups found here does not. The hash is a 256-bit dHash
(Krawetz): the image in grey at 17x16, one bit per horizontal neighbour pair. Resizing and
JPEG re-compression move it by a few bits; two different photos differ in about half of them.
The 64-bit dHash was tried first and is too coarse here: close-up skin photos look alike at
9x8, and chains of 6-bit neighbours joined 163 unrelated fitz17k photos into one group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

HASH_SIDE = 16  # 16 rows x 16 neighbour pairs = 256 bits

#: Bits (of 256) up to which two photos count as one. Measured on fitz17k's 2,859 photos: the
#: nearest other photo is 0-20 bits away for 52 photos (whose 32x32 grey thumbnails then
#: correlate at 0.977 or more), and 50 bits or more for 2,700 of them.
MAX_DISTANCE = 20


def dhash(img: Image.Image) -> np.ndarray:
    """The difference hash of a decoded image: ``HASH_SIDE ** 2`` booleans."""
    grey = np.asarray(img.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BOX), dtype=np.int16)
    return (grey[:, 1:] > grey[:, :-1]).ravel()


def dhash_file(path: str | Path) -> np.ndarray:
    with Image.open(path) as img:
        img.draft("L", (8 * HASH_SIDE, 8 * HASH_SIDE))  # JPEGs decode at a fraction of their size
        return dhash(img)


def hamming_rows(hashes: np.ndarray, rows: slice) -> np.ndarray:
    """Bit differences between the hashes in ``rows`` and all hashes (len(rows) x n)."""
    return (hashes[rows, None, :] != hashes[None, :, :]).sum(axis=2)


def groups_of(hashes: Sequence[np.ndarray], max_distance: int = MAX_DISTANCE) -> list[int]:
    """A group number per hash: photos within ``max_distance`` bits of each other, directly or
    through a chain, share one (union-find). The number is the smallest index in the group."""
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n == 0:
        return []
    h = np.array(hashes, dtype=bool).reshape(n, -1)
    for start in range(0, n, 128):  # a block of rows at a time: n x n x 256 would not fit
        rows = slice(start, min(n, start + 128))
        for i, j in np.argwhere(hamming_rows(h, rows) <= max_distance):
            i, j = start + int(i), int(j)
            a, b = find(i), find(j)
            if i < j and a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(n)]
