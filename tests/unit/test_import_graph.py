"""The dependency rules of ``migrate``'s layout over its import graph (issue 18), with no
exception list: no import cycle, each layer imports only the layers below it, and no stage
imports another.

The layers, from the bottom (``LAYERS``):

- ``core``: the model, the data files, validation, census, plan, journal, state. It imports
  nothing of ``migrate`` but ``core``.
- ``targets``: the per-cloud knowledge the others ask, i.e. the contract of the stacks'
  outputs, the ``Target`` and ``Surroundings`` interfaces with what they hand back
  (``ProvisionSettings``), their look-up by entry point, and the built-in OpenStack target,
  which talks to the cloud's HTTP API itself. It sits *below* the adapters because the
  adapters that reach hosts ask it: ``adapters.access`` takes the known_hosts file and the
  address guard from the estate's surroundings, ``adapters.inventory`` the operator key from
  its target. A target that drives a tool (the sandbox's, with the engine and this host's
  processes) is the rehearsal's and plugs in by entry point, outside the layers; what a
  target needs of the engine's secrets (the passphrase file) is in ``core.credentials``.
- ``adapters``: the tools (ansible-runner and its inventories, SSH, the pinned Pulumi
  engine, the exchange platform's client, rendering, this host's processes).
- ``stages``: each top-level module or package of ``migrate.stages`` is one stage; a stage
  imports no other stage (what two stages share is in a layer below, or the orchestration
  hands it over: the evidence bundle gets the runbook and report renderers, verification
  gets the reader of a system's provisioned instances). The package ``move`` is one stage
  too: the moving stages (``MOVING_STAGES``), which ``pipeline.move`` runs as a group, one
  module each over what they share (a session, its secret files, the comparisons) in the
  package's other modules; one moving stage's module imports no other's.
- ``orchestrate``: strings the stages together (pipeline, run, status, evidence export, the
  committed examples).
- ``cli``: the commands and the one error boundary.

Outside the layers: ``migrate/__init__.py`` (the version; anything may import it, since
every import of ``migrate.x`` runs it anyway) and ``migrate/__main__.py`` (imports the CLI);
``migrate.rehearsal`` may import anything, and that nothing imports it is
``tests/unit/test_layering.py``'s rule (kept there, in one place).

The graph is read as ``tests/unit/test_layering.py`` reads imports (``imported_names``): every
import statement, at module level or inside a function (a function-level import hides the
coupling; it does not remove it). An import names the most specific module of the package it
reaches: ``from migrate.adapters.engine import gomod`` and ``import
migrate.adapters.engine.gomod`` are both an edge to ``migrate.adapters.engine.gomod``, and
``from migrate.adapters.engine import engine_env`` (a name, not a module) an edge to
``migrate.adapters.engine``. A package's ``__init__`` running before its submodules is
Python's import machinery, not an edge: counted, every package whose ``__init__`` imports
its own submodules would be a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.unit import test_layering as layering

Graph = Mapping[str, set[str]]

ROOT = "migrate"
LAYERS = ("core", "targets", "adapters", "stages", "orchestrate", "cli")  # bottom to top
STAGES = "migrate.stages"
MOVE = f"{STAGES}.move"
# migrate.orchestrate.pipeline.MOVE_STAGES, each a module of MOVE named after it.
MOVING_STAGES = ("check_prerequisites", "transfer", "cutover", "rollback",
                 "decommission_source")
# Modules in no layer: the package's own __init__ and __main__, and the rehearsal.
OUTSIDE = (ROOT, f"{ROOT}.__main__")


# ---------------------------------------------------------------- the graph


def package_modules() -> dict[str, Path]:
    """Every module of the package (the rehearsal's too: a cycle is one wherever it is)."""
    paths = sorted(p for p in layering.PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    return {layering.module_name(path): path for path in paths}


def imported_modules(node: ast.AST, module: str, is_package: bool,
                     known: Iterable[str]) -> set[str]:
    """The package's modules one import statement reaches, each by its most specific name."""
    known = set(known)
    names = layering.imported_names(node, module, is_package)
    if isinstance(node, ast.ImportFrom):
        origin, members = names[0], names[1:]
        return {member if member in known else origin for member in members} & known
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the package it imports, anywhere in its file."""
    modules = package_modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            edges |= imported_modules(node, module, path.name == "__init__.py", modules)
        graph[module] = edges - {module}
    return graph


def cycles(graph: Graph) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.add(frozenset(component))
    return found


def cycle_text(component: frozenset[str], graph: Graph) -> str:
    edges = [f"{a} -> {b}" for a in sorted(component) for b in sorted(graph[a] & component)]
    return f"{{{', '.join(sorted(component))}}}: " + "; ".join(edges)


def within(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


def layer_of(module: str) -> str | None:
    """The layer a module belongs to (``core`` ... ``cli``); None outside the layers."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def stage_of(module: str) -> str | None:
    """The stage a module makes: the top-level module or package of ``migrate.stages`` it is
    in (``migrate.stages.verify.suites.test_host`` makes ``verify``, every module of ``move``
    makes ``move``); None for others."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and within(module, STAGES) else None


def moving_stage_of(module: str) -> str | None:
    """The moving stage a module of ``move`` is (``migrate.stages.move.cutover`` is
    ``cutover``); None for its shared modules and for others."""
    name = module.removeprefix(MOVE + ".")
    return name if within(module, MOVE) and name in MOVING_STAGES else None


def layer_violations(graph: Graph) -> list[str]:
    """``importer -> imported: why`` for each import the layers forbid."""
    found = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        below = layer_of(importer)
        if below is None or imported == ROOT or layering.is_rehearsal(imported):
            continue  # outside the layers; the rehearsal is test_layering.py's rule
        above = layer_of(imported)
        if above is None:
            found.append(f"{importer} -> {imported}: {imported} is outside the layers")
        elif LAYERS.index(above) > LAYERS.index(below):
            found.append(f"{importer} -> {imported}: {below} may not import {above}, a layer "
                         "above it")
        elif stage_of(importer) and stage_of(imported) \
                and stage_of(importer) != stage_of(imported):
            found.append(f"{importer} -> {imported}: the stage {stage_of(importer)} may not "
                         f"import the stage {stage_of(imported)}")
        elif moving_stage_of(importer) and moving_stage_of(imported):
            found.append(f"{importer} -> {imported}: the moving stage "
                         f"{moving_stage_of(importer)} may not import the moving stage "
                         f"{moving_stage_of(imported)}")
    return found


def unplaced(modules: Iterable[str]) -> list[str]:
    """Modules in no layer that are not one of the known outsiders (a new top-level module
    or package of ``migrate`` has to be given a layer here first)."""
    return sorted(m for m in modules if layer_of(m) is None and m not in OUTSIDE
                  and not layering.is_rehearsal(m))


# ---------------------------------------------------------------- the rules


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph()
    assert len(found) > 100, "the walk found too few modules to mean anything"
    return found


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    found = sorted(cycles(graph), key=sorted)
    assert not found, ("import cycles (move what both sides need down, or have the "
                       "orchestration pass it in):\n"
                       + "\n".join(cycle_text(c, graph) for c in found))


def test_each_layer_imports_only_the_layers_below_and_no_stage_another(
        graph: dict[str, set[str]]) -> None:
    found = layer_violations(graph)
    assert not found, (f"imports against the layers (bottom to top: {', '.join(LAYERS)}; "
                       "see this file's docstring):\n" + "\n".join(found))


def test_every_module_is_in_a_layer_or_known_to_be_outside() -> None:
    modules = package_modules()
    assert not unplaced(modules), f"in no layer: {unplaced(modules)}"
    assert {layer_of(m) for m in modules} >= set(LAYERS), "a layer has no module"
    stages = {stage_of(m) for m in modules} - {None}
    assert {"provision", "move", "verify", "report", "runbook", "evidence"} <= stages
    moving = {moving_stage_of(m) for m in modules} - {None}
    assert moving == set(MOVING_STAGES), "a moving stage has no module of its own in move"


# ---------------------------------------------------------------- the detector itself


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``migrate`` package in tmp_path that the walk reads instead of the real one."""
    monkeypatch.setattr(layering, "PACKAGE", tmp_path / "migrate")
    write_tree(tmp_path / "migrate", {"__init__.py": ""})
    return tmp_path / "migrate"


def test_a_cycle_made_in_a_copy_fails_the_rule(tree: Path) -> None:
    write_tree(tree, {
        "orchestrate/pipeline.py": "from migrate.stages import report\n",
        "stages/report.py":
            "def build():\n    from migrate.orchestrate.pipeline import make_plan\n",
        "core/plan.py": "from migrate.core.census import take_census\n",
        "core/census.py": "import json\n",
    })
    graph = import_graph()
    assert graph["migrate.stages.report"] == {"migrate.orchestrate.pipeline"}
    pair = frozenset({"migrate.orchestrate.pipeline", "migrate.stages.report"})
    assert cycles(graph) == {pair}
    assert "migrate.stages.report -> migrate.orchestrate.pipeline" in cycle_text(pair, graph)
    assert layer_violations(graph) == [
        "migrate.stages.report -> migrate.orchestrate.pipeline: stages may not import "
        "orchestrate, a layer above it"]


def test_the_rules_fail_on_a_copy_of_migrate_with_one_import_added(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = layering.PACKAGE
    copy = tmp_path / "migrate"
    for path in package_modules().values():
        write_tree(copy, {str(path.relative_to(real)): path.read_text(encoding="utf-8")})
    monkeypatch.setattr(layering, "PACKAGE", copy)
    assert not cycles(import_graph()) and not layer_violations(import_graph())
    # function level, as the hidden ones are
    with (copy / "core" / "census.py").open("a") as census:
        census.write("\n\ndef _later():\n    from migrate.orchestrate import pipeline\n"
                     "    return pipeline\n")
    graph = import_graph()
    (new,) = cycles(graph)
    assert {"migrate.core.census", "migrate.orchestrate.pipeline"} <= new
    assert "migrate.core.census -> migrate.orchestrate.pipeline" in cycle_text(new, graph)
    assert layer_violations(graph) == [
        "migrate.core.census -> migrate.orchestrate.pipeline: core may not import "
        "orchestrate, a layer above it"]
    (copy / "core" / "census.py").write_text((real / "core" / "census.py").read_text())
    with (copy / "stages" / "register.py").open("a") as register:
        register.write("\nfrom migrate.stages.move.session import StageResult\n")
    assert layer_violations(import_graph()) == [
        "migrate.stages.register -> migrate.stages.move.session: the stage register may not "
        "import the stage move"]
    (copy / "stages" / "register.py").write_text((real / "stages" / "register.py").read_text())
    with (copy / "stages" / "move" / "rollback.py").open("a") as rollback:
        rollback.write("\nfrom migrate.stages.move.cutover import FREEZE_TASK\n")
    assert layer_violations(import_graph()) == [
        "migrate.stages.move.rollback -> migrate.stages.move.cutover: the moving stage "
        "rollback may not import the moving stage cutover"]


@pytest.mark.parametrize(("files", "cycle"), [
    ({"a.py": "import migrate.b\n", "b.py": "import migrate.a\n"}, {"a", "b"}),
    ({"a.py": "from . import b\n", "b.py": "from .a import thing\n"}, {"a", "b"}),
    ({"a.py": "from migrate.b import x\n", "b.py": "from migrate.c import y\n",
      "c.py": "def f():\n    import migrate.a\n"}, {"a", "b", "c"}),
    # a submodule using a name its package's __init__ defines, while __init__ imports it
    ({"pkg/__init__.py": "from migrate.pkg.sub import f\nNAME = 1\n",
      "pkg/sub.py": "from migrate.pkg import NAME\n"}, {"pkg", "pkg.sub"}),
])
def test_each_form_of_cycle_is_seen(tree: Path, files: dict[str, str], cycle: set[str]
                                    ) -> None:
    write_tree(tree, files)
    assert cycles(import_graph()) == {frozenset(f"migrate.{m}" for m in cycle)}


def test_a_package_importing_its_own_submodules_is_no_cycle(tree: Path) -> None:
    write_tree(tree, {
        "adapters/engine/__init__.py": "from migrate.adapters.engine.build import build\n",
        "adapters/engine/build.py": "from migrate.adapters.engine import gomod\n",
        "adapters/engine/gomod.py": "import os\n"})
    graph = import_graph()
    assert graph["migrate.adapters.engine.build"] == {"migrate.adapters.engine.gomod"}
    assert cycles(graph) == set()


def test_what_each_layer_may_import() -> None:
    graph = {
        "migrate.core.plan": {"migrate.core.census", "migrate"},
        "migrate.targets.openstack": {"migrate.core.credentials"},
        "migrate.adapters.access": {"migrate.targets", "migrate.core.loader"},
        "migrate.stages.verify.run": {"migrate.stages.verify.context", "migrate.stages",
                                      "migrate.adapters.inventory", "migrate.targets"},
        "migrate.orchestrate.status": {"migrate.orchestrate.pipeline", "migrate.stages.report"},
        "migrate.cli.main": {"migrate.orchestrate.run", "migrate.cli.tables"},
        "migrate.__main__": {"migrate.cli.main"},
        "migrate.rehearsal.sandbox.target": {"migrate.stages.provision", "migrate.cli.main"},
        "migrate.stages.move.cutover": {"migrate.stages.move.session",
                                        "migrate.stages.move.comparison"},
        "migrate.stages.move": {"migrate.stages.move.cutover", "migrate.stages.move.rollback"},
    }
    assert layer_violations(graph) == []
    wrong = {
        "migrate.core.credentials": {"migrate.adapters.processes"},
        "migrate.targets.base": {"migrate.stages.provision"},
        "migrate.targets.openstack": {"migrate.adapters.engine"},
        "migrate.stages.report": {"migrate.stages.runbook", "migrate.orchestrate.status"},
        "migrate.stages.verify.run": {"migrate.stages.register"},
        "migrate.adapters.render": {"migrate.__main__"},
        "migrate.stages.move.session": {"migrate.stages.verify.run"},
        "migrate.stages.move.transfer": {"migrate.stages.move.check_prerequisites"},
    }
    assert layer_violations(wrong) == [
        "migrate.adapters.render -> migrate.__main__: migrate.__main__ is outside the layers",
        "migrate.core.credentials -> migrate.adapters.processes: core may not import "
        "adapters, a layer above it",
        "migrate.stages.move.session -> migrate.stages.verify.run: the stage move may not "
        "import the stage verify",
        "migrate.stages.move.transfer -> migrate.stages.move.check_prerequisites: the moving "
        "stage transfer may not import the moving stage check_prerequisites",
        "migrate.stages.report -> migrate.orchestrate.status: stages may not import "
        "orchestrate, a layer above it",
        "migrate.stages.report -> migrate.stages.runbook: the stage report may not import "
        "the stage runbook",
        "migrate.stages.verify.run -> migrate.stages.register: the stage verify may not "
        "import the stage register",
        "migrate.targets.base -> migrate.stages.provision: targets may not import stages, "
        "a layer above it",
        "migrate.targets.openstack -> migrate.adapters.engine: targets may not import "
        "adapters, a layer above it",
    ]


def test_stages_and_layers_are_named_by_their_folders() -> None:
    assert stage_of("migrate.stages.verify.suites.test_host") == "verify"
    assert stage_of("migrate.stages.report") == "report"
    assert stage_of("migrate.stages.move.cutover") == stage_of("migrate.stages.move") == "move"
    assert moving_stage_of("migrate.stages.move.cutover") == "cutover"
    assert moving_stage_of("migrate.stages.move.session") is None
    assert moving_stage_of("migrate.stages.move") is None
    assert moving_stage_of("migrate.stages.transfer") is None
    assert stage_of("migrate.stages") is None and stage_of("migrate.core.plan") is None
    assert layer_of("migrate.stages") == "stages" and layer_of("migrate") is None
    assert layer_of("migrate.rehearsal.sandbox") is None
    assert unplaced(["migrate", "migrate.__main__", "migrate.rehearsal.testcloud",
                     "migrate.core", "migrate.plugins.extra"]) == ["migrate.plugins.extra"]
