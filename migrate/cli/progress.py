"""How ``migrate run`` shows its progress: stage lines for CI and logs, and on a terminal a
live table (one row per system: wave, stage, state, time in the stage, last task) above
which the stage lines scroll."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from migrate.orchestrate.run import RunEvent

STYLE = {"failed": "red", "changed": "green", "ok": "green", "unchanged": "cyan",
         "skipped": "dim", "started": "yellow", "task": "yellow"}


SHRINKING_COLUMNS = ("stage", "last task")


def one_line(text: str) -> Text:
    return Text(text, no_wrap=True, overflow="ellipsis")


class LinePrinter:
    """One line per stage start and end (task events are left out): what CI logs."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: RunEvent) -> None:
        if event.status != "task":
            self.console.print(event.line(), markup=False, highlight=False)

    def __enter__(self) -> LinePrinter:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


class LiveDisplay:
    """Stage lines scrolling above a live table of the systems in flight."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lock = threading.Lock()
        self.rows: dict[str, dict[str, Any]] = {}
        self.run_stage: dict[str, Any] = {"stage": "", "since": time.monotonic(), "task": ""}
        self.started = time.monotonic()
        self.data = ""  # the run's data moved so far, as the last "data" event said
        self.live = Live(console=console, refresh_per_second=4, transient=True,
                         get_renderable=self.render)

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, event: RunEvent) -> None:
        with self.lock:
            now = time.monotonic()
            if event.system and "," not in event.system:
                row = self.rows.setdefault(event.system, {"wave": event.wave, "stage": "",
                                                          "status": "", "since": now,
                                                          "task": "", "done": []})
                if event.status == "task":
                    row["task"] = event.detail
                elif event.status == "started":
                    row.update(stage=event.stage, status="running", since=now, task="")
                else:
                    row.update(stage=event.stage, status=event.status, task=event.detail)
                    row["done"].append(f"{event.stage} {event.status}")
            elif event.stage == "data":
                self.data = f", data {event.detail}"
            elif event.status == "task":
                self.run_stage["task"] = event.detail
            elif event.status == "started":
                self.run_stage.update(stage=f"{event.stage} ({event.system or 'run'})",
                                      since=now, task="")
            if event.status != "task":
                self.console.print(Text(event.line(), style=STYLE.get(event.status, "")))

    def render(self) -> Group:
        with self.lock:
            now = time.monotonic()
            table = Table(title_justify="left", expand=True,
                          title=f"migrate run: {now - self.started:.0f} s{self.data}")
            for column in ("wave", "system", "stage", "state", "in stage", "last task"):
                # only the text columns give way at 80 columns, each cell kept to one line
                table.add_column(column, overflow="ellipsis",
                                 no_wrap=column not in SHRINKING_COLUMNS)
            for system, row in self.rows.items():
                table.add_row(str(row["wave"] or ""), Text(system), one_line(row["stage"]),
                              Text(row["status"], style=STYLE.get(row["status"], "yellow")),
                              f"{now - row['since']:.0f} s" if row["status"] == "running"
                              else "", one_line(row["task"][-70:]))
            head = self.run_stage
            line = Text(f"{head['stage']}: {now - head['since']:.0f} s  {head['task'][-80:]}",
                        style="dim") if head["stage"] else Text("")
            return Group(line, table)


def display_for(console: Console) -> LinePrinter | LiveDisplay:
    return LiveDisplay(console) if console.is_terminal else LinePrinter(console)
