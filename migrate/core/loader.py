"""Reading an estate folder: YAML that keeps its line marks, and the typed model.

Parsing uses libyaml (``CSafeLoader``) and keeps each file's composed node tree, so a
problem found later (by the model or a cross-file check) can be located by its field path
without re-reading the file. Nothing here raises on the first problem: every problem of
every file is collected, and ``load_estate`` raises one ``InvalidInput`` carrying them all.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from migrate.core.errors import InvalidInput, Problem
from migrate.core.model import SCHEMA_VERSION, EstateSettings, SystemManifest

ESTATE_FILE = "migrate.yaml"
SYSTEMS_DIR = "systems"
SECRET_FIELDS = frozenset({"key", "password", "app_secret"})

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Loc = Sequence[str | int]


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _NodeBuilder:
    """Builds Python data from a composed node tree, like PyYAML's safe constructor but
    leaner, and noticing duplicate keys (YAML silently keeps the last one)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.duplicate_keys: list[yaml.Node] = []
        self.built: dict[int, Any] = {}

    def build(self, node: yaml.Node) -> Any:
        kind = node.__class__
        if kind is yaml.ScalarNode:
            if node.tag == _STR_TAG:
                return node.value
            return self.loader.construct_object(node, deep=True)
        known = self.built.get(id(node))
        if known is not None:
            return known
        if kind is yaml.SequenceNode:
            items: list = []
            self.built[id(node)] = items
            items.extend(self.build(child) for child in node.value)
            return items
        if any(key.tag == _MERGE_TAG for key, _ in node.value):
            return self.loader.construct_object(node, deep=True)  # rare: '<<' merge keys
        mapping: dict = {}
        self.built[id(node)] = mapping
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if key in mapping:
                self.duplicate_keys.append(key_node)
            mapping[key] = self.build(value_node)
        return mapping


