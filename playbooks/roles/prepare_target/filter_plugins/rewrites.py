"""prepare_target's filters: a configuration file's text with its declared rewrites applied."""

from __future__ import annotations


def migrate_rewritten(text: str, rewrites: list[dict], file: str) -> str:
    """``text`` with each rewrite of ``file`` applied in the manifest's order: every
    occurrence of ``old`` replaced by ``new`` (already rendered to the planned addresses).
    Applied to the source's text each time, so running again gives the same bytes."""
    for rewrite in rewrites:
        if rewrite["file"] == file:
            text = text.replace(rewrite["old"], rewrite["new"])
    return text


class FilterModule:
    def filters(self) -> dict:
        return {"migrate_rewritten": migrate_rewritten}
