"""The Python language host plugin (``pulumi-language-python``) of the pinned engine.

Pulumi's own Go language host lives in a module that the Go module proxy reachable here does
not serve, so the engine ships this one instead. It speaks the same ``LanguageRuntime`` gRPC
protocol (stubs from the ``pulumi`` SDK) and runs programs the same way upstream does: it
starts ``pulumi-language-python-exec`` (shipped in the ``sdk/v3`` module and installed beside
the engine) under ``PULUMI_PYTHON_CMD``, passing settings as arguments and the configuration
as ``PULUMI_CONFIG`` / ``PULUMI_CONFIG_SECRET_KEYS`` in the environment.

It is started by the engine through the ``pulumi-language-python`` launcher in the engine's
bin directory:
``python -m migrate.adapters.engine.language_host --exec EXEC_SCRIPT ENGINE_ADDRESS``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from migrate.adapters.engine.version import PULUMI_VERSION

# Exit code with which the exec script says "the error was already shown to the user".
EXIT_AFTER_USER_MESSAGE = 32
_MAX_MESSAGE_BYTES = 400 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


def exec_arguments(request: language_pb2.RunRequest, engine_address: str) -> list[str]:
    """The command line of ``pulumi-language-python-exec`` for one Run request."""
    options = [
        ("monitor", request.monitor_address),
        ("engine", engine_address),
        ("project", request.project),
        ("root_directory", request.info.root_directory),
        ("stack", request.stack),
        ("pwd", request.pwd),
        ("dry_run", "true" if request.dryRun else "false"),
        ("parallel", str(request.parallel)),
        ("organization", request.organization),
    ]
    args: list[str] = []
    for name, value in options:
        if value:
            args += [f"--{name}", value]
    args.append(request.info.entry_point or request.program or ".")
    args.extend(request.args)
    return args


def program_environment(request: language_pb2.RunRequest, base: dict[str, str]) -> dict[str, str]:
    """The program's environment: the host's plus its configuration, which may hold secrets."""
    env = dict(base)
    env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
    env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
    return env


def program_directory(request: language_pb2.RunRequest) -> str:
    return request.info.program_directory or request.pwd or os.getcwd()


def python_command() -> str:
    return os.environ.get("PULUMI_PYTHON_CMD") or sys.executable


def run_response_for_exit(code: int) -> language_pb2.RunResponse:
    """Translate the exec script's exit code into the engine's (error, bail) answer."""
    if code == 0:
        return language_pb2.RunResponse()
    if code == EXIT_AFTER_USER_MESSAGE:
        return language_pb2.RunResponse(bail=True)
    if code < 0:
        return language_pb2.RunResponse(error=f"program was stopped by signal {-code}")
    return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """Runs Python Pulumi programs for the engine, one child process per Run."""

    def __init__(self, engine_address: str, exec_script: Path) -> None:
        self.engine_address = engine_address
        self.exec_script = exec_script
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def Handshake(self, request, context):
        if request.engine_address:
            self.engine_address = request.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=PULUMI_VERSION)

    def GetRequiredPlugins(self, request, context):
        # Plugins are never fetched: the project installs the ones it uses.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def About(self, request, context):
        info = sys.version_info
        return language_pb2.AboutResponse(
            executable=python_command(), version=f"{info.major}.{info.minor}.{info.micro}"
        )

    def GetProgramDependencies(self, request, context):
        return language_pb2.GetProgramDependenciesResponse()

    def InstallDependencies(self, request, context):
        # Dependencies come from the project's own virtual environment.
        return iter(())

    def RuntimeOptionsPrompts(self, request, context):
        return language_pb2.RuntimeOptionsResponse()

    def Run(self, request, context):
        command = [python_command(), "-u", str(self.exec_script)]
        command += exec_arguments(request, self.engine_address)
        env = program_environment(request, dict(os.environ))
        try:
            child = subprocess.Popen(command, cwd=program_directory(request), env=env)
        except OSError as error:
            return language_pb2.RunResponse(error=f"could not start {command[0]}: {error}")
        with self._lock:
            self._children.add(child)
        context.add_callback(lambda: self._interrupt(child))
        try:
            code = child.wait()
        finally:
            with self._lock:
                self._children.discard(child)
        sys.stdout.flush()
        return run_response_for_exit(code)

    def Cancel(self, request, context):
        self.interrupt_all()
        return empty_pb2.Empty()

    def interrupt_all(self) -> None:
        """SIGINT to every program this host runs (the engine's Cancel, or the host's end)."""
        with self._lock:
            children = list(self._children)
        for child in children:
            self._interrupt(child)

    @staticmethod
    def _interrupt(child: subprocess.Popen) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)


def serve(engine_address: str, exec_script: Path) -> None:
    """Serve on a loopback port, announce it on stdout (the engine reads it), run until killed."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ],
    )
    host = PythonLanguageHost(engine_address, exec_script)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    host.interrupt_all()
    server.stop(grace=2).wait()


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pulumi-language-python")
    parser.add_argument("--exec", dest="exec_script", type=Path, required=True)
    # Flags the engine may pass to any language host; accepted and not needed here.
    parser.add_argument("-root", "--root", default=None)
    parser.add_argument("-tracing", "--tracing", default=None)
    parser.add_argument("-logtostderr", "--logtostderr", action="store_true")
    parser.add_argument("-v", "--v", default=None)
    parser.add_argument("engine_address", nargs="?", default="")
    args, _unknown = parser.parse_known_args(argv)
    return args


def end_with_the_engine() -> None:
    """Ask the kernel for SIGTERM when the engine that started this host dies.

    The engine starts its plugins in process groups of their own, so a kill of migrate's
    group (or of the engine alone) would leave this host serving for ever, its parent
    init. Exits at once when the engine is already gone."""
    engine = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != engine:
        sys.exit("pulumi-language-python: the engine that started it is gone")


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    end_with_the_engine()
    serve(args.engine_address, args.exec_script)


if __name__ == "__main__":
    main()
