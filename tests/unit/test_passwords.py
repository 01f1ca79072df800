from __future__ import annotations

import datetime

import argon2
import pytest

from credence_common.contracts.errors import InvalidInput
from gateway.statuses import http_status
from services.identity.domain import passwords
from services.identity.domain.passwords import (
    COMMON_PASSWORDS,
    COMMON_PASSWORDS_FILE,
    MAX_LENGTH,
    MIN_LENGTH,
    check_password,
    hash_password,
    needs_rehash,
    password_problems,
    personal_values_for,
    verify_password,
)

GOOD = "Tiger-lily 47 canoe"
BIRTH_DATE = datetime.date(1990, 3, 7)
RESIDENT_ID = "11010519900307002X"
MOBILE = "13812345678"
EMAIL = "ann.lee@example.com"
PERSONAL = (RESIDENT_ID, RESIDENT_ID[-6:], MOBILE, "ann.lee")
POEM = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少"


def codes(password: str, **kwargs) -> list[str]:
    return [code for code, _ in password_problems(password, **kwargs)]


# --- a good password --------------------------------------------------------------------------------

def test_good_password_has_no_problems_even_with_personal_context():
    assert password_problems(GOOD) == []
    assert password_problems(GOOD, birth_date=BIRTH_DATE, personal_values=PERSONAL) == []
    check_password(GOOD, birth_date=BIRTH_DATE, personal_values=PERSONAL)  # does not raise


@pytest.mark.parametrize("password", [GOOD, "Tk7#mq2Z", "correct horse battery staple", "student first alert",
                                      "partypower", "Tr0ub4dor&3", "correct horse 12345 battery", POEM])
def test_reasonable_passwords_are_accepted(password):
    assert codes(password, birth_date=BIRTH_DATE, personal_values=PERSONAL) == []


# --- length -----------------------------------------------------------------------------------------

def test_length_limits():
    assert MIN_LENGTH == 8
    assert MAX_LENGTH == 64
    assert codes("Tk7#mq2Z") == []
    assert codes("Tk7#mq2") == ["too_short"]
    sixty_four = (GOOD + " ") * 3 + "Xq9!"
    assert len(sixty_four) == 64
    assert codes(sixty_four) == []
    assert codes(sixty_four + "z") == ["too_long"]


def test_length_counts_code_points_not_bytes():
    assert codes(POEM[:8]) == []  # 8 characters, 24 bytes in UTF-8
    assert codes(POEM[:7]) == ["too_short"]
    long_poem = (POEM * 4)[:64]
    assert codes(long_poem) == []
    assert codes(long_poem + "春") == ["too_long"]


def test_empty_password_is_too_short():
    assert "too_short" in codes("")


# --- common -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "password",
    ["123456", "password", "PASSWORD", "PassWord", "12345678", "qwerty", "111111", "5201314", "woaini1314",
     "iloveyou", "a123456", "abc123", "1qaz2wsx", "zxcvbnm", "88888888", "147258369", "aa123456", "dragon",
     "P@ssw0rd", "qq123456"],
)
def test_common_passwords_are_refused(password):
    assert "common" in codes(password)


@pytest.mark.parametrize(
    "password", ["Password123!", "password!", "Monkey2024!!", "iloveyou520", "!!Dragon!!", "Sunshine 2025", "WoAiNi."]
)
def test_common_password_with_trailing_decoration_is_refused(password):
    assert "common" in codes(password)


def test_a_common_word_inside_a_longer_password_is_not_common():
    assert "common" not in codes("password-is-no-longer-my-choice")
    assert "common" not in codes(GOOD)


def test_common_password_list_is_loaded_from_the_file():
    assert len(COMMON_PASSWORDS) >= 800
    assert isinstance(COMMON_PASSWORDS, frozenset)
    for required in ("123456", "password", "12345678", "qwerty", "111111", "5201314", "woaini1314", "iloveyou",
                     "a123456", "abc123", "1qaz2wsx", "zxcvbnm", "88888888", "147258369", "aa123456"):
        assert required in COMMON_PASSWORDS
    assert all(entry == entry.lower() and entry == entry.strip() and entry for entry in COMMON_PASSWORDS)
    assert not any(entry.startswith("#") for entry in COMMON_PASSWORDS)


