"""How the fault suite finds a rabbitmq-server to start its own node with (tests/faults/broker.py), and that CI
fails rather than skips it when there is none."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.broker import find_server, in_ci, require_rabbitmq


def _script(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _debian_layout(root: Path) -> Path:
    """/usr/sbin/rabbitmq-server a symlink to the wrapper in /usr/lib/rabbitmq/bin, the script beside it."""
    bin_dir = root / "lib" / "rabbitmq" / "bin"
    _script(bin_dir / "rabbitmq-script-wrapper", "#!/bin/sh\nsu rabbitmq -c \"$0 $*\"\n")
    script = _script(bin_dir / "rabbitmq-server")
    (root / "sbin").mkdir()
    (root / "sbin" / "rabbitmq-server").symlink_to("../lib/rabbitmq/bin/rabbitmq-script-wrapper")
    return script


def test_the_server_on_path_is_found_and_a_wrapper_is_seen_through(tmp_path):
    script = _debian_layout(tmp_path)
    nowhere = str(tmp_path / "none-*")
    assert find_server({"PATH": str(tmp_path / "sbin")}, places=(), versioned=nowhere) == script
    # not on PATH: the usual places, then the versioned directories, are looked at
    assert find_server({"PATH": ""}, places=(str(tmp_path / "sbin" / "rabbitmq-server"),), versioned=nowhere) == script
    versioned = _script(tmp_path / "rabbitmq_server-3.13.1" / "sbin" / "rabbitmq-server")
    assert find_server({"PATH": ""}, places=(), versioned=str(tmp_path / "rabbitmq_server-*/sbin/rabbitmq-server")) \
        == versioned
    assert find_server({"PATH": ""}, places=(), versioned=nowhere) is None


def test_rabbitmq_server_names_the_one_to_use_and_only_that_one(tmp_path):
    script = _debian_layout(tmp_path)
    own = _script(tmp_path / "own" / "rabbitmq-server")
    environ = {"PATH": str(tmp_path / "sbin"), "RABBITMQ_SERVER": str(own)}
    assert find_server(environ) == own
    assert find_server({**environ, "RABBITMQ_SERVER": str(tmp_path / "sbin" / "rabbitmq-server")}) == script
    assert find_server({**environ, "RABBITMQ_SERVER": str(tmp_path / "missing")}) is None  # no quiet fallback


def test_without_a_broker_the_fault_suite_is_skipped_but_fails_under_ci(tmp_path):
    none = {"PATH": "", "RABBITMQ_SERVER": str(tmp_path / "missing")}
    with pytest.raises(pytest.skip.Exception):
        require_rabbitmq(none)
    for ci in ("true", "1"):
        assert in_ci({"CI": ci})
        with pytest.raises(pytest.fail.Exception, match="CI must run the fault suite"):
            require_rabbitmq({**none, "CI": ci})
    assert not in_ci({}) and not in_ci({"CI": "false"})
    require_rabbitmq({"CI": "true", "RABBITMQ_SERVER": str(_script(tmp_path / "ok" / "rabbitmq-server"))})


@pytest.mark.skipif(shutil.which("rabbitmq-server") is None, reason="RabbitMQ is not installed here")
def test_this_machines_rabbitmq_server_is_found():
    found = find_server()
    assert found is not None and found.resolve().name != "rabbitmq-script-wrapper"
