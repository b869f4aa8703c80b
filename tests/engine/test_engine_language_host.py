"""The Python language host: its command line, its answers, and a real gRPC round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from migrate.adapters.engine import PULUMI_VERSION
from migrate.adapters.engine.build import install_executable, language_host_launcher
from migrate.adapters.engine.language_host import exec_arguments, run_response_for_exit
from tests.engine.killed_engine import outlived, plugin_of_a_killed_engine

# A stand-in for pulumi-language-python-exec: records what it was given, exits as told.
RECORDING_EXEC = """\
import json, os, sys
record = {"argv": sys.argv[1:], "cwd": os.getcwd(),
          "config": os.environ.get("PULUMI_CONFIG"),
          "secret_keys": os.environ.get("PULUMI_CONFIG_SECRET_KEYS")}
with open(os.environ["RECORD_TO"], "w") as out:
    json.dump(record, out)
print("program says hello")
sys.exit(int(open("exit_code").read()) if os.path.exists("exit_code") else 0)
"""


def run_request(program_dir: Path, **overrides) -> language_pb2.RunRequest:
    fields = {
        "project": "selftest",
        "stack": "dev",
        "pwd": str(program_dir),
        "monitor_address": "127.0.0.1:5001",
        "parallel": 4,
        "organization": "organization",
        "config": {"selftest:text": "hi"},
        "configSecretKeys": ["selftest:token"],
        "info": language_pb2.ProgramInfo(
            root_directory=str(program_dir),
            program_directory=str(program_dir),
            entry_point=".",
        ),
    }
    fields.update(overrides)
    return language_pb2.RunRequest(**fields)


def test_exec_arguments_follow_the_exec_scripts_flags(tmp_path: Path) -> None:
    args = exec_arguments(run_request(tmp_path, dryRun=True), "127.0.0.1:5002")
    assert args == [
        "--monitor", "127.0.0.1:5001", "--engine", "127.0.0.1:5002",
        "--project", "selftest", "--root_directory", str(tmp_path), "--stack", "dev",
        "--pwd", str(tmp_path), "--dry_run", "true", "--parallel", "4",
        "--organization", "organization", ".",
    ]  # fmt: skip


def test_exec_arguments_leave_out_empty_values(tmp_path: Path) -> None:
    request = language_pb2.RunRequest(program="main.py", args=["extra"])
    assert exec_arguments(request, "") == ["--dry_run", "false", "--parallel", "0", "main.py",
                                           "extra"]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "error", "bail"),
    [(0, "", False), (32, "", True), (1, "program exited with non-zero exit code: 1", False),
     (-9, "program was stopped by signal 9", False)],
)  # fmt: skip
def test_exit_codes_map_to_error_and_bail(code: int, error: str, bail: bool) -> None:
    response = run_response_for_exit(code)
    assert (response.error, response.bail) == (error, bail)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    """The host started as the engine starts it: the launcher, which prints the port."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_executable(language_host_launcher(), bin_dir / "pulumi-language-python")
    install_executable(RECORDING_EXEC, bin_dir / "pulumi-language-python-exec")
    env = {"PATH": "/usr/bin:/bin", "PULUMI_PYTHON_CMD": sys.executable,
           "RECORD_TO": str(tmp_path / "record.json")}  # fmt: skip
    process = subprocess.Popen(
        [str(bin_dir / "pulumi-language-python"), "127.0.0.1:5002"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        port = int(process.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield language_pb2_grpc.LanguageRuntimeStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_host_reports_the_pinned_version(host) -> None:
    info = host.GetPluginInfo(empty_pb2.Empty())
    assert isinstance(info, plugin_pb2.PluginInfo)
    assert info.version == PULUMI_VERSION
    assert list(host.GetRequiredPlugins(language_pb2.GetRequiredPluginsRequest()).plugins) == []


def test_host_runs_the_exec_script_with_config_in_the_environment(host, tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.mkdir()
    response = host.Run(run_request(program), timeout=30)
    assert (response.error, response.bail) == ("", False)
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["cwd"] == str(program)
    assert record["argv"][:4] == ["--monitor", "127.0.0.1:5001", "--engine", "127.0.0.1:5002"]
    assert record["argv"][-1] == "."
    assert json.loads(record["config"]) == {"selftest:text": "hi"}
    assert json.loads(record["secret_keys"]) == ["selftest:token"]


@pytest.mark.parametrize(
    ("exit_code", "error", "bail"),
    [("32", "", True), ("3", "program exited with non-zero exit code: 3", False)],
)
def test_host_reports_a_failed_program(
    host, tmp_path: Path, exit_code: str, error: str, bail: bool
) -> None:
    program = tmp_path / "program"
    program.mkdir()
    (program / "exit_code").write_text(exit_code)
    response = host.Run(run_request(program), timeout=30)
    assert (response.error, response.bail) == (error, bail)



def test_host_ends_when_the_engine_that_started_it_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed engine leaves no language host behind (it would serve for ever)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_executable(language_host_launcher(), bin_dir / "pulumi-language-python")
    install_executable(RECORDING_EXEC, bin_dir / "pulumi-language-python-exec")
    env = {"PATH": "/usr/bin:/bin", "PULUMI_PYTHON_CMD": sys.executable}
    with plugin_of_a_killed_engine(bin_dir / "pulumi-language-python", env) as (pid, port):
        assert port > 0 and Path(f"/proc/{pid}").exists()
    if outlived(pid, 15):
        pytest.fail("the language host outlived the engine that started it")
