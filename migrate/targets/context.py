"""What one command works with: its estate, and what is derived from it once for every stage
the command calls (the plan, the journal, the cloud target and its surroundings, the paths).

The orchestration makes it (``migrate.orchestrate.pipeline.open_context``) and hands it to
the stages. It lives here, not in ``migrate.core``, because it holds a ``Target`` and
``Surroundings``: core may not import the targets, and every stage may import this module.
Each derived part is made on first use, then kept: a command that never needs the plan or
the target neither computes nor loads it (so it fails, or not, as it did without a context).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.core.census import CensusResult
from migrate.core.journal import Journal
from migrate.core.loader import Estate
from migrate.core.state import journal_for
from migrate.targets import surroundings_of, target_of
from migrate.targets.base import Surroundings, Target

PLAN_NAME = "plan.json"
RUNS_DIR = "runs"


@dataclass(frozen=True)
class PlanOutcome:
    """The plan one command works to, computed once and handed to every stage it calls."""

    plan: dict
    census: CensusResult
    path: Path
    changed: bool  # plan.json was (re)written
    note: str = ""  # what to tell the user: planned first, re-planned
    drift: tuple[str, ...] = ()  # the estate against plan.json, not applied (see stage_plan)


@dataclass(frozen=True, eq=False)
class Context:
    """One command's estate and what the stages it calls share of it, each made once."""

    estate: Estate
    state_dir: Path
    planner: Callable[[Context], PlanOutcome] = field(repr=False)  # the command's plan
    _made: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    @property
    def plan_path(self) -> Path:
        return self.state_dir / PLAN_NAME

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / RUNS_DIR

    @property
    def planned(self) -> PlanOutcome:
        return self._once("plan", lambda: self.planner(self))

    @property
    def plan(self) -> dict:
        return self.planned.plan

    @property
    def journal(self) -> Journal:
        return self._once("journal", lambda: journal_for(self.estate))

    @property
    def target(self) -> Target:
        return self._once("target", lambda: target_of(self.estate))

    @property
    def surroundings(self) -> Surroundings:
        return self._once("surroundings", lambda: surroundings_of(self.estate))

    def guard_address(self, address: str) -> None:
        """Refuse (GuardRefused) an address the estate's cloud target must not reach (on the
        sandbox: one that is not on this host)."""
        self.surroundings.guard_address(address, self.estate.settings.sandbox.allowed_networks)

    def reopen_journal(self) -> Journal:
        """The journal opened again, redacting the secrets as they are now: after the
        rehearsal's surroundings made new ones, which the journal opened before cannot know."""
        with self._lock:
            self._made.pop("journal", None)
        return self.journal

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:  # stages of several systems run in threads
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]
