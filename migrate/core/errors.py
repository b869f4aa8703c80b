"""Domain exceptions. Only ``migrate.cli.main`` turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_STAGE_FAILED = 4
EXIT_INTERRUPTED = 130


class MigrateError(Exception):
    """Base of every error the CLI reports: a message, a hint and an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict:
        """The error in JSON (``error_record``)."""
        return error_record(type(self).__name__, self.message, self.hint, self.exit_code)


def error_record(kind: str | None, message: str, hint: str | None,
                 exit_code: int | None) -> dict:
    """The one JSON shape of an error: a command's own (``error`` of its document) and one
    system's failure inside its results alike; the problems it names (file, line, path:
    ``Problem.as_dict``) go beside it as ``problems``. None where it is not known (a failure
    read back from the journal has its message only)."""
    return {"type": kind, "message": message, "hint": hint, "exit_code": exit_code}


class EnvironmentNotReady(MigrateError):
    """A tool, privilege or service the command needs is missing (not root, no nspawn...)."""

    exit_code = EXIT_ENVIRONMENT


class StageFailed(MigrateError):
    """A stage ran and failed (a play, a stack update, a verification)."""

    exit_code = EXIT_STAGE_FAILED
    failure: StageFailure | None = None  # the one system's failure it reports, if so


class GuardRefused(MigrateError):
    """A safety guard refused before anything was touched (e.g. an address off the host)."""

    exit_code = EXIT_INVALID_INPUT


class PlanChanged(GuardRefused):
    """The estate no longer gives the reviewed plan.json: applying it (provision, run) is
    refused until it is re-planned; ``changes`` says what differs, one line each."""

    def __init__(self, message: str, changes: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.changes = list(changes)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "changes": self.changes}


class HostKeyUnknown(GuardRefused):
    """A source host offered an SSH host key that no known_hosts entry names."""


class HostKeyChanged(GuardRefused):
    """A source host offered an SSH host key that differs from the one recorded for it."""


class TargetHostKeyChanged(StageFailed):
    """A target offered another SSH host key than the one its provisioning state pinned,
    found as a stage began (before its first play): the stage failed, and is recorded so
    (exit 4, as when ssh inside the play refuses the key), where a source's changed key is
    refused before any stage (HostKeyChanged, 2)."""


@dataclass(frozen=True)
class StageFailure:
    """A stage that failed for one system (or for a wave's systems, ``system`` None), as the
    MigrateError caught where it ran made it: recorded once, carried unchanged into the
    stage's results, the run summary and the command's own error (``error``)."""

    system: str | None
    stage: str
    kind: str  # the class of the error caught
    message: str
    hint: str | None
    exit_code: int
    duration_s: float = 0.0
    problems: tuple[Problem, ...] = ()  # an InvalidInput's, each where it is

    @classmethod
    def caught(cls, error: MigrateError, stage: str, system: str | None = None,
               duration_s: float = 0.0) -> StageFailure:
        problems = tuple(error.problems) if isinstance(error, InvalidInput) else ()
        return cls(system, stage, type(error).__name__, error.message, error.hint,
                   error.exit_code, round(duration_s, 3), problems)

    def error_dict(self) -> dict:
        """Its error in JSON, as the command's own error is (``error_record``)."""
        return error_record(self.kind, self.message, self.hint, self.exit_code)

    def as_dict(self) -> dict:
        """The failed system's object in a command's results: the error and its problems as
        in a command's own error document."""
        return {"system": self.system, "stage": self.stage, "result": "failed",
                "error": self.error_dict(), "problems": [p.as_dict() for p in self.problems],
                "duration_s": self.duration_s}

    def error(self, message: str | None = None) -> StageFailed:
        """The command's error for this failure alone: its hint and exit code kept."""
        raised = StageFailed(message or self.message, hint=self.hint)
        raised.exit_code = self.exit_code
        raised.failure = self
        return raised


@dataclass(frozen=True, order=True)
class Problem:
    """One defect in the input: where it is, what is wrong, what would be valid."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str | None = field(default=None, compare=False)

    def location(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}" if self.path else where

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class InvalidInput(MigrateError):
    """The estate (or a CLI argument) is invalid; carries every problem found at once."""

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, problems: list[Problem], message: str | None = None) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        super().__init__(
            message or f"{count} problem{'s' if count != 1 else ''} in the estate",
            hint="fix every problem listed, then run the command again; nothing was changed",
        )
