"""Verification rules in plain Python: names, the per-number limit and the check log's retention here; the signed
reports in ``domain/reports.py``, the published report keys in ``domain/report_keys.py``."""

from __future__ import annotations

import unicodedata

from credence_common.security.masking import mask_ip_address


def name_key(full_name: str) -> str:
    """How names are compared: Unicode-normalised, case-folded, inner spaces collapsed. Full-width and
    half-width forms of the same letter match, as do 'Ann  Lee' and 'ann lee'."""
    normalised = unicodedata.normalize("NFKC", full_name or "")
    return " ".join(normalised.split()).casefold()


# --- the per-number limit -------------------------------------------------------------------------------

# Checks that told the caller "not this name" (or were refused for guessing): what the per-number limit counts.
FAILED_OUTCOMES = ("no_match", "rate_limited")


def answers_truthfully(recent_failures: int, caller_failed_recently: bool, name_matches: bool, limit: int) -> bool:
    """Whether a check of one number is answered (valid / revoked / not found) or refused as guessing.

    Only failed checks count towards the per-number limit, so a verifier who knows the name is never crowded
    out by somebody else's wrong guesses. Once a number has had ``limit`` failed checks in the window, a
    wrong name is refused (429), and so is every check from a caller that has itself failed on this number in
    the window, right name or not: the right name still answers, but each caller gets at most one guess at a
    number under attack. Unknown numbers count the same way, so the answers do not tell them apart."""
    if limit <= 0 or recent_failures < limit:
        return True
    return name_matches and not caller_failed_recently


# --- retention of the check log -------------------------------------------------------------------------

def truncated_client(client: str) -> str:
    """What the check log keeps of a caller's address once it is old: its network, IPv4 ``/24`` and IPv6
    ``/48`` (``203.0.113.77`` -> ``203.0.113.0/24``), enough to see where a wave of checks came from, not
    who. Anything that is not an address is dropped (``""``). Truncating a truncated value changes nothing.
    The same rule masks the addresses the holder sees (``credence_common.security.masking.mask_ip_address``)."""
    return mask_ip_address(client)
