"""The tests' scan for secrets left in what a run wrote or printed.

A secret file is looked for whole and line by line: a private key leaks one line at a time
as often as whole (a diff, a log line, a task result shown line by line), so every line of
16 characters or more of a secret file is a needle of its own. Three kinds of lines are no
secret and are left out: the armor (``-----BEGIN ... PRIVATE KEY-----``), an OpenSSH key's
first line (its format header, ``openssh-key-v1`` and the key type: the same in every key of
a type, so scanning for it would flag every other key on disk, also when the estate holds
one key only), and a line that two or more independent secret files share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

MIN_LINE_CHARS = 16
OPENSSH_HEADER = "b3BlbnNzaC1rZXktdjE"  # base64 of "openssh-key-v1", how its first line starts


def needles(values: Iterable[str]) -> list[str]:
    """Each secret value whole, and each of its lines that is long enough to be secret and
    is not shared with another secret value."""
    values = [v for v in values if v]
    lines = [{line.strip() for line in value.splitlines()} for value in values]
    shared = Counter(line for own in lines for line in own)
    found = dict.fromkeys(values)
    for own in lines:
        found.update(dict.fromkeys(sorted(
            line for line in own if len(line) >= MIN_LINE_CHARS
            and not line.startswith(("-----", OPENSSH_HEADER)) and shared[line] == 1)))
    return list(found)


def leaks(values: Iterable[str], files: Iterable[Path], printed: Iterable[str] = ()
          ) -> list[str]:
    """``printed output N`` and the paths of ``files`` that hold a needle of ``values``."""
    wanted = [n.encode() for n in needles(values)]
    found = [f"printed output {n}" for n, text in enumerate(printed)
             if any(needle in text.encode() for needle in wanted)]
    for path in files:
        data = path.read_bytes()
        if any(needle in data for needle in wanted):
            found.append(str(path))
    return found
