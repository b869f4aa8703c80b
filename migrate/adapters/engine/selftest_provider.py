"""A tiny dynamic provider used to prove the engine end to end (``tests/engine``).

Its provider class lives in an importable module of the ``migrate`` package, as every real
dynamic provider of the project must: Pulumi pickles the class by reference and the
``pulumi-resource-pulumi-python`` plugin imports it again under ``PULUMI_PYTHON_CMD``.
A ``DigestFile`` writes ``<directory>/<name>.sha256`` holding the SHA-256 of ``text``, so a
test can see that create and delete really ran in the provider process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DigestFileProvider(ResourceProvider):
    """Create writes the digest file, delete removes it; any input change replaces it."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        path = Path(props["directory"]) / f"{props['name']}.sha256"
        digest = digest_of(props["text"])
        path.write_text(digest + "\n")
        outs = {**props, "digest": digest, "path": str(path)}
        return CreateResult(id_=digest[:16], outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("name", "text", "directory") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Path(props["path"]).unlink(missing_ok=True)


class DigestFile(Resource):
    digest: pulumi.Output[str]
    path: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        text: pulumi.Input[str],
        directory: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": resource_name,
            "text": text,
            "directory": directory,
            "digest": None,
            "path": None,
        }
        super().__init__(DigestFileProvider(), resource_name, props, opts)
