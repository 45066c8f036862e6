"""The house rules: each domain owns its tables, domains use each other's public names only, and
imports run one way (the import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("index", "compliance", "complaints", "generator")
PACKAGES = ("clipgate", *DOMAINS, "bench")
# Modules that assemble the domains, and so may import any of their modules.
ASSEMBLY = {"clipgate.app", "clipgate.cli", "clipgate.tasks"}

# Who owns each table the migrations create. A new table must be given an owner here.
OWNERS = {
    "api_keys": "clipgate",
    "works": "index", "work_frames": "index", "work_frame_features": "index",
    "work_frame_signals": "index", "index_signals": "index", "index_state": "index",
    "index_changes": "index",
    "checks": "compliance", "releases": "compliance", "release_frames": "compliance",
    "release_frame_signals": "compliance", "review_items": "compliance",
    "licences": "compliance", "tracked_matches": "compliance",
    "accounts": "complaints", "claims": "complaints", "claim_messages": "complaints",
    "audit_log": "complaints", "counter_notices": "complaints", "notifications": "complaints",
    "rescans": "complaints", "retraining_flags": "complaints", "takedowns": "complaints",
    "web_sessions": "complaints",
    "generation_jobs": "generator", "prompt_screenings": "generator", "tenants": "generator",
    "tiers": "generator", "usage_ledger": "generator",
}
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant, f-strings' literal parts included."""
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_part_is_a_regular_package(package):
    """setuptools' find_packages (pyproject's include) skips a folder without __init__.py, so a
    clean install would lack it."""
    assert (ROOT / package / "__init__.py").is_file()


def test_every_table_has_an_owner():
    created = set()
    for path in (ROOT / "clipgate" / "migrations" / "versions").glob("*.py"):
        created |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", path.read_text()))
    assert created, "no CREATE TABLE found in the migrations"
    assert sorted(created - set(OWNERS)) == [], "give each new table an owner in OWNERS"


@pytest.mark.parametrize("package", PACKAGES)
def test_sql_names_only_the_tables_of_its_own_domain(package):
    """A domain reads another's tables through its public functions (index.works_by_id,
    compliance.releases_matching, complaints.account, ...), never in SQL. The kernel's own
    tables (api_keys) may be read by the domains above it."""
    allowed = {package} if package in ("clipgate", "bench") else {package, "clipgate"}
    wrong = []
    for path in _modules(package):
        for line, text in _strings(ast.parse(path.read_text())):
            for table in _TABLE_REF.findall(text):
                owner = OWNERS.get(table)
                if owner is not None and owner not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} names {table} ({owner}'s)")
    assert wrong == []


def _public(package: str) -> set[str]:
    return set(getattr(importlib.import_module(package), "__all__", ()))


@pytest.mark.parametrize("package", [*DOMAINS, "bench", "clipgate"])
def test_other_domains_are_used_through_their_public_names(package):
    """Outside the assembly modules, a module imports another domain as `import index` or
    `from index import <a name in index.__all__>`, never one of its modules."""
    wrong = []
    for path in _modules(package):
        module = _name(path)
        if module in ASSEMBLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [(node.module, a.name) for a in node.names]
            else:
                continue
            for target, name in targets:
                top = target.split(".")[0]
                if top not in (*DOMAINS, "bench") or top == package:
                    continue
                if target != top or (name is not None and name not in _public(top)):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports "
                                 f"{target}{'.' + name if name else ''}")
    assert wrong == []


def test_import_contracts_hold():
    """The import-linter contracts of pyproject.toml: the kernel's core imports no domain; index
    imports no other domain; compliance only index; complaints and generator only those two;
    the bench sits on top; no cycles between the modules of the kernel, index, compliance,
    complaints or generator. Only the assembly modules are exempt."""
    import logging

    from importlinter.cli import lint_imports

    # lint_imports configures logging with dictConfig, which disables every logger that exists
    # (disable_existing_loggers defaults to true): later tests in this process would log nothing.
    loggers = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0
    finally:
        for lg in loggers:
            lg.disabled = False


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_tests_use_only_public_names():
    """A test goes through the code's public names: `from m import _x`, `obj._x` and
    monkeypatch.setattr(obj, "_x", ...) tie a test to how the code is written, not what it does."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] in PACKAGES:
                names = [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                names = [f"{ast.unparse(node.value)}.{node.attr}"]
            elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("setattr") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str) and _private(node.args[1].value):
                names = [f"{ast.unparse(node.args[0])}.{node.args[1].value}"]
            else:
                continue
            wrong += [f"{rel}: {n}" for n in names]
    assert wrong == []
