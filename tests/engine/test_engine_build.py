"""Build helpers that run without compiling anything: environment, log, launcher, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migrate.adapters.engine import build, find_engine
from migrate.core.errors import EnvironmentNotReady


def test_build_environment_is_static_with_two_jobs() -> None:
    env = build.build_environment({"GOFLAGS": "-mod=mod"})
    assert env["CGO_ENABLED"] == "0"
    assert env["GOFLAGS"].split() == ["-mod=mod", "-p=2", "-buildvcs=false"]


def test_build_environment_keeps_a_chosen_parallelism() -> None:
    env = build.build_environment({"GOFLAGS": "-p=1 -buildvcs=true"})
    assert env["GOFLAGS"].split() == ["-p=1", "-buildvcs=true"]


def test_failed_step_raises_with_the_log_tail(tmp_path: Path) -> None:
    log = build._BuildLog(tmp_path / "build.log", progress=lambda _line: None)
    script = "for i in $(seq 1 40); do echo line-$i >&2; done; exit 3"
    with pytest.raises(EnvironmentNotReady) as caught:
        log.run(["sh", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    message = caught.value.message
    assert "exited 3" in message
    assert "line-40" in message and "line-16" in message
    assert "line-15\n" not in message  # only the last 25 lines of the log
    assert str(tmp_path / "build.log") in (caught.value.hint or "")


def test_successful_step_returns_stdout_and_logs_the_command(tmp_path: Path) -> None:
    lines: list[str] = []
    log = build._BuildLog(tmp_path / "build.log", progress=lines.append)
    log.note("step one")
    out = log.run(["echo", "hello"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert out == "hello\n"
    text = (tmp_path / "build.log").read_text()
    assert "step one\n$ echo hello\nhello\n" in text
    assert len(lines) == 1 and lines[0].endswith("] step one")


def test_build_without_go_says_what_to_install(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "find_go", lambda: None)
    with pytest.raises(EnvironmentNotReady, match="Go is not installed") as caught:
        build.build_engine(progress=lambda _line: None)
    assert "install Go" in (caught.value.hint or "")


def test_launcher_runs_the_host_module_with_the_exec_script_beside_it(tmp_path: Path) -> None:
    launcher = tmp_path / "pulumi-language-python"
    build.install_executable(build.language_host_launcher(), launcher)
    # Replace the interpreter by `echo` to see the exact command line the launcher builds.
    out = subprocess.run(
        [str(launcher), "127.0.0.1:1234"],
        env={"PATH": "/usr/bin:/bin", "PULUMI_PYTHON_CMD": "echo"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.split() == [
        "-m", "migrate.adapters.engine.language_host",
        "--exec", str(tmp_path / "pulumi-language-python-exec"), "127.0.0.1:1234",
    ]  # fmt: skip
    assert launcher.stat().st_mode & 0o777 == 0o755


def test_a_binary_without_the_version_stamp_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"
    build.install_executable("#!/bin/sh\necho v3.0.0-dev\n", fake)
    log = build._BuildLog(tmp_path / "build.log", progress=lambda _line: None)
    with pytest.raises(EnvironmentNotReady, match=r"reports version '3\.0\.0-dev'"):
        build.check_stamped_version(fake, "3.260.0", log)
    build.install_executable("#!/bin/sh\necho v3.260.0\n", fake)
    build.check_stamped_version(fake, "3.260.0", log)


def test_the_launcher_needs_the_python_migrate_gives_it(tmp_path: Path) -> None:
    launcher = tmp_path / "pulumi-language-python"
    build.install_executable(build.language_host_launcher(), launcher)
    done = subprocess.run([str(launcher)], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "PULUMI_PYTHON_CMD" in done.stderr
    assert str(tmp_path) not in launcher.read_text()  # no venv in the shared cache


def test_a_cached_engine_gets_the_launcher_of_this_migrate(isolated_cache: Path) -> None:
    """An engine built by an earlier migrate (its host module elsewhere) is found with the
    launcher rewritten; a current one is left as it is."""
    bin_dir = build.engine_bin_dir()
    bin_dir.mkdir(parents=True)
    for name in build.ENGINE_FILES:
        build.install_executable("#!/bin/sh\n", bin_dir / name)
    old = build.language_host_launcher().replace("migrate.adapters.engine.", "migrate.engine.")
    build.install_executable(old, build.launcher_path())
    build.write_marker(build.PULUMI_VERSION, 1.0)
    assert find_engine() == bin_dir / "pulumi"
    assert build.launcher_path().read_text() == build.language_host_launcher()
    assert build.launcher_path().stat().st_mode & 0o777 == 0o755
    assert build.refresh_launcher() is False
    assert sorted(p.name for p in bin_dir.iterdir() if "partial" in p.name) == []
