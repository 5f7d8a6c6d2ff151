"""The architecture: the layers and the kinds' independence (import-linter contracts in pyproject.toml),
no private module imported from outside its package, the batch scripts on the public API only, a
command line that starts without torch, and one protocol every model kind implements."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_service.registry import get_kind, known_kinds

from .helpers import modules_loaded_by

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "nlp_service"
# Code that must use the library as a user would: its public names only. The tests may import
# internals to test them (white-box), and say so where they do.
CHECKED = ("nlp_service", "pipelines", "benchmarks")


def test_import_linter_contracts_are_kept() -> None:
    # In a process of its own: import-linter configures logging (dictConfig), which disables every logger
    # that exists, and later tests read the service's log records.
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def module_name(path: Path) -> str:
    """``nlp_service/api/errors.py`` -> ``nlp_service.api.errors``; a script -> ``pipelines.retrain``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``source``; ``from X import _y`` counts ``X._y``."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name.startswith("_")
                      and not alias.name.startswith("__")]
    return found


def private_import_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of a private module (a ``_name`` segment) of ``nlp_service`` from outside the package that
    holds it, and imports of the repository's scripts or tests from the library."""
    problems = []
    for line, target in imported_modules(source, module, is_package):
        parts = target.split(".")
        if module.startswith(PACKAGE) and parts[0] in ("pipelines", "benchmarks", "tests"):
            problems.append(f"{module}:{line} imports {target} (the library must not depend on it)")
        if parts[0] != PACKAGE:
            continue
        for i, part in enumerate(parts[1:], start=1):
            if part.startswith("_") and not part.startswith("__"):
                owner = ".".join(parts[:i])
                if module != owner and not module.startswith(owner + "."):
                    problems.append(f"{module}:{line} imports {target}, private to {owner}")
                break
    return problems


def test_no_private_module_is_imported_from_outside_its_package() -> None:
    problems = []
    for folder in CHECKED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            problems += private_import_violations(path.read_text(encoding="utf-8"), module_name(path),
                                                  path.name == "__init__.py")
    assert problems == []


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from nlp_service.generate._engine import GPT2Engine", "pipelines.job", ["private to nlp_service.generate"]),
    ("from ..vectors._store import VectorStore", "nlp_service.classify._pipeline", ["private to nlp_service.vectors"]),
    ("from nlp_service.generate import _train", "benchmarks.x", ["private to nlp_service.generate"]),
    ("import pipelines.retrain", "nlp_service.cli.train", ["must not depend"]),
    ("from ._sse import event", "nlp_service.api.protocols.tgi", []),
    ("from .._lazy import lazy_attributes", "nlp_service.classify", []),
    ("from nlp_service.vectors import VectorStore", "pipelines.job", []),
])
def test_the_private_import_check_finds_what_it_should(source: str, module: str, expected: list[str]) -> None:
    problems = private_import_violations(source, module, is_package=module == "nlp_service.classify")
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems, strict=True)), problems


def test_pipelines_is_not_an_installed_package(tmp_path: Path) -> None:
    """The batch scripts are files to run, not a top-level `pipelines` module in site-packages."""
    proc = subprocess.run([sys.executable, "-c", "import pipelines"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0 and "No module named 'pipelines'" in proc.stderr


def test_the_command_line_starts_without_torch_gensim_or_spacy() -> None:
    """Every command built, every option derived: ``nlp-service --help`` stays quick."""
    code = "import typer.main; from nlp_service.cli import app; typer.main.get_command(app)"
    assert modules_loaded_by(code, ["torch", "gensim", "spacy", "sklearn"]) == []


@pytest.mark.parametrize("kind", known_kinds())
def test_every_kind_implements_the_model_protocol(kind: str) -> None:
    model_class = get_kind(kind)
    for method in ("load", "save", "describe", "warm_up", "close"):
        assert callable(getattr(model_class, method, None)), f"{model_class.__name__}.{method}"
