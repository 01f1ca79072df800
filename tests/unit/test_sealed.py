"""credence_common/persistence/sealed.py: a service's sealed columns, its data keys per environment."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text

from credence_common.config import ConfigurationRefused
from credence_common.persistence.sealed import DataKeys, sealed_type
from credence_common.security.crypto import KeyRing


@pytest.fixture
def keys(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("UNIT_DATA_KEYS: !raw_env_var ${UNIT_DATA_KEYS:k1=dev-insecure-unit-data-key}\n"
                      "UNIT_DATA_ACTIVE_KEY_ID: !raw_env_var ${UNIT_DATA_ACTIVE_KEY_ID:k1}\n")
    return DataKeys("unit", config)


def test_a_sealed_column_stores_a_token_and_reads_the_plaintext(keys):
    keys.install(KeyRing.from_spec("k3=unit-material", "k3"))
    rows = Table("people", MetaData(), Column("id", Integer, primary_key=True), Column("name", sealed_type(keys)()))
    engine = create_engine("sqlite://")
    rows.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(rows), [{"id": 1, "name": "王小明"}, {"id": 2, "name": None}])
        stored = connection.execute(text("SELECT name FROM people ORDER BY id")).scalars().all()
        assert stored[0].startswith("k3$") and "王小明" not in stored[0] and stored[1] is None
        assert connection.execute(select(rows.c.name).order_by(rows.c.id)).scalars().all() == ["王小明", None]


def test_without_an_installed_ring_the_config_files_keys_of_this_environment_are_used(keys, monkeypatch):
    monkeypatch.delenv("UNIT_DATA_KEYS", raising=False)
    monkeypatch.setenv("CREDENCE_ENV", "development")
    assert keys.keyring.active_key_id == "k1"  # development: the development key
    keys.reset()
    monkeypatch.setenv("UNIT_DATA_KEYS", "k2=real-unit-material")
    monkeypatch.setenv("UNIT_DATA_ACTIVE_KEY_ID", "k2")
    monkeypatch.setenv("CREDENCE_ENV", "production")
    assert keys.keyring.active_key_id == "k2"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_development_key_is_refused_outside_development(keys, monkeypatch, environment):
    monkeypatch.delenv("UNIT_DATA_KEYS", raising=False)
    monkeypatch.setenv("CREDENCE_ENV", environment)
    with pytest.raises(ConfigurationRefused, match="UNIT_DATA_KEYS"):
        keys.from_environment()


def test_without_credence_env_the_keys_are_refused(keys, monkeypatch):
    monkeypatch.delenv("CREDENCE_ENV", raising=False)
    with pytest.raises(ConfigurationRefused, match="CREDENCE_ENV"):
        keys.from_environment()
