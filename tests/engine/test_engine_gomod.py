"""The wrapper go.mod: which upstream replace directives it repeats, and its text."""

from __future__ import annotations

import pytest

from migrate.adapters.engine import gomod
from migrate.adapters.engine.build import write_wrapper_module

# Written for these tests in the shapes Go accepts: single-line, block, versioned old path,
# comments, and the local-path targets that only work inside the upstream repository.
SAMPLE_GOMOD = """\
module example.org/upstream/pkg/v3

go 1.26.6 // language version

replace example.org/upstream/sdk/v3 => ../sdk

replace github.com/atotto/clipboard => github.com/tg/clipboard v0.0.0-20241001131231-d02d263e614e

replace (
\t// pinned fork
\tgithub.com/old/lib v1.2.3 => github.com/fork/lib v1.2.4
\texample.org/upstream/tools => ./tools
\tgithub.com/abs/path => /opt/src/path // absolute
)

require (
\tgithub.com/spf13/cobra v1.10.2
)
"""


def test_parse_replaces_reads_single_line_and_block_forms() -> None:
    replaces = gomod.parse_replaces(SAMPLE_GOMOD)
    assert [r.old_path for r in replaces] == [
        "example.org/upstream/sdk/v3",
        "github.com/atotto/clipboard",
        "github.com/old/lib",
        "example.org/upstream/tools",
        "github.com/abs/path",
    ]
    fork = replaces[2]
    assert (fork.old_version, fork.new_path, fork.new_version) == (
        "v1.2.3",
        "github.com/fork/lib",
        "v1.2.4",
    )


def test_module_replaces_keeps_module_targets_and_drops_local_paths() -> None:
    kept = gomod.module_replaces(SAMPLE_GOMOD)
    assert [r.render() for r in kept] == [
        "github.com/atotto/clipboard => github.com/tg/clipboard v0.0.0-20241001131231-d02d263e614e",
        "github.com/old/lib v1.2.3 => github.com/fork/lib v1.2.4",
    ]


@pytest.mark.parametrize(
    ("target", "local"),
    [("../sdk", True), ("./tools", True), ("/opt/x", True), ("..", True),
     ("github.com/a/b", False), ("example.org/x/v2", False)],
)  # fmt: skip
def test_local_path_detection(target: str, local: bool) -> None:
    assert gomod.Replace("m", None, target, None).is_local_path is local


def test_malformed_replace_is_reported() -> None:
    with pytest.raises(ValueError, match="without '=>'"):
        gomod.parse_replaces("replace github.com/a/b github.com/c/d v1.0.0\n")


def test_go_directive_ignores_comment() -> None:
    assert gomod.go_directive(SAMPLE_GOMOD) == "1.26.6"
    assert gomod.go_directive("module x\n") is None


def test_wrapper_gomod_requires_pinned_modules_and_repeats_module_replaces(tmp_path) -> None:
    path = write_wrapper_module(tmp_path / "build", SAMPLE_GOMOD, "3.260.0")
    text = path.read_text()
    assert text.startswith("module migrate.local/pulumi-engine\n\ngo 1.26.6\n")
    assert "\tgithub.com/pulumi/pulumi/pkg/v3 v3.260.0\n" in text
    assert "\tgithub.com/pulumi/pulumi/sdk/v3 v3.260.0\n" in text
    assert "github.com/old/lib v1.2.3 => github.com/fork/lib v1.2.4" in text
    assert "../sdk" not in text and "./tools" not in text and "/opt/src" not in text
    # The text is itself valid input for the parser: what it repeats round-trips.
    assert gomod.module_replaces(text) == gomod.module_replaces(SAMPLE_GOMOD)


def test_wrapper_replaces_stale_go_sum(tmp_path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "go.sum").write_text("stale\n")
    write_wrapper_module(build, SAMPLE_GOMOD, "3.260.0")
    assert not (build / "go.sum").exists()
