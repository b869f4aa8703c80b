"""A stand-in for the engine that is SIGKILLed while a plugin it started runs: for the
tests that a plugin (the language host, the OpenStack plugin) ends with its engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Starts the plugin in a process group of its own, as the engine starts its plugins, says the
# plugin's pid and what it printed first, then waits to be killed.
ENGINE = """\
import subprocess, sys
plugin = subprocess.Popen([sys.argv[1], "127.0.0.1:5002"], stdout=subprocess.PIPE, text=True,
                          process_group=0)
print(plugin.pid, plugin.stdout.readline().strip(), flush=True)
sys.stdin.read()
"""


@contextmanager
def plugin_of_a_killed_engine(plugin: Path,
                              env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """The plugin's pid and the number it printed first (its port), while its engine runs;
    the engine is SIGKILLed when the block ends."""
    with subprocess.Popen([sys.executable, "-c", ENGINE, str(plugin)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, env=env, text=True) as engine:
        pid, port = map(int, engine.stdout.readline().split())
        yield pid, port
        engine.kill()
        engine.wait(timeout=10)


def outlived(pid: int, seconds: float) -> bool:
    """Whether the process still runs after ``seconds`` (then it is SIGKILLed)."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
        return True
    return False
