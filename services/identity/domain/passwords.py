"""Password policy and hashing in plain Python.

The policy follows NIST SP 800-63B rather than composition rules: a length window, a list of passwords that
attackers try first, and the guesses an attacker who knows the candidate (birth date, ID number, mobile) would
try. Hashing is argon2id with the OWASP minimum parameters.
"""

from __future__ import annotations

import datetime
import string
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from credence_common.contracts.errors import InvalidInput

# argon2id, 19 MiB, 2 iterations, 1 lane: the OWASP Password Storage Cheat Sheet minimum for argon2id.
PASSWORD_HASHER = argon2.PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=argon2.Type.ID
)

MIN_LENGTH = 8
MAX_LENGTH = 64

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# Runs of at least this many characters along one of SEQUENCES count towards the "sequence" problem; shorter
# runs ("rty" in "party", "def" in "defend") occur in ordinary words far too often.
SEQUENCE_MIN_RUN = 4
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qazwsxedcrfvtgbyhnujmikolp",  # keyboard columns without the digits
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/",  # keyboard columns with the digits
    "1q2w3e4r5t6y7u8i9o0p",  # zig-zag between the number row and the top row
    "q1w2e3r4t5y6u7i8o9p0",
    "1a2b3c4d5e6f7g8h9i",
)
_SEQUENCE_SUBSTRINGS = frozenset(
    walk[start:end]
    for sequence in SEQUENCES
    for walk in (sequence, sequence[::-1])
    for start in range(len(walk))
    for end in range(start + SEQUENCE_MIN_RUN, len(walk) + 1)
)
_LONGEST_SEQUENCE = max(len(sequence) for sequence in SEQUENCES)

# Trimmed before the list look-up: "Password123!" is "password" with the decoration everyone adds.
_DECORATION = string.digits + string.punctuation + string.whitespace

MIN_PERSONAL_VALUE_LENGTH = 4

REASONS = {
    "too_short": f"has fewer than {MIN_LENGTH} characters",
    "too_long": f"has more than {MAX_LENGTH} characters",
    "common": "is among the most widely used choices",
    "repetitive": "uses too few different characters",
    "sequence": "is mostly a run of consecutive letters, digits or keyboard keys",
    "contains_birth_date": "contains your date of birth",
    "contains_personal_data": "contains your ID number, mobile number, email or other personal details",
}


def _load_common_passwords(path: Path) -> frozenset[str]:
    # Read once at import; a missing file must stop the service rather than silently accept "123456".
    entries = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.add(line.lower())
    return frozenset(entries)


COMMON_PASSWORDS: frozenset[str] = _load_common_passwords(COMMON_PASSWORDS_FILE)


def _is_common(lowered: str) -> bool:
    candidates = {lowered, lowered.rstrip(_DECORATION), lowered.strip(_DECORATION)}
    return any(candidate in COMMON_PASSWORDS for candidate in candidates if candidate)


def _is_repetitive(password: str) -> bool:
    if len(set(password)) < 4:
        return True
    # A short block said over and over ("abcdabcd", "qwerqwerqwer") is as weak as its block.
    for block in range(1, min(4, len(password) // 2) + 1):
        if len(password) % block == 0 and password == password[:block] * (len(password) // block):
            return True
    return False


def _sequence_coverage(lowered: str) -> int:
    """How many characters sit in runs of at least SEQUENCE_MIN_RUN along a sequence (greedy, longest first)."""
    covered = 0
    position = 0
    while position < len(lowered):
        longest = 0
        for end in range(min(len(lowered), position + _LONGEST_SEQUENCE), position + SEQUENCE_MIN_RUN - 1, -1):
            if lowered[position:end] in _SEQUENCE_SUBSTRINGS:
                longest = end - position
                break
        if longest:
            covered += longest
            position += longest
        else:
            position += 1
    return covered


def _is_sequence(lowered: str) -> bool:
    # Half the password or more: "abcd1234" and "Xy12345678" are refused, "12345" inside a long passphrase is not.
    covered = _sequence_coverage(lowered)
    return covered > 0 and covered * 2 >= len(lowered)


def birth_date_forms(birth_date: datetime.date) -> tuple[str, ...]:
    year, month, day = f"{birth_date.year:04d}", f"{birth_date.month:02d}", f"{birth_date.day:02d}"
    return (
        year + month + day,
        year[2:] + month + day,
        month + day + year,
        day + month + year,
        f"{year}-{month}-{day}",
        f"{year}/{month}/{day}",
        f"{year}.{month}.{day}",
    )


def password_problems(
    password: str, *, birth_date: datetime.date | None = None, personal_values: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """Every reason the password is refused, as ``(reason_code, human phrase)``; an empty list means accepted."""
    problems: list[str] = []
    length = len(password)  # code points: "密码" is two characters, as the candidate counts them
    if length < MIN_LENGTH:
        problems.append("too_short")
    if length > MAX_LENGTH:
        problems.append("too_long")
    lowered = password.lower()
    if _is_common(lowered):
        problems.append("common")
    if _is_repetitive(lowered):
        problems.append("repetitive")
    if _is_sequence(lowered):
        problems.append("sequence")
    if birth_date is not None and any(form in password for form in birth_date_forms(birth_date)):
        problems.append("contains_birth_date")
    folded = password.casefold()
    for value in personal_values:
        value = (value or "").strip().casefold()
        if len(value) >= MIN_PERSONAL_VALUE_LENGTH and value in folded:
            problems.append("contains_personal_data")
            break
    return [(code, REASONS[code]) for code in problems]


def personal_values_for(
    *, resident_id_number: str | None = None, mobile: str | None = None, email: str | None = None
) -> tuple[str, ...]:
    """What a guesser who knows the candidate would try: the ID number and its last 6, mobile, email local part."""
    values: list[str] = []
    if resident_id_number:
        values += [resident_id_number, resident_id_number[-6:]]
    if mobile:
        values.append(mobile)
    if email:
        values += [email, email.partition("@")[0]]
    return tuple(value for value in values if len(value) >= MIN_PERSONAL_VALUE_LENGTH)


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def check_password(
    password: str, *, birth_date: datetime.date | None = None, personal_values: tuple[str, ...] = ()
) -> None:
    problems = password_problems(password, birth_date=birth_date, personal_values=personal_values)
    if problems:
        # Built only from fixed phrases: the message is shown and logged, so it must never echo the password.
        raise InvalidInput(
            "weak_password",
            f"Please choose something harder to guess: it {_join([phrase for _, phrase in problems])}.",
            [{"field": "password", "message": code} for code, _ in problems],
        )


def _encode(password: str) -> bytes:
    # JSON can carry a lone surrogate ("\ud800"); argon2-cffi's strict UTF-8 encoding would turn it into a 500.
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(_encode(password))


def verify_password(password_hash: str, password: str) -> bool:
    """False for a wrong password and for anything that is not an argon2 hash; never raises for either."""
    if not isinstance(password_hash, str) or not isinstance(password, str):
        return False
    try:
        return PASSWORD_HASHER.verify(password_hash, _encode(password))
    except (VerificationError, InvalidHashError, UnicodeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters, and for a malformed hash that must be replaced."""
    try:
        return PASSWORD_HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError, TypeError, UnicodeError):
        return True
