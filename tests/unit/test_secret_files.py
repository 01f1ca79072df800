"""The one watcher of every key store (credence_common/security/secret_files.py)."""

from __future__ import annotations

import logging
import os

import pytest

from credence_common.security.secret_files import ReloadingSecrets


def store(directory, **kwargs):
    def load():
        text = (directory / "key").read_text()
        if not text:
            raise ValueError("the key file is empty")
        return text

    return ReloadingSecrets("test key", lambda: [directory / "key", *sorted(directory.glob("*.pem"))], load,
                            lambda key: f"{len(key)} characters", **kwargs)


def test_a_change_is_seen_a_broken_one_keeps_the_last_good_and_a_new_file_counts(tmp_path, caplog):
    (tmp_path / "key").write_text("first")
    secrets = store(tmp_path, check_interval_seconds=0)
    assert secrets.current() == "first"
    (tmp_path / "key").write_text("second!")
    with caplog.at_level(logging.INFO):
        assert secrets.current() == "second!"
    assert "test key reloaded: 7 characters" in caplog.text and "second!" not in caplog.text
    (tmp_path / "key").write_text("")
    assert secrets.current() == "second!"
    assert "not reloaded, the last good ones stay: the key file is empty" in caplog.text
    (tmp_path / "key").unlink()  # gone in the middle of a swap
    assert secrets.current() == "second!"
    (tmp_path / "key").write_text("third")
    (tmp_path / "new.pem").write_text("x")  # a file dropped beside the others is a change too
    assert secrets.current() == "third"


def test_a_kubernetes_secret_swap_behind_a_symlink_is_seen(tmp_path):
    """A Secret volume: ``key`` -> ``..data/key``, ``..data`` -> a timestamped directory swapped atomically; the
    new file can have the old one's size and, on a coarse clock, its time: its identity differs."""
    for name, text in (("..2026_12_01", "aaaa"), ("..2026_12_02", "bbbb")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "key").write_text(text)
    os.symlink("..2026_12_01", tmp_path / "..data")
    os.symlink("..data/key", tmp_path / "key")
    secrets = store(tmp_path, check_interval_seconds=0)
    assert secrets.current() == "aaaa"
    os.symlink("..2026_12_02", tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert secrets.current() == "bbbb"


def test_files_are_looked_at_once_per_interval_unless_forced(tmp_path):
    (tmp_path / "key").write_text("first")
    secrets = store(tmp_path, check_interval_seconds=3600)
    (tmp_path / "key").write_text("second")
    assert secrets.current() == "first"
    assert secrets.current(force=True) == "second"


def test_a_broken_directory_at_start_up_stops_the_start(tmp_path):
    (tmp_path / "key").write_text("")
    with pytest.raises(ValueError):
        store(tmp_path)
