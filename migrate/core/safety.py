"""What a manifest string or path may hold, wherever it comes from: a manifest the model
reads, or what discovery observed on a source host for a draft. These values end up in
Ansible plays, rsync and systemctl command lines, so the rules keep them plain data that
can neither be templated nor widen what a move copies or replaces.

Each check returns the reason a value is refused, or None when it is fine.
"""

from __future__ import annotations

import json
import re

# Jinja's statement, expression and comment openers: Ansible templates any of them.
TEMPLATE_MARKERS = ("{{", "{%", "{#")
# C0, DEL, C1 and the characters YAML 1.1 also reads as line breaks.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

ROOT = "/"
# Trees the operating system owns as a whole: never copied as one (what lies in them, such
# as /etc/nginx/sites-available/wiki, may be).
WHOLE_TREES = frozenset({
    "/etc", "/usr", "/bin", "/sbin", "/var", "/var/lib", "/home", "/root",
    "/usr/bin", "/usr/sbin", "/usr/share", "/etc/systemd", "/etc/systemd/system",
})
WHOLE_TREE_PATTERN = re.compile(r"^(/usr)?/lib[^/]*(/systemd(/system)?)?$")
# The machine's own: virtual filesystems, runtime state, its kernel and boot loader.
MACHINE_TREES = ("/proc", "/sys", "/dev", "/run", "/boot")
# Who may log in to the target and become root there is the target's own; the move copies
# the services' accounts itself.
ACCESS_FILES = ("/etc/ssh", "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow",
                "/etc/sudoers", "/etc/sudoers.d")
SSH_FOLDER = ".ssh"
HOME_FOLDER = re.compile(r"^/home/[^/]+$")
# Databases move through the database copy; their files under the server never as a tree.
DATABASE_DATA_TREES = ("/var/lib/postgresql", "/var/lib/mysql")


def text_problem(value: str) -> str | None:
    """Why ``value`` may not reach a play as text (template markup, a control character)."""
    marker = next((m for m in TEMPLATE_MARKERS if m in value), None)
    if marker is not None:
        return (f"holds template markup '{marker}': Ansible would run it as a template "
                "(write the text without '{{', '{%' and '{#')")
    control = CONTROL_CHARACTERS.search(value)
    if control is not None:
        return (f"holds the control character {control.group()!r}: a value is one line of "
                "printable text")
    return None


def path_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute path in plain form, or not plain text."""
    if not value.startswith("/"):
        return "must be an absolute path (e.g. /srv/app/uploads)"
    problem = text_problem(value)
    if problem is not None:
        return problem
    parts = plain(value).split("/")[1:]
    if value != ROOT and any(part in ("", ".", "..") for part in parts):
        return "must be a path in plain form, without '.', '..' or '//' parts"
    return None


def plain(path: str) -> str:
    """``path`` without its trailing '/' (a folder may be written either way)."""
    return path.rstrip("/") or ROOT


def within(path: str, tree: str) -> bool:
    """Whether ``path`` is ``tree`` or lies in it."""
    path, tree = plain(path), plain(tree)
    return path == tree or tree == ROOT or path.startswith(f"{tree}/")


def overlap(one: str, other: str) -> bool:
    return within(one, other) or within(other, one)


def tree_problem(path: str) -> str | None:
    """Why copying ``path`` as a file tree (rsync, with what the target has more deleted)
    would copy or replace what a move must leave alone; ``path`` passed ``path_problem``."""
    path = plain(path)
    if path == ROOT:
        return "is the whole filesystem: name the application's own folders"
    if path in WHOLE_TREES or WHOLE_TREE_PATTERN.match(path):
        return (f"is the whole system tree {path}: name the application's own folders or "
                "files in it")
    machine = next((t for t in MACHINE_TREES if within(path, t)), None)
    if machine is not None:
        return f"lies in {machine}, the machine's own: it never moves"
    if SSH_FOLDER in path.split("/") or HOME_FOLDER.match(path):
        return ("is or holds an ssh folder: copying it would change who may log in to the "
                "target; name the application's folders only")
    access = next((t for t in ACCESS_FILES if within(path, t)), None)
    if access is not None:
        return (f"lies in {access}: who may log in to the target and become root is the "
                "target's own (the move copies the services' accounts itself)")
    data = next((t for t in DATABASE_DATA_TREES if within(path, t)), None)
    if data is not None:
        return (f"lies in {data}, the database server's own data directory: databases move "
                "through workload.databases, never as files")
    return None


def shown(value: str, limit: int = 120) -> str:
    """``value`` as a JSON string that holds no template markup and no control character
    (braces and non-ASCII escaped), to name a refused value in a comment or a message."""
    text = json.dumps(value, ensure_ascii=True).replace("{", "\\u007b")
    return text if len(text) <= limit else text[:limit - 4] + '..."'


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes: safe after a '#'."""
    return CONTROL_CHARACTERS.sub(lambda m: json.dumps(m.group())[1:-1], text)
