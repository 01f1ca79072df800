"""How the fault suite finds the PostgreSQL server binaries for its own primary and standby
(tests/faults/standby.py), and that CI fails rather than skips the standby failover when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.standby import TOOLS, find_bindir, require_postgres_binaries


def _bindir(path: Path) -> Path:
    path.mkdir(parents=True)
    for tool in TOOLS:
        (path / tool).write_text("#!/bin/sh\nexit 0\n")
        (path / tool).chmod(0o755)
    return path


def test_postgres_bin_names_the_directory_to_use_and_only_that_one(tmp_path):
    own = _bindir(tmp_path / "own")
    assert find_bindir({"POSTGRES_BIN": str(own)}) == own
    (own / "pg_basebackup").unlink()  # all three tools or none
    assert find_bindir({"POSTGRES_BIN": str(own)}) is None
    assert find_bindir({"POSTGRES_BIN": str(tmp_path / "missing")}) is None  # no quiet fallback


def test_pg_config_on_path_says_where_the_server_is(tmp_path):
    server = _bindir(tmp_path / "server")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_config").write_text(f"#!/bin/sh\necho {server}\n")
    (tmp_path / "bin" / "pg_config").chmod(0o755)
    assert find_bindir({"PATH": str(tmp_path / "bin")}) == server


def test_without_the_binaries_the_standby_run_is_skipped_but_fails_under_ci(tmp_path):
    none = {"PATH": "", "POSTGRES_BIN": str(tmp_path / "missing")}
    with pytest.raises(pytest.skip.Exception):
        require_postgres_binaries(none)
    with pytest.raises(pytest.fail.Exception, match="CI must run the standby failover"):
        require_postgres_binaries({**none, "CI": "true"})
    require_postgres_binaries({"CI": "true", "POSTGRES_BIN": str(_bindir(tmp_path / "ok"))})