@dataclass
class Document:
    """One parsed YAML file: its data and digest, and its text to find line numbers in.

    The node tree is composed again only when a problem needs a line: keeping a thousand
    node trees alive costs more (in memory and garbage collection) than re-reading the few
    files that have problems."""

    display: str
    text: str
    data: Any
    digest: str

    @functools.cached_property
    def node(self) -> yaml.Node | None:
        loader = _Loader(self.text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()

    def line_of(self, loc: Loc) -> int | None:
        return line_of(self.node, loc)

    def problem(self, loc: Loc, message: str, hint: str | None = None) -> Problem:
        return Problem(self.display, self.line_of(loc), format_loc(loc), message, hint)


@dataclass
class Estate:
    """A loaded, structurally valid estate. Cross-file checks are ``migrate.core.validate``'s."""

    root: Path
    display: str
    settings: EstateSettings
    settings_doc: Document
    systems: dict[str, SystemManifest]
    documents: dict[str, Document]
    warnings: list[Problem] = field(default_factory=list)

    def digests(self) -> dict[str, str]:
        return {sid: doc.digest for sid, doc in sorted(self.documents.items())}


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    """Line (1-based) of the deepest node along ``loc``: a key's own line where it exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    current: yaml.Node = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in current.value if isinstance(k, yaml.ScalarNode)
                 and k.value == str(part)),
                None,
            )
            if match is None:
                break
            line = match[0].start_mark.line + 1
            current = match[1]
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                break
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            break
    return line


def parse_yaml(path: Path, display: str) -> tuple[Document | None, list[Problem]]:
    """Parse one file; an empty, unreadable or unparsable file is a problem, not an exception."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return None, [Problem(display, None, "", f"cannot read the file: {error.strerror}")]
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [Problem(display, None, "", f"not UTF-8 text (byte {error.start})",
                              "save the file as UTF-8")]
    loader = _Loader(text)
    builder = _NodeBuilder(loader)
    try:
        node = loader.get_single_node()
        data = builder.build(node) if node is not None else None
    except (yaml.MarkedYAMLError, TypeError) as error:
        if isinstance(error, TypeError):  # an unhashable key, such as a mapping used as key
            return None, [Problem(display, None, "", f"not a valid manifest: {error}",
                                  "keys must be plain words")]
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        message = f"not valid YAML: {error.problem or error.context}"
        return None, [Problem(display, line, "", message, "check indentation and quoting")]
    finally:
        loader.dispose()
    if node is None or data is None:
        return None, [Problem(display, 1, "", "the file is empty",
                              "a manifest starts with 'schema_version: 1'")]
    document = Document(display, text, data, digest)
    problems = [
        Problem(display, k.start_mark.line + 1, str(k.value),
                f"duplicate key '{k.value}' (YAML keeps only the last one)",
                "remove one of the two")
        for k in builder.duplicate_keys
    ]
    if not isinstance(data, dict):
        problems.append(document.problem((), "the top level must be a mapping of fields"))
    if problems:
        document.node = node  # composed already; the problems' lines come from it
    return document, problems


def validate_document(
    document: Document, model: type[BaseModel]
) -> tuple[BaseModel | None, list[Problem]]:
    version = document.data.get("schema_version")
    if version != SCHEMA_VERSION:
        shown = "missing" if version is None else f"{version!r} is not supported"
        return None, [document.problem(
            ("schema_version",), f"schema_version {shown}",
            f"this migrate reads schema_version: {SCHEMA_VERSION}",
        )]
    try:
        return model.model_validate(document.data), []
    except ValidationError as error:
        return None, [_problem_from_error(document, model, e) for e in error.errors()]


def _problem_from_error(document: Document, model: type[BaseModel], error: dict) -> Problem:
    loc = [p for p in error["loc"] if p != "[key]"]
    kind = error["type"]
    hint: str | None = None
    if kind == "missing":
        message = "required field is missing"
        hint = "see docs/manifest-reference.md for the field"
    elif kind == "extra_forbidden":
        name = str(loc[-1])
        message = f"unknown field '{name}'"
        hint = _did_you_mean(name, _field_names_at(model, loc[:-1]))
    elif kind in ("literal_error", "enum"):
        message = f"{error['input']!r} is not allowed"
        hint = f"valid values: {error['ctx']['expected']}"
    elif kind == "string_pattern_mismatch":
        message = f"{_shown(loc, error['input'])} does not have the required form"
        hint = f"must match {error['ctx']['pattern']}"
    else:
        message = error["msg"]
        if "input" in error and not isinstance(error["input"], dict | list):
            message = f"{message}, got {_shown(loc, error['input'])}"
    return document.problem(loc, message, hint)


def _shown(loc: Loc, value: Any) -> str:
    if loc and loc[-1] in SECRET_FIELDS:
        return "a value that is not shown (secret field)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    candidates = sorted(candidates)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid fields here: {', '.join(candidates)}" if candidates else "remove it"


def _field_names_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names (aliases where set) of the model found by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part), None
        )
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    """The model class inside ``X | None``, ``list[X]`` or ``dict[K, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(typing.get_args(annotation)):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def find_manifests(root: Path) -> list[Path]:
    systems = root / SYSTEMS_DIR
    found = [p for p in systems.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(found)


@dataclass
class PartialLoad:
    """What could be loaded, and the problems of what could not."""

    estate: Estate | None
    problems: list[Problem]
    unloaded_ids: set[str]


def load_estate(path: str | Path) -> Estate:
    """Load and structurally validate an estate; raise InvalidInput with every problem."""
    loaded = load_estate_partially(path)
    if loaded.problems or loaded.estate is None:
        raise InvalidInput(loaded.problems)
    return loaded.estate


def load_estate_partially(path: str | Path) -> PartialLoad:
    """Load every file that can be loaded; a broken file does not hide the others' problems."""
    display_root = str(path).rstrip("/") or "."
    root = Path(path)
    if not root.is_dir():
        raise InvalidInput(
            [Problem(display_root, None, "", "not an estate folder (no such directory)",
                     f"an estate is a folder holding {ESTATE_FILE} and {SYSTEMS_DIR}/*.yaml")],
        )
    problems: list[Problem] = []
    unloaded_ids: set[str] = set()
    settings_display = f"{display_root}/{ESTATE_FILE}"
    settings_doc, settings = None, None
    if not (root / ESTATE_FILE).is_file():
        problems.append(Problem(settings_display, None, "", f"missing {ESTATE_FILE}",
                                "every estate has one; see docs/manifest-reference.md"))
    else:
        settings_doc, found = parse_yaml(root / ESTATE_FILE, settings_display)
        problems += found
        if settings_doc is not None and not found:
            settings, found = validate_document(settings_doc, EstateSettings)
            problems += found

    manifests = find_manifests(root)
    if not manifests:
        problems.append(Problem(f"{display_root}/{SYSTEMS_DIR}", None, "",
                                "no system manifests (systems/*.yaml)",
                                "write one manifest per department system"))
    systems: dict[str, SystemManifest] = {}
    documents: dict[str, Document] = {}
    seen_in: dict[str, Document] = {}
    for manifest in manifests:
        display = f"{display_root}/{manifest.relative_to(root).as_posix()}"
        document, found = parse_yaml(manifest, display)
        problems += found
        if document is None or found:
            continue
        system, found = validate_document(document, SystemManifest)
        problems += found
        if system is None:
            if isinstance(document.data.get("id"), str):
                unloaded_ids.add(document.data["id"])
            continue
        other = seen_in.get(system.id)
        if other is not None:
            problems.append(document.problem(
                ("id",), f"system id '{system.id}' is also used by {other.display}"
                f":{other.line_of(('id',))}", "system ids must be unique in the estate"))
            problems.append(other.problem(
                ("id",), f"system id '{system.id}' is also used by {document.display}"
                f":{document.line_of(('id',))}", "system ids must be unique in the estate"))
            continue
        seen_in[system.id] = document
        systems[system.id] = system
        documents[system.id] = document
    estate = None
    if settings is not None and settings_doc is not None:
        estate = Estate(
            root=root,
            display=display_root,
            settings=settings,  # type: ignore[arg-type]
            settings_doc=settings_doc,
            systems=dict(sorted(systems.items())),
            documents=dict(sorted(documents.items())),
        )
    return PartialLoad(estate, problems, unloaded_ids)
