"""The type checker the build runs (issue #21 item 9): pyproject.toml's [tool.mypy], over credence_common, services
and gateway (`make lint` runs `python -m mypy` too). The baseline holds for the whole tree; the contracts and the
pure rules are strict, so a signature changed there is checked at every caller.

mypy runs in a process of its own, from the directory it checks, as `make lint` runs it. The whole tree takes
about ten seconds without a cache; the project's .mypy_cache makes a second run quick."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MYPY = CONFIG["tool"]["mypy"]
# The flags of mypy's --strict that a module can be given (warn_redundant_casts and warn_unused_configs are
# global: set in [tool.mypy] itself).
STRICT_FLAGS = {"disallow_any_generics": True, "disallow_subclassing_any": True, "disallow_untyped_calls": True,
                "disallow_untyped_defs": True, "disallow_incomplete_defs": True, "check_untyped_defs": True,
                "disallow_untyped_decorators": True, "warn_unused_ignores": True, "warn_return_any": True,
                "implicit_reexport": False, "strict_equality": True, "extra_checks": True}
ERROR = re.compile(r"^(?P<path>[^:]+)\.py:\d+: error: .*\[(?P<code>[a-z-]+)\]$")


def mypy(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def strict_override() -> dict:
    (strict,) = [override for override in MYPY["overrides"] if "credence_common.contracts.*" in override["module"]]
    return strict


def strict_modules() -> list[str]:
    return strict_override()["module"]


def debt_overrides() -> list[dict]:
    return [override for override in MYPY["overrides"] if "disable_error_code" in override]


def test_the_tree_type_checks():
    result = mypy()
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_the_strict_modules_are_the_contracts_and_every_pure_rule():
    """Every module of import-linter's pure-rules contract is strict, and so are the contracts; `strict = true`
    is not used in an override (mypy would switch the strict flags on for every module)."""
    override = strict_override()
    assert {flag: override.get(flag) for flag in STRICT_FLAGS} == STRICT_FLAGS, "the strict override lost a flag"
    strict = strict_modules()
    (pure_rules,) = [contract for contract in CONFIG["tool"]["importlinter"]["contracts"]
                     if contract["id"] == "pure-rules"]
    assert set(pure_rules["source_modules"]) <= set(strict)
    assert "credence_common.contracts.*" in strict
    assert all("strict" not in override for override in MYPY["overrides"])
    assert not any(module in strict for override in debt_overrides() for module in override["module"]), \
        "a strict module may not be excused from an error code"


def test_strictness_bites_on_the_strict_modules_only(tmp_path):
    """An unannotated function under the name of each strict module (and of a contract), with the project's
    configuration: mypy refuses each, and accepts the same function under the name of an ordinary module."""
    unannotated = "def total(first, second):\n    return first + second\n"
    strict = [module.replace(".*", ".example") for module in strict_modules()]
    ordinary = "services.scoring.usecases"
    files = []
    for module in [*strict, ordinary]:
        path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        for package in path.relative_to(tmp_path).parents:
            if package != Path("."):
                (tmp_path / package).mkdir(parents=True, exist_ok=True)
                (tmp_path / package / "__init__.py").touch()
        path.write_text(unannotated, encoding="utf-8")
        files.append(str(path.relative_to(tmp_path)))
    result = mypy("--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / ".mypy_cache"),
                  *files, cwd=tmp_path)
    refused = {match["path"].replace("/", ".") for line in result.stdout.splitlines()
               if (match := ERROR.match(line)) and match["code"] == "no-untyped-def"}
    assert refused == set(strict), result.stdout
    assert result.returncode == 1


def _ini_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def test_the_known_debt_is_still_owed(tmp_path):
    """Each module excused from an error code (the KNOWN DEBT overrides) still has an error of that code: a
    module that was fixed must leave the list, so the debt cannot linger unseen. The project's configuration is
    run without the excuses (written as an INI file, mypy's other format)."""
    sections = ["[mypy]", *(f"{key} = {_ini_value(value)}" for key, value in MYPY.items() if key != "overrides"),
                f"cache_dir = {tmp_path / '.mypy_cache'}", "", "[pydantic-mypy]",
                *(f"{key} = {_ini_value(value)}" for key, value in CONFIG["tool"]["pydantic-mypy"].items())]
    for override in MYPY["overrides"]:
        if "disable_error_code" not in override:
            sections += ["", f"[mypy-{','.join(override['module'])}]",
                         *(f"{key} = {_ini_value(value)}" for key, value in override.items() if key != "module")]
    config = tmp_path / "mypy.ini"
    config.write_text("\n".join(sections) + "\n", encoding="utf-8")
    result = mypy("--config-file", str(config))
    # a package's module is its __init__.py
    found = {(match["path"].replace("/", ".").removesuffix(".__init__"), match["code"])
             for line in result.stdout.splitlines() if (match := ERROR.match(line))}
    owed = {(module, code) for override in debt_overrides() for module in override["module"]
            for code in override["disable_error_code"]}
    assert result.returncode == 1, result.stdout + result.stderr
    assert owed - found == set(), "paid off: remove these from pyproject.toml's KNOWN DEBT overrides"
    assert found - owed == set(), "errors that no override excuses (the baseline should have caught them)"
