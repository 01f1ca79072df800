from __future__ import annotations

import base64
import re

import pytest

from credence_common.security.crypto import (
    BLIND_INDEX_INFO,
    FIELD_ENCRYPTION_INFO,
    DecryptionError,
    KeyRing,
    blind_index,
    derive_key,
)

RESIDENT_ID = "11010519491231002X"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({"k2": "new material", "k1": "old material"}, "k2")


def flip_char(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


def b64decode_unpadded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- derive_key -------------------------------------------------------------------------------------

def test_derive_key_is_deterministic_and_sized():
    key = derive_key("some material", FIELD_ENCRYPTION_INFO)
    assert key == derive_key("some material", FIELD_ENCRYPTION_INFO)
    assert len(key) == 32
    assert len(derive_key("some material", FIELD_ENCRYPTION_INFO, length=16)) == 16


def test_derive_key_separates_material_and_info():
    key = derive_key("some material", FIELD_ENCRYPTION_INFO)
    assert key != derive_key("other material", FIELD_ENCRYPTION_INFO)
    assert key != derive_key("some material", BLIND_INDEX_INFO)


def test_derive_key_refuses_empty_material():
    with pytest.raises(ValueError):
        derive_key("", FIELD_ENCRYPTION_INFO)


# --- encrypt / decrypt --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "plaintext",
    [RESIDENT_ID, "13812345678", "ann.lee@example.com", "张三丰", "北京市朝阳区 建国路 88 号 😀", "", "a$b,c=d"],
)
def test_round_trip(ring, plaintext):
    token = ring.encrypt(plaintext)
    assert ring.decrypt(token) == plaintext


def test_token_format(ring):
    token = ring.encrypt(RESIDENT_ID)
    key_id, _, data = token.partition("$")
    assert key_id == "k2"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", data), "url-safe base64 without padding"
    raw = b64decode_unpadded(data)
    assert len(raw) == 12 + len(RESIDENT_ID.encode()) + 16  # nonce, ciphertext, GCM tag
    assert RESIDENT_ID not in token


def test_same_plaintext_gives_different_tokens(ring):
    tokens = {ring.encrypt(RESIDENT_ID) for _ in range(20)}
    assert len(tokens) == 20
    assert all(ring.decrypt(token) == RESIDENT_ID for token in tokens)


def test_key_material_can_be_any_passphrase():
    ring = KeyRing({"main": "correct horse battery staple / 正确 = ok"}, "main")
    assert ring.decrypt(ring.encrypt("13812345678")) == "13812345678"


def test_another_ring_with_other_material_cannot_decrypt(ring):
    token = ring.encrypt(RESIDENT_ID)
    impostor = KeyRing({"k2": "guessed material"}, "k2")
    with pytest.raises(DecryptionError):
        impostor.decrypt(token)


def test_every_single_character_change_in_the_data_is_detected(ring):
    token = ring.encrypt(RESIDENT_ID)
    start = token.index("$") + 1
    for index in range(start, len(token)):
        with pytest.raises(DecryptionError):
            ring.decrypt(flip_char(token, index))


def test_truncated_or_extended_token_is_refused(ring):
    token = ring.encrypt(RESIDENT_ID)
    for bad in (token[:-1], token[:-4], token + "A", token + "AAAA", token.split("$")[0] + "$"):
        with pytest.raises(DecryptionError):
            ring.decrypt(bad)


def test_relabelling_a_token_with_another_existing_key_id_is_refused(ring):
    token = ring.encrypt(RESIDENT_ID)
    relabelled = "k1" + token[len("k2"):]
    assert ring.key_id_of(relabelled) == "k1"
    with pytest.raises(DecryptionError):
        ring.decrypt(relabelled)


def test_relabelling_is_refused_even_when_both_ids_share_material():
    # Only the associated data can tell these two apart: same material, so same AES key.
    ring = KeyRing({"a": "shared", "b": "shared"}, "a")
    token = ring.encrypt(RESIDENT_ID)
    assert ring.decrypt(token) == RESIDENT_ID
    with pytest.raises(DecryptionError):
        ring.decrypt("b" + token[1:])


