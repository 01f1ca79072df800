"""Every service is laid out the same way (issue #21 item 3, docs/architecture.md "Code layout"), so a reader knows
where to look in any of them: the rules in ``domain``, the use cases in ``usecases``, the tables in ``models.py``,
everything at the edge in ``adapters/``, the nameko providers in ``dependencies.py`` and thin entrypoints in
``service.py``."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "scoring", "certificates", "payments", "verification")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def module_or_package(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_one_skeleton(service):
    folder = ROOT / "services" / service
    missing = [part for part in ("domain", "usecases") if module_or_package(folder, part) is None]
    missing += [part for part in ("models.py", "dependencies.py", "service.py", "config.yml", "cli.py",
                                  "adapters/__init__.py", "migrations") if not (folder / part).exists()]
    assert not missing, f"services/{service} lacks {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_nameko_providers_live_in_dependencies_not_in_the_entrypoints(service):
    """service.py declares the service class and its entrypoints; a DependencyProvider defined anywhere but
    dependencies.py is a provider a reader would not find."""
    folder = ROOT / "services" / service
    for path in folder.rglob("*.py"):
        if path.name == "dependencies.py" or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        providers = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                     and any(getattr(base, "id", getattr(base, "attr", "")) == "DependencyProvider"
                             for base in node.bases)]
        assert not providers, f"{path.relative_to(ROOT)} defines providers {providers}: they go in dependencies.py"


@pytest.mark.parametrize("service", SERVICES)
def test_every_domain_module_is_a_pure_rule(service):
    """Each service's domain (module or package, every module in it) is in import-linter's pure-rules contract, so
    none of it can reach nameko, SQLAlchemy or I/O."""
    (pure,) = [c for c in CONFIG["tool"]["importlinter"]["contracts"] if c["id"] == "pure-rules"]
    folder = ROOT / "services" / service
    domain = [f"services.{service}.domain"]
    if (folder / "domain").is_dir():
        domain += [f"services.{service}.domain.{p.stem}" for p in (folder / "domain").glob("*.py")
                   if p.stem != "__init__"]
    assert set(domain) <= set(pure["source_modules"]), sorted(set(domain) - set(pure["source_modules"]))


def test_the_rule_map_names_files_functions_and_tests_that_exist():
    """docs/architecture.md "Where each rule lives": every owner file, every function or constant named beside it
    and every test it cites exist, so a file moved or a rule renamed fails here until the map follows."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("## Where each rule lives"):text.index("## RPCs and events")]
    rows = [row for row in section.splitlines() if row.startswith("| ") and not row.startswith("| Rule")]
    assert len(rows) >= 20
    missing = []
    for row in rows:
        _rule, owner, tests = row.strip("| ").split(" | ")
        for path, names in re.findall(r"`([\w/.*]+\.py)`(?: \(([^)]*)\))?", owner):
            full = path if path.startswith(("credence_common/", "gateway/")) else f"services/{path}"
            found = sorted(ROOT.glob(full))
            if not found:
                missing.append(full)
                continue
            source = found[0].read_text(encoding="utf-8")
            missing += [f"{full}: {name}" for name in re.findall(r"`(\w+)`", names)
                        if not re.search(rf"^(def|class) {name}\b|^{name}\b.* =", source, re.M)]
        for path, name in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", tests):
            if not (ROOT / path).exists() or (name and f"def {name}(" not in (ROOT / path).read_text(encoding="utf-8")):
                missing.append(f"{path}::{name}")
    assert not missing, missing
