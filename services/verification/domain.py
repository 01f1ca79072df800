"""Verification rules in plain Python."""

from __future__ import annotations

import unicodedata


def name_key(full_name: str) -> str:
    """How names are compared: Unicode-normalised, case-folded, inner spaces collapsed. Full-width and
    half-width forms of the same letter match, as do 'Ann  Lee' and 'ann lee'."""
    normalised = unicodedata.normalize("NFKC", full_name or "")
    return " ".join(normalised.split()).casefold()
