"""The package boundaries the build enforces (issue #21 item 7): pyproject.toml's [tool.importlinter] contracts,
checked by import-linter (`make lint` runs `lint-imports` too). The services are independent of each other, the
gateway imports no service, credence_common imports no service, and the rules in plain Python reach neither nameko
nor SQLAlchemy nor an I/O library.

The check runs as `lint-imports` in a process of its own, from the directory it checks (it puts that directory
first on ``sys.path``, so the copy below is what it reads, not the installed packages)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "gateway", "credence_common", "credence_cli", "deploy", "bench")
CONTRACTS = ("services-independent", "services-import-no-tooling", "gateway-imports-no-service",
             "common-imports-no-service", "common-layers", "common-acyclic", "cli-boundaries", "deploy-boundaries",
             "pure-rules")


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess:
    beside_python = Path(sys.executable).parent / "lint-imports"
    executable = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert executable, "lint-imports is not installed: pip install -e '.[dev]' (import-linter, pyproject.toml)"
    only = [argument for contract in contracts for argument in ("--contract", contract)]
    return subprocess.run([executable, "--no-cache", "--no-logo", *only], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_code_keeps_every_import_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, f"an import contract is broken:\n{result.stdout}\n{result.stderr}"
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout, result.stdout


def copy_of_the_code(destination: Path) -> Path:
    """The Python packages and pyproject.toml (the contracts), nothing else."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, destination / package,
                        ignore=lambda folder, names: [name for name in names if name == "__pycache__" or (
                            (Path(folder) / name).is_file() and not name.endswith(".py"))])
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


# One import each contract forbids, added to a copy of the code: the check must fail and name that contract.
VIOLATIONS = [
    ("services/identity/usecases/tickets.py", "from services.payments import domain as payments_domain",
     "services-independent", "services.identity is not allowed to import services.payments"),
    ("gateway/api.py", "import services.scoring.usecases.records", "gateway-imports-no-service",
     "gateway is not allowed to import services"),
    ("credence_common/security/masking.py", "import gateway.ratelimit", "common-imports-no-service",
     "credence_common is not allowed to import gateway"),
    # credence_common's packages by role (issue #21 item 5): a lower package reaching up, a cycle inside one
    ("credence_common/contracts/tickets.py", "import credence_common.persistence.db", "common-layers",
     "credence_common.contracts is not allowed to import credence_common.persistence"),
    ("credence_common/bus/queues.py", "from credence_common.bus import queue_admin", "common-acyclic",
     "- .queues -> .queue_admin"),
    ("services/certificates/service.py", "import deploy.processes", "services-import-no-tooling",
     "services is not allowed to import deploy"),
    ("credence_cli/rpc.py", "import gateway.auth", "cli-boundaries", "credence_cli is not allowed to import gateway"),
    ("deploy/processes.py", "import credence_cli.rpc", "deploy-boundaries",
     "deploy is not allowed to import credence_cli"),
    # directly, and indirectly through a module that is not one of the rules itself
    ("services/scoring/domain/result_files.py", "import sqlalchemy", "pure-rules",
     "services.scoring.domain.result_files is not allowed to import sqlalchemy"),
    ("services/verification/domain/reports.py", "from services.verification import models", "pure-rules",
     "services.verification.domain.reports is not allowed to import sqlalchemy"),
    ("credence_common/security/masking.py", "import credence_common.persistence.green_postgres", "pure-rules",
     "credence_common.security.masking is not allowed to import eventlet"),
]


@pytest.mark.parametrize("module, line, contract, message", VIOLATIONS, ids=[f"{v[2]}:{v[0]}" for v in VIOLATIONS])
def test_the_check_fails_on_an_import_a_contract_forbids(tmp_path, module, line, contract, message):
    code = copy_of_the_code(tmp_path)
    assert lint_imports(code).returncode == 0  # the copy alone keeps every contract
    (code / module).write_text((code / module).read_text(encoding="utf-8") + f"\n{line}  # a violation\n",
                               encoding="utf-8")
    result = lint_imports(code)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert message in broken, broken
    # import-linter names a cycle's modules relative to their package (".queues -> .queue_admin")
    assert module.removesuffix(".py").replace("/", ".") in broken or contract == "common-acyclic", broken
    # that very contract is broken (an indirect import may break others too: the CLI imports the services, ...)
    alone = lint_imports(code, contract)
    assert alone.returncode == 1 and "0 kept, 1 broken" in alone.stdout, alone.stdout


def test_every_contract_is_checked_and_the_known_debts_are_named_exactly():
    """The ignored edges are the known debts of issue #21, each named exactly: an edge that no longer exists fails
    the check (import-linter's default), so a fixed debt cannot linger as a silent exemption."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert tuple(contract["id"] for contract in config["contracts"]) == CONTRACTS
    ignored = {contract["id"]: contract.get("ignore_imports", []) for contract in config["contracts"]}
    assert ignored == dict.fromkeys(CONTRACTS, [])  # both debts of issue #21 are paid: no edge is ignored
    assert all(contract.get("unmatched_ignore_imports_alerting", "error") == "error"
               for contract in config["contracts"])
