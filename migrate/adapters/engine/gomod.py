"""Reading upstream ``go.mod`` replace directives and writing the wrapper module's go.mod.

``go install module@version`` refuses modules whose go.mod has replace directives, and a
dependency's replaces are ignored by Go. So the engine is built from a small wrapper module
that requires Pulumi's ``pkg/v3`` and repeats the upstream replaces that point at other
module versions. Replaces that point at local paths (``=> ../sdk``) only make sense inside
Pulumi's own repository and are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_COMMENT = re.compile(r"//.*$")


@dataclass(frozen=True)
class Replace:
    """One ``replace OLD [VERSION] => NEW [VERSION]`` directive."""

    old_path: str
    old_version: str | None
    new_path: str
    new_version: str | None

    @property
    def is_local_path(self) -> bool:
        """True when the target is a directory, which Go recognises by a leading ./, ../ or /."""
        return self.new_path.startswith(("./", "../", "/")) or self.new_path in (".", "..")

    def render(self) -> str:
        old = f"{self.old_path} {self.old_version}" if self.old_version else self.old_path
        new = f"{self.new_path} {self.new_version}" if self.new_version else self.new_path
        return f"{old} => {new}"


def _strip_comment(line: str) -> str:
    return _LINE_COMMENT.sub("", line).strip()


def _parse_replace_spec(spec: str) -> Replace:
    left, sep, right = spec.partition("=>")
    if not sep:
        raise ValueError(f"replace directive without '=>': {spec!r}")
    old = left.split()
    new = right.split()
    if len(old) not in (1, 2) or len(new) not in (1, 2):
        raise ValueError(f"malformed replace directive: {spec!r}")
    return Replace(
        old_path=old[0],
        old_version=old[1] if len(old) == 2 else None,
        new_path=new[0],
        new_version=new[1] if len(new) == 2 else None,
    )


def parse_replaces(gomod_text: str) -> list[Replace]:
    """Every replace directive of a go.mod, in both the single-line and the block form."""
    replaces: list[Replace] = []
    in_block = False
    for raw in gomod_text.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
            else:
                replaces.append(_parse_replace_spec(line))
            continue
        if re.fullmatch(r"replace\s*\(", line):
            in_block = True
        elif line.startswith("replace ") or line.startswith("replace\t"):
            replaces.append(_parse_replace_spec(line[len("replace") :]))
    return replaces


def module_replaces(gomod_text: str) -> list[Replace]:
    """The replaces worth repeating in a wrapper: those that point at another module version."""
    return [r for r in parse_replaces(gomod_text) if not r.is_local_path]


def go_directive(gomod_text: str) -> str | None:
    """The language version of a go.mod's ``go`` line, e.g. ``1.26.6``."""
    for raw in gomod_text.splitlines():
        match = re.fullmatch(r"go\s+(\S+)", _strip_comment(raw))
        if match:
            return match.group(1)
    return None


def render_wrapper_gomod(
    module: str,
    go_version: str,
    requires: dict[str, str],
    replaces: list[Replace],
) -> str:
    """The wrapper module's go.mod text: its name, the go line, requires and replaces."""
    lines = [f"module {module}", "", f"go {go_version}", ""]
    if requires:
        lines.append("require (")
        lines.extend(f"\t{path} {version}" for path, version in sorted(requires.items()))
        lines.extend([")", ""])
    if replaces:
        lines.append("replace (")
        lines.extend(f"\t{r.render()}" for r in replaces)
        lines.extend([")", ""])
    return "\n".join(lines)