def test_common_password_file_format(tmp_path):
    sample = tmp_path / "list.txt"
    sample.write_text("# a comment\n\nAbc\n  spaced  \nabc\n", encoding="utf-8")
    assert passwords._load_common_passwords(sample) == frozenset({"abc", "spaced"})
    assert COMMON_PASSWORDS_FILE.name == "common_passwords.txt"


# --- repetitive -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "password", ["aaaaaaaa", "AAAAaaaa", "abababab", "aabbccaabbcc", "xyzxyzxyz", "abcdabcdabcd", "1212121212",
                 "!!!!!!!!!", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"],
)
def test_repetitive_passwords_are_refused(password):
    assert "repetitive" in codes(password)


def test_four_distinct_characters_not_in_blocks_is_not_repetitive():
    assert "repetitive" not in codes("abcdcbadacbd")


# --- sequence ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "password",
    ["12345678", "abcdefgh", "87654321", "hgfedcba", "qwertyui", "asdfghjk", "1qaz2wsx", "zaq12wsx", "QWERTYUIOP",
     "abcd1234", "Xy12345678", "1q2w3e4r", "poiuytrewq", "zxcvbnm,", "qazwsxedc", "lkjhgfdsa", "mnbvcxz1234",
     "7890123456"],
)
def test_sequences_are_refused(password):
    assert "sequence" in codes(password)


def test_a_short_run_inside_a_long_passphrase_is_not_a_sequence():
    assert "sequence" not in codes("correct horse 12345 battery")
    assert "sequence" not in codes("party power alert")  # "rty", "wer" and "ert" are keyboard runs of 3 only


# --- birth date -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "password", ["kite19900307", "kite900307!", "03071990kite", "kite07031990", "my 1990-03-07 kite",
                 "kite1990/03/07", "kite1990.03.07"],
)
def test_birth_date_forms_are_refused(password):
    assert "contains_birth_date" in codes(password, birth_date=BIRTH_DATE)
    assert "contains_birth_date" not in codes(password, birth_date=datetime.date(1985, 11, 23))
    assert "contains_birth_date" not in codes(password)


def test_birth_date_forms_are_zero_padded():
    forms = passwords.birth_date_forms(datetime.date(2001, 1, 2))
    assert {"20010102", "010102", "01022001", "02012001", "2001-01-02"} <= set(forms)


def test_month_and_day_alone_are_not_a_birth_date():
    assert "contains_birth_date" not in codes("Tiger-lily 0307", birth_date=BIRTH_DATE)


# --- personal data ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "password",
    ["x" + RESIDENT_ID + "!", RESIDENT_ID.lower(), "Canoe-07002x", "canoe 13812345678", "Ann.Lee-canoe-47"],
)
def test_personal_data_is_refused(password):
    assert "contains_personal_data" in codes(password, personal_values=PERSONAL)
    assert "contains_personal_data" not in codes(password)


def test_short_and_empty_personal_values_are_ignored():
    assert "contains_personal_data" not in codes("annTiger-lily 47", personal_values=("ann", "", "  "))
    assert "contains_personal_data" in codes("annaTiger-lily 47", personal_values=("anna",))


def test_personal_data_is_compared_case_insensitively():
    assert "contains_personal_data" in codes("canoe ZHANGWEI 47", personal_values=("zhangwei",))
    assert "contains_personal_data" in codes("canoe zhangwei 47", personal_values=("ZhangWei",))


def test_personal_values_for():
    values = personal_values_for(resident_id_number=RESIDENT_ID, mobile=MOBILE, email=EMAIL)
    assert RESIDENT_ID in values
    assert RESIDENT_ID[-6:] in values
    assert MOBILE in values
    assert "ann.lee" in values
    assert personal_values_for() == ()
    assert personal_values_for(email="ab@example.com") == ("ab@example.com",)  # "ab" is too short to matter
    assert "contains_personal_data" in codes("ann.lee.rocks!", personal_values=values)


# --- several problems at once -----------------------------------------------------------------------

