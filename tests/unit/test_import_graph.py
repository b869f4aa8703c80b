"""The import graph of ``migrate`` as rules that hold from now on (issue 18): no import cycle
and no stage module importing another, except what the two lists below name as it is today.

Both lists are a ratchet. A new cycle, a cycle that grows, or a new edge between two stages
fails ``test_no_import_cycle_beyond_the_listed_ones`` or ``test_no_stage_imports_another``;
removing one is accepted by those two, and ``test_every_listed_*`` then fails, naming the
entry to delete (or narrow), so the lists only ever get shorter.

The graph is read as ``tests/unit/test_layering.py`` reads imports (``imported_names``): every
import statement, at module level or inside a function. An import names the most specific
module of the package it reaches: ``from migrate.adapters.engine import gomod`` and
``import migrate.adapters.engine.gomod`` are both an edge to ``migrate.adapters.engine.gomod``,
and ``from migrate.adapters.engine import engine_env`` (a name, not a module) an edge to
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

# Import cycles (strongly connected components) that exist today, with why and the issue
# that is to remove them. A cycle found must be one of these or part of one.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset({"migrate.orchestrate.pipeline", "migrate.stages.report",
               "migrate.orchestrate.status", "migrate.stages.verify.run"}):
        "#18: pipeline calls report, status and verify.run; they call back into it "
        "(report.build_example, status.estate_status: make_plan; verify.run: system_instances)",
}

# The stages as ``migrate.orchestrate.pipeline`` strings them together (and
# ``migrate.stages.evidence`` for ``evidence export``), each by the modules that make it. The
# journal, the state folder, the loader and model, the targets and the adapters (ansible,
# inventory, access, engine, render) are shared by the stages, not stages.
STAGES: dict[str, tuple[str, ...]] = {
    "validate": ("migrate.core.validate",),
    "census": ("migrate.core.census", "migrate.core.census_report"),
    "plan": ("migrate.core.plan", "migrate.core.plan_document"),
    "provision": ("migrate.stages.provision",),
    "transfer": ("migrate.stages.transfer",),  # check_prerequisites, transfer, cutover, rollback...
    "register": ("migrate.stages.register",),
    "verify": ("migrate.stages.verify",),
    "runbook": ("migrate.stages.runbook",),
    "report": ("migrate.stages.report",),
    "evidence": ("migrate.stages.evidence",),
}

# Stage-to-stage imports that exist today (importer, imported), with why.
ALLOWED_STAGE_EDGES: dict[tuple[str, str], str] = {
    ("migrate.core.plan", "migrate.core.census"):
        "#18: build_plan takes the CensusResult (its type) from the census",
    ("migrate.core.plan", "migrate.core.validate"):
        "#18: the plan's waves reuse validate.dependency_cycles",
    ("migrate.stages.runbook", "migrate.core.plan"):
        "#18: plan_digest hashes plan.render_plan's text",
    ("migrate.stages.report", "migrate.core.census"):
        "#18: build_report takes the census again (take_census) instead of being given it",
    ("migrate.stages.report", "migrate.core.census_report"):
        "#18: the report holds the census lists (census_tables, Table)",
    ("migrate.stages.report", "migrate.core.plan"):
        "#18: report.build_example plans the example estate (build_plan)",
    ("migrate.stages.report", "migrate.stages.runbook"):
        "#18: entries_until, plan_digest, verification_summary; write_examples' runbooks",
    ("migrate.stages.verify.run", "migrate.stages.register"):
        "#18: the verification context names the registered endpoint (register.endpoint_of)",
    ("migrate.stages.evidence", "migrate.stages.report"):
        "#18: export_bundle renders the report into the bundle itself",
    ("migrate.stages.evidence", "migrate.stages.runbook"):
        "#18: export_bundle renders the runbooks into the bundle itself",
}


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


def unlisted_cycles(found: set[frozenset[str]], allowed: Iterable[frozenset[str]]
                    ) -> list[frozenset[str]]:
    """Cycles that are not a listed one or what is left of one."""
    allowed = list(allowed)
    return sorted((c for c in found if not any(c <= a for a in allowed)), key=sorted)


def stale_cycles(found: set[frozenset[str]], allowed: Iterable[frozenset[str]]) -> list[str]:
    """What to do with each listed cycle that is no longer there as listed."""
    stale = []
    for listed in sorted(allowed, key=sorted):
        if listed in found:
            continue
        left = [c for c in found if c < listed]
        names = ", ".join(sorted(listed))
        if left:
            stale.append(f"{{{names}}} shrank to "
                         + " and ".join(f"{{{', '.join(sorted(c))}}}" for c in left)
                         + ": narrow its entry")
        else:
            stale.append(f"{{{names}}} is gone: remove its entry")
    return stale


def stage_of(module: str, stages: Mapping[str, tuple[str, ...]] = STAGES) -> str | None:
    for stage, roots in stages.items():
        if any(module == root or module.startswith(root + ".") for root in roots):
            return stage
    return None


def stage_edges(graph: Graph, stages: Mapping[str, tuple[str, ...]] = STAGES
                ) -> set[tuple[str, str]]:
    """(importer, imported) where both are stage modules of different stages."""
    return {(a, b) for a, targets in graph.items() for b in targets
            if stage_of(a, stages) and stage_of(b, stages)
            and stage_of(a, stages) != stage_of(b, stages)}


# ---------------------------------------------------------------- the rules


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph()
    assert len(found) > 100, "the walk found too few modules to mean anything"
    return found


def test_no_import_cycle_beyond_the_listed_ones(graph: dict[str, set[str]]) -> None:
    new = unlisted_cycles(cycles(graph), ALLOWED_CYCLES)
    assert not new, ("import cycles not in ALLOWED_CYCLES (break them; issue 18):\n"
                     + "\n".join(cycle_text(c, graph) for c in new))


def test_every_listed_cycle_is_still_there(graph: dict[str, set[str]]) -> None:
    stale = stale_cycles(cycles(graph), ALLOWED_CYCLES)
    assert not stale, "ALLOWED_CYCLES is out of date (good news):\n" + "\n".join(stale)


def test_no_stage_imports_another(graph: dict[str, set[str]]) -> None:
    new = sorted(stage_edges(graph) - ALLOWED_STAGE_EDGES.keys())
    assert not new, ("stages importing each other (go through migrate.orchestrate.pipeline, or "
                     "move what both need out of the stages):\n"
                     + "\n".join(f"{a} -> {b}" for a, b in new))


def test_every_listed_stage_edge_is_still_there(graph: dict[str, set[str]]) -> None:
    gone = sorted(ALLOWED_STAGE_EDGES.keys() - stage_edges(graph))
    assert not gone, ("ALLOWED_STAGE_EDGES is out of date (good news): remove "
                      + ", ".join(f"{a} -> {b}" for a, b in gone))


def test_the_lists_name_real_modules_and_stages() -> None:
    modules = package_modules()
    listed = {m for c in ALLOWED_CYCLES for m in c} | {m for e in ALLOWED_STAGE_EDGES for m in e}
    assert listed <= modules.keys(), f"not modules of migrate: {sorted(listed - modules.keys())}"
    assert all(stage_of(a) and stage_of(b) for a, b in ALLOWED_STAGE_EDGES)
    roots = [root for roots in STAGES.values() for root in roots]
    assert set(roots) <= modules.keys(), f"not modules: {sorted(set(roots) - modules.keys())}"
    reasons = [*ALLOWED_CYCLES.values(), *ALLOWED_STAGE_EDGES.values()]
    assert all(reason.startswith("#18: ") and "\n" not in reason for reason in reasons)


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
    found = cycles(graph)
    pair = frozenset({"migrate.orchestrate.pipeline", "migrate.stages.report"})
    assert found == {pair}
    assert unlisted_cycles(found, []) == [pair]
    assert unlisted_cycles(found, [pair]) == []
    assert "migrate.stages.report -> migrate.orchestrate.pipeline" in cycle_text(pair, graph)


def test_the_rules_fail_on_a_copy_of_migrate_with_one_import_added(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = layering.PACKAGE
    copy = tmp_path / "migrate"
    for path in package_modules().values():
        write_tree(copy, {str(path.relative_to(real)): path.read_text(encoding="utf-8")})
    monkeypatch.setattr(layering, "PACKAGE", copy)
    assert not unlisted_cycles(cycles(import_graph()), ALLOWED_CYCLES)
    assert stage_edges(import_graph()) <= ALLOWED_STAGE_EDGES.keys()
    # function level, as the hidden ones are
    with (copy / "core" / "census.py").open("a") as census:
        census.write("\n\ndef _later():\n    from migrate.orchestrate import pipeline\n"
                     "    return pipeline\n")
    graph = import_graph()
    (new,) = unlisted_cycles(cycles(graph), ALLOWED_CYCLES)
    assert {"migrate.core.census", "migrate.orchestrate.pipeline"} <= new
    assert "migrate.core.census -> migrate.orchestrate.pipeline" in cycle_text(new, graph)
    assert stage_edges(graph) <= ALLOWED_STAGE_EDGES.keys()  # pipeline is no stage
    with (copy / "stages" / "register.py").open("a") as register:
        register.write("\nfrom migrate.stages.transfer import StageResult\n")
    assert stage_edges(import_graph()) - ALLOWED_STAGE_EDGES.keys() == {
        ("migrate.stages.register", "migrate.stages.transfer")}


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


def test_a_longer_cycle_and_a_new_one_fail_a_removed_one_is_accepted_and_named() -> None:
    listed = [frozenset({"a", "b", "c"}), frozenset({"x", "y"})]
    grown = {frozenset({"a", "b", "c", "d"})}
    assert unlisted_cycles(grown, listed) == [frozenset({"a", "b", "c", "d"})]
    shrunk = {frozenset({"a", "b"})}  # c left the cycle; x and y no longer import each other
    assert unlisted_cycles(shrunk, listed) == []
    assert stale_cycles(shrunk, listed) == [
        "{a, b, c} shrank to {a, b}: narrow its entry", "{x, y} is gone: remove its entry"]
    assert stale_cycles(set(listed), listed) == []


def test_a_stage_importing_another_is_seen() -> None:
    stages = {"census": ("migrate.core.census",), "plan": ("migrate.core.plan",),
              "verify": ("migrate.stages.verify",)}
    graph = {"migrate.core.plan": {"migrate.core.census", "migrate.core.journal"},
             "migrate.stages.verify.run": {"migrate.stages.verify.context", "migrate.core.plan"},
             "migrate.orchestrate.pipeline": {"migrate.core.plan", "migrate.core.census"},
             "migrate.core.census": set()}
    assert stage_edges(graph, stages) == {("migrate.core.plan", "migrate.core.census"),
                                          ("migrate.stages.verify.run", "migrate.core.plan")}
