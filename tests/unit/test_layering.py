"""The rehearsal plugs in from outside: no module of ``migrate`` outside the rehearsal packages
imports them, at module level or inside a function (issue 18). The sandbox reaches the
stages only through its entry points (``migrate.targets``, ``migrate.surroundings``,
``migrate.commands``). This is the rehearsal's part of the layer rules; the layers themselves
are ``tests/unit/test_import_graph.py``'s, which reads imports with ``imported_names`` below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "migrate"
REHEARSAL = ("migrate.rehearsal",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_rehearsal(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in REHEARSAL)


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """What an import statement reaches: each module, and each ``from X import Y`` as X.Y
    too (``from migrate import sandbox`` imports the package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
        origin = ".".join([*base, *([node.module] if node.module else [])])
    else:
        origin = node.module or ""
    return [origin, *(f"{origin}.{alias.name}" for alias in node.names)]


def rehearsal_imports(path: Path) -> list[str]:
    """``file:line: import`` of each import of a rehearsal package, wherever it stands."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = imported_names(node, module, path.name == "__init__.py")
        if any(is_rehearsal(name) for name in names):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: "
                         f"{ast.unparse(node)}")
    return found


def stage_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if not is_rehearsal(module_name(p)) and "__pycache__" not in p.parts)


def test_no_module_outside_the_rehearsal_imports_it() -> None:
    modules = stage_modules()
    assert len(modules) > 40, "the walk found too few modules to mean anything"
    found = [line for path in modules for line in rehearsal_imports(path)]
    assert not found, "imports of the rehearsal outside it:\n" + "\n".join(found)


@pytest.mark.parametrize(("source", "line"), [
    ("from migrate.rehearsal.sandbox.estate import sandbox_up\n", 1),
    ("import json\nimport migrate.rehearsal.legacy.units\n", 2),
    ("from migrate.rehearsal import testcloud\n", 1),
    ("def f():\n    from migrate.rehearsal.sandbox import images\n    return images\n", 2),
    ("from .rehearsal.sandbox import network\n", 1),
])
def test_each_form_of_import_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     source: str, line: int) -> None:
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "migrate")
    (tmp_path / "migrate").mkdir()
    stage = tmp_path / "migrate" / "stage.py"
    stage.write_text(source)
    (found,) = rehearsal_imports(stage)
    assert found.startswith(f"migrate/stage.py:{line}: ")


def test_the_rehearsal_may_import_itself_and_the_rest(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "migrate")
    (tmp_path / "migrate" / "rehearsal" / "sandbox").mkdir(parents=True)
    inside = tmp_path / "migrate" / "rehearsal" / "sandbox" / "target.py"
    inside.write_text("from migrate.rehearsal.sandbox import estate\n"
                      "from migrate.targets import Target\n")
    assert stage_modules() == []
    neutral = tmp_path / "migrate" / "stage.py"
    neutral.write_text("from migrate.targets import target_of\nimport migrate.rehearsals\n")
    assert rehearsal_imports(neutral) == []


def test_discovery_knows_the_unit_the_rehearsal_sets_addresses_with() -> None:
    """Discovery shows a sandbox legacy host's address unit as network configuration; it
    names the unit itself (no import of the rehearsal), so the two names must agree."""
    from migrate.rehearsal.sandbox.machines import ADDRESS_UNIT
    from migrate.stages.discovery.gaps import NETWORK_CONFIGURATION, REHEARSAL_ADDRESS_UNIT

    assert REHEARSAL_ADDRESS_UNIT == ADDRESS_UNIT
    assert f"/etc/systemd/system/{ADDRESS_UNIT}" in NETWORK_CONFIGURATION