def test_unknown_key_id_is_refused(ring):
    token = ring.encrypt(RESIDENT_ID)
    with pytest.raises(DecryptionError, match="unknown key id"):
        ring.decrypt("k9" + token[2:])


@pytest.mark.parametrize(
    "garbage",
    ["", "$", "k2", "k2$", "k2$!!!!", "k2$abc", "no separator at all", "k2$" + "A" * 10, "bad id!$AAAA",
     "k2$" + "A" * 41, "k2$" + "A" * 40 + "==", "k2 $" + "A" * 40, "waytoolongkeyid_17$" + "A" * 40, None, 42,
     b"k2$AAAA"],
)
def test_garbage_tokens_raise_decryption_error(ring, garbage):
    with pytest.raises(DecryptionError):
        ring.decrypt(garbage)


def test_non_canonical_base64_spelling_is_refused(ring):
    # 12 + 1 + 16 = 29 bytes: the last base64 character carries 2 unused bits, so flipping its lowest bit spells
    # the same bytes differently; that second spelling must not be a valid token.
    token = ring.encrypt("x")
    key_id, _, data = token.partition("$")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = data[:-1] + alphabet[alphabet.index(data[-1]) ^ 1]
    assert b64decode_unpadded(sibling) == b64decode_unpadded(data)
    with pytest.raises(DecryptionError):
        ring.decrypt(f"{key_id}${sibling}")


def test_encrypt_refuses_non_str(ring):
    with pytest.raises(TypeError):
        ring.encrypt(b"bytes")


# --- rotation ---------------------------------------------------------------------------------------

def test_token_of_the_old_key_decrypts_after_a_new_active_key_is_added():
    old_ring = KeyRing.from_spec("k1=old material", "k1")
    token = old_ring.encrypt("13812345678")
    assert old_ring.needs_rotation(token) is False

    new_ring = KeyRing.from_spec("k2=new material,k1=old material", "k2")
    assert new_ring.decrypt(token) == "13812345678"
    assert new_ring.key_id_of(token) == "k1"
    assert new_ring.needs_rotation(token) is True

    rotated = new_ring.reencrypt(token)
    assert new_ring.key_id_of(rotated) == "k2"
    assert new_ring.needs_rotation(rotated) is False
    assert new_ring.decrypt(rotated) == "13812345678"
    with pytest.raises(DecryptionError):
        old_ring.decrypt(rotated)  # a process still on the old ring cannot read the new key's tokens


def test_new_values_use_the_active_key(ring):
    assert ring.active_key_id == "k2"
    assert ring.key_id_of(ring.encrypt("x")) == "k2"
    assert ring.key_ids == frozenset({"k1", "k2"})


def test_reencrypt_of_an_active_token_gives_a_fresh_token(ring):
    token = ring.encrypt(RESIDENT_ID)
    again = ring.reencrypt(token)
    assert again != token
    assert ring.decrypt(again) == RESIDENT_ID


def test_reencrypt_refuses_tampered_tokens(ring):
    token = ring.encrypt(RESIDENT_ID)
    with pytest.raises(DecryptionError):
        ring.reencrypt(flip_char(token, len(token) - 3))


def test_needs_rotation_for_unknown_key_id_and_malformed_token(ring):
    assert ring.needs_rotation("k9$AAAA") is True
    with pytest.raises(DecryptionError):
        ring.needs_rotation("no separator")
    with pytest.raises(DecryptionError):
        ring.key_id_of("$AAAA")


# --- KeyRing construction ---------------------------------------------------------------------------

def test_from_spec_material_may_contain_equals_and_spaces():
    ring = KeyRing.from_spec("k2=a=b c==,k1-old_=x", "k1-old_")
    assert ring.key_ids == frozenset({"k2", "k1-old_"})
    token = KeyRing.from_spec("k2=a=b c==,k1-old_=x", "k2").encrypt("v")
    assert KeyRing({"k2": "a=b c=="}, "k2").decrypt(token) == "v"  # material taken verbatim after the first '='
    with pytest.raises(DecryptionError):
        KeyRing({"k2": "a=b c="}, "k2").decrypt(token)