def test_all_problems_are_reported_in_a_fixed_order():
    assert codes("1234567") == ["too_short", "common", "sequence"]
    assert codes("aaaa") == ["too_short", "common", "repetitive"]
    assert codes("19900307", birth_date=BIRTH_DATE) == ["contains_birth_date"]
    assert codes("0307199013812345678", birth_date=BIRTH_DATE, personal_values=(MOBILE,)) == [
        "contains_birth_date", "contains_personal_data"]


def test_problems_carry_a_human_phrase():
    for code, phrase in password_problems("1234567"):
        assert isinstance(code, str) and isinstance(phrase, str)
        assert phrase and phrase != code


# --- check_password ---------------------------------------------------------------------------------

def test_check_password_raises_invalid_input_with_every_reason():
    with pytest.raises(InvalidInput) as caught:
        check_password("1234567")
    error = caught.value
    assert error.code == "weak_password"
    assert http_status(error) == 422
    assert error.details == [{"field": "password", "message": "too_short"},
                             {"field": "password", "message": "common"},
                             {"field": "password", "message": "sequence"}]
    assert "fewer than 8 characters" in error.message
    assert "most widely used" in error.message
    assert "consecutive" in error.message
    assert error.message.endswith(".") and error.message.count(".") == 1  # one sentence


@pytest.mark.parametrize(
    "password, kwargs",
    [("password", {}), ("Password123!", {}), ("12345678", {}), ("qwertyui", {}), ("woaini1314", {}),
     ("kite19900307", {"birth_date": BIRTH_DATE}), ("x" + RESIDENT_ID, {"personal_values": PERSONAL}),
     ("z" * 70, {}), ("短", {})],
)
def test_check_password_message_never_contains_the_password(password, kwargs):
    with pytest.raises(InvalidInput) as caught:
        check_password(password, **kwargs)
    # The code "weak_password" and the field name "password" are fixed; everything else a client sees must not
    # echo the input.
    shown = [caught.value.message] + [item["message"] for item in caught.value.details]
    assert all(password.lower() not in text.lower() for text in shown)


def test_check_password_reports_birth_date_and_personal_data():
    with pytest.raises(InvalidInput) as caught:
        check_password("kite19900307" + MOBILE, birth_date=BIRTH_DATE, personal_values=PERSONAL)
    assert [item["message"] for item in caught.value.details] == ["contains_birth_date", "contains_personal_data"]
    assert "date of birth" in caught.value.message and "personal details" in caught.value.message
    assert " and " in caught.value.message


# --- hashing ----------------------------------------------------------------------------------------

def test_hash_uses_argon2id_with_the_owasp_parameters():
    password_hash = hash_password(GOOD)
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    parameters = argon2.extract_parameters(password_hash)
    assert parameters.type is argon2.Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert (parameters.hash_len, parameters.salt_len) == (32, 16)
    assert GOOD not in password_hash


def test_hash_verify_round_trip_and_salting():
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first != second
    assert verify_password(first, GOOD) is True
    assert verify_password(second, GOOD) is True


def test_wrong_password_is_false():
    password_hash = hash_password(GOOD)
    assert verify_password(password_hash, "Tiger-lily 47 canoE") is False
    assert verify_password(password_hash, "") is False
    assert verify_password(password_hash, GOOD + " ") is False


def test_chinese_and_lone_surrogate_passwords_round_trip():
    for password in ("春眠不觉晓处处闻啼鸟", "bad\ud800surrogate"):
        password_hash = hash_password(password)
        assert verify_password(password_hash, password) is True
        assert verify_password(password_hash, password[:-1]) is False


@pytest.mark.parametrize(
    "malformed",
    ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$garbage", "$argon2id$", "$2b$12$" + "a" * 53,
     "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$éé", None, 42],
)
def test_malformed_hash_is_false_not_an_exception(malformed):
    assert verify_password(malformed, GOOD) is False


def test_verify_with_a_non_str_password_is_false():
    assert verify_password(hash_password(GOOD), None) is False


def test_needs_rehash():
    assert needs_rehash(hash_password(GOOD)) is False
    legacy = argon2.PasswordHasher().hash(GOOD)  # argon2-cffi defaults: t=3, m=64 MiB, p=4
    assert needs_rehash(legacy) is True
    assert verify_password(legacy, GOOD) is True  # old hashes keep working until the next login rehashes them
    assert needs_rehash("not a hash") is True
