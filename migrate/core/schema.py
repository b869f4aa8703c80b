"""JSON Schemas and the manifest reference, generated from ``migrate.core.model`` (and the plan's
schema from ``migrate.core.plan_document``).

The schemas are shipped in ``migrate/schemas/`` (so editors validate manifests as users type)
and must equal what the model generates: a test regenerates and compares them.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from migrate.core.model import EstateSettings, SystemManifest
from migrate.core.plan_document import PlanDocument

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
MANIFEST_SCHEMAS: dict[str, type[BaseModel]] = {
    "migrate.schema.json": EstateSettings,
    "system.schema.json": SystemManifest,
}
# plan.json is written by migrate, not by hand: no reference page, but a schema to check it
SCHEMAS: dict[str, type[BaseModel]] = {**MANIFEST_SCHEMAS, "plan.schema.json": PlanDocument}
TITLES = {EstateSettings: "migrate.yaml (estate settings)", SystemManifest: "systems/<id>.yaml"}


def json_schema(model: type[BaseModel], name: str) -> dict:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://migrate.invalid/schemas/v1/{name}", **schema}


def render_schemas() -> dict[str, str]:
    return {name: json.dumps(json_schema(model, name), ensure_ascii=False, indent=2,
                             sort_keys=True) + "\n"
            for name, model in SCHEMAS.items()}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in annotation.__metadata__:
            extra = getattr(meta, "json_schema", None)
            if extra:
                return extra.get("description") or extra.get("format") or "str"
        return _type_text(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_text(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map {_type_text(args[0])} → {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _constraints(info: Any) -> str:
    metadata = list(info.metadata)
    if typing.get_origin(info.annotation) is typing.Annotated:
        metadata += list(info.annotation.__metadata__)
    parts = []
    for meta in metadata:
        for attr, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{word} {value}")
        if getattr(meta, "pattern", None):
            parts.append(f"pattern `{meta.pattern}`")
        if getattr(meta, "min_length", None):
            is_text = info.annotation is str or "str" in str(info.annotation)
            parts.append("non-empty" if is_text else f"at least {meta.min_length} item(s)")
    return ", ".join(dict.fromkeys(parts))


def _field_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        required = "yes" if info.is_required() else "no"
        default = ""
        if not info.is_required() and not isinstance(info.default, BaseModel):
            default = "" if info.default_factory else f"`{json.dumps(info.default)}`"
            if info.default_factory is not None:
                default = "`[]`"
        notes = " ".join(x for x in (info.description or "", _constraints(info)) if x)
        kind = _type_text(info.annotation)
        for meta in info.metadata:
            extra = getattr(meta, "json_schema", None)
            if extra:
                kind = extra.get("description") or f"str ({extra.get('format') or 'text'})"
        rows.append(f"| `{key}` | {kind} | {required} | {default} | "
                    f"{notes} |")
        inner = _inner_model(info.annotation)
        if inner is not None:
            origin = typing.get_origin(info.annotation)
            suffix = "[]." if origin is list or "list" in _type_text(info.annotation) else "."
            if origin is dict:
                suffix = ".<key>."
            rows += _field_rows(inner, f"{key}{suffix}")
    return rows


def reference_markdown() -> str:
    lines = [
        "# Manifest reference (format version 1)",
        "",
        "Generated from `migrate/core/model.py` by `migrate schema --reference`; do not edit by "
        "hand (after a change to the model, run `make schema`). The manifest contract is this "
        "page and the JSON Schemas generated from the same model and shipped with the package: "
        + ", ".join(f"[`migrate/schemas/{name}`](../migrate/schemas/{name}) "
                    f"(for `{TITLES[model].split(' ')[0]}`)"
                    for name, model in MANIFEST_SCHEMAS.items())
        + ". `migrate schema DIR` writes them for an editor (yaml-language-server). This page "
        "lists every field the model accepts, optional additions included. Unknown fields are "
        "errors.",
        "",
    ]
    for model, title in TITLES.items():
        lines += [f"## {title}", "", "| field | type | required | default | notes |",
                  "|---|---|---|---|---|", *_field_rows(model, ""), ""]
    return "\n".join(lines)