@pytest.mark.parametrize(
    "spec, active, message",
    [
        ("", "k1", "empty"),
        ("k1", "k1", "no '='"),
        ("k1=a,", "k1", "entry 2"),
        (",k1=a", "k1", "entry 1"),
        ("k1=", "k1", "empty key material"),
        ("=material", "k1", "invalid key id"),
        ("k 1=material", "k 1", "invalid key id"),
        ("k1=a,k!=b", "k1", "invalid key id"),
        ("abcdefghijklmnopq=a", "abcdefghijklmnopq", "invalid key id"),
        ("k1=a,k1=b", "k1", "repeats key id 'k1'"),
        ("k1=a,k2=b", "k3", "active key id 'k3'"),
    ],
)
def test_from_spec_errors(spec, active, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        KeyRing.from_spec(spec, active)


def test_from_spec_errors_never_echo_key_material():
    for spec in ("k1=topsecret,k1=topsecret2", "k1=topsecret,bad id=topsecret", "k1=topsecret"):
        with pytest.raises(ValueError) as caught:
            KeyRing.from_spec(spec, "missing" if spec == "k1=topsecret" else "k1")
        assert "topsecret" not in str(caught.value)


def test_sixteen_character_key_id_is_accepted():
    ring = KeyRing.from_spec("abcdefghijklmnop=a", "abcdefghijklmnop")
    assert ring.key_id_of(ring.encrypt("v")) == "abcdefghijklmnop"


@pytest.mark.parametrize(
    "keys, active",
    [({}, "k1"), ({"k1": "a"}, "k2"), ({"k1": ""}, "k1"), ({"k$1": "a"}, "k$1"), ({"": "a"}, "")],
)
def test_constructor_errors(keys, active):
    with pytest.raises(ValueError):
        KeyRing(keys, active)


def test_repr_does_not_leak_material(ring):
    assert "material" not in repr(ring)
    assert "k1" in repr(ring) and "k2" in repr(ring)


# --- blind index ------------------------------------------------------------------------------------

def test_blind_index_is_deterministic_lowercase_hex():
    index = blind_index("13812345678", "index material", "mobile")
    assert index == blind_index("13812345678", "index material", "mobile")
    assert re.fullmatch(r"[0-9a-f]{64}", index)


def test_blind_index_differs_by_value_purpose_and_key():
    index = blind_index("13812345678", "index material", "mobile")
    assert index != blind_index("13812345679", "index material", "mobile")
    assert index != blind_index("13812345678", "index material", "resident_id_number")
    assert index != blind_index("13812345678", "other material", "mobile")


def test_blind_index_does_not_normalise():
    assert blind_index("ANN@EXAMPLE.COM", "m", "email") != blind_index("ann@example.com", "m", "email")


def test_blind_index_key_is_separate_from_the_encryption_key():
    # Same material for both jobs must still give unrelated keys (different HKDF info).
    assert derive_key("shared", BLIND_INDEX_INFO) != derive_key("shared", FIELD_ENCRYPTION_INFO)


def test_blind_index_separator_prevents_purpose_value_ambiguity():
    assert blind_index("b", "m", "a") != blind_index("\x00b", "m", "a")
    with pytest.raises(ValueError):
        blind_index("c", "m", "a\x00b")


def test_blind_index_works_for_chinese_text():
    assert blind_index("张三丰", "m", "name") != blind_index("张三", "m", "name")


@pytest.mark.parametrize("purpose", ["", None])
def test_blind_index_refuses_empty_purpose(purpose):
    with pytest.raises(ValueError):
        blind_index("v", "m", purpose)


def test_blind_index_refuses_empty_key_material():
    with pytest.raises(ValueError):
        blind_index("v", "", "mobile")
