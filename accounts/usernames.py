"""Usernames that cannot pass for someone else's (issue 13: ``alıce`` beside ``alice``).

Two checks, after Django's NFKC normalisation (UsernameField, User.normalize_username):

- ``refuse_mixed_script``: a name that mixes alphabets with look-alike letters (a Cyrillic ``а``
  in a Latin ``alice``) is refused outright, whoever exists. confusable-homoglyphs reads Unicode's
  confusables and scripts data (UTS #39); names in one alphabet (``zoë``, ``José``, ``李雷``) pass.
- ``skeleton``: the name case-folded, with each non-ASCII letter that Unicode lists as a look-alike
  of an ASCII one replaced by it (``alıce`` → ``alice``, Cyrillic ``аорс`` → ``aopc``). A new name
  whose skeleton is already taken counts as taken (User.username_skeleton is stored and indexed).
  ASCII is kept as it is: ``l`` and ``1`` stay different, as they always were here.
"""

import functools
import unicodedata

from confusable_homoglyphs import confusables
from django.core.exceptions import ValidationError


def refuse_mixed_script(value):
    if value and confusables.is_dangerous(value):
        raise ValidationError(
            "Use letters from one alphabet: this name mixes look-alike letters from different ones.",
            code="mixed_script")


@functools.lru_cache(maxsize=4096)
def _ascii_lookalike(char: str) -> str:
    if char.isascii():
        return char
    for entry in confusables.is_confusable(char, greedy=True, preferred_aliases=[]) or []:
        for glyph in entry["homoglyphs"]:
            if len(glyph["c"]) == 1 and glyph["c"].isascii():
                return glyph["c"].casefold()
    return char


def skeleton(username: str) -> str:
    name = unicodedata.normalize("NFKC", username or "").casefold()
    return "".join(_ascii_lookalike(char) for char in name)
