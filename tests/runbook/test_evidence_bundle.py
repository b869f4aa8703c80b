"""The evidence bundle: exported, unpacked elsewhere, verified; tampering named."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.runbook.story import ROLLED_BACK, VERIFIED, write_story

LINK = re.compile(r"\]\(([^)#]+)\)")


@pytest.fixture
def exported(run_cli, estate, tmp_path) -> Path:
    from migrate.orchestrate.pipeline import open_estate

    write_story(estate / ".migrate", open_estate(estate).settings.estate)
    archive = tmp_path / "out" / "evidence.tar.gz"
    result = run_cli("evidence", "export", estate, "--output", archive, "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["journal"]["ok"]
    return archive


def unpack(archive: Path, where: Path) -> Path:
    with tarfile.open(archive) as bundle:
        bundle.extractall(where, filter="data")
    (root,) = where.iterdir()
    return root


def repack(root: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(root, arcname=root.name)


def test_an_exported_bundle_verifies_in_another_folder(run_cli, exported, tmp_path):
    moved = tmp_path / "elsewhere" / "copy.tar.gz"
    moved.parent.mkdir()
    shutil.copy(exported, moved)
    result = run_cli("audit", "verify", moved)
    assert result.code == 0, result.stderr
    assert "evidence bundle verified" in result.stdout
    root = unpack(moved, tmp_path / "unpacked")
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"MANIFEST.sha256", "MANIFEST.sha256.sig", "bundle.json", "README.md",
            "journal/journal.jsonl", "journal/checkpoints.jsonl", "journal/public-key.pem",
            "report/report.html", "report/report.json", "runbooks/index.html",
            f"evidence/{VERIFIED[0]}.md".join(("runbooks/", "")), "plan.json",
            f"artifacts/artifacts/{VERIFIED[0]}/transfer.log"} <= names
    evidence = (root / "runbooks" / "evidence" / f"{ROLLED_BACK}.md").read_text(encoding="utf-8")
    assert "切换后健康检查失败" in evidence


def test_every_link_in_the_bundle_resolves_inside_it(exported, tmp_path):
    root = unpack(exported, tmp_path / "unpacked")
    checked = 0
    for page in root.rglob("*.md"):
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(root.resolve()), f"{page}: {target} leaves the bundle"
            assert resolved.exists(), f"{page.relative_to(root)}: {target} does not resolve"
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("victim", ["journal/journal.jsonl", "report/report.md",
                                    "runbooks/index.html"])
def test_a_tampered_file_is_named(run_cli, exported, tmp_path, victim):
    root = unpack(exported, tmp_path / "unpacked")
    path = root / victim
    path.write_bytes(path.read_bytes().replace(b"e", b"E", 1))
    forged = tmp_path / "forged.tar.gz"
    repack(root, forged)
    result = run_cli("audit", "verify", forged)
    assert result.code == 4
    assert f"{victim} was altered" in result.stderr


def test_a_rewritten_manifest_fails_its_signature(run_cli, exported, tmp_path):
    from migrate.core.journal import digest_file

    root = unpack(exported, tmp_path / "unpacked")
    report = root / "report" / "report.md"
    report.write_text(report.read_text(encoding="utf-8") + "\n全部完成\n", encoding="utf-8")
    manifest = root / "MANIFEST.sha256"
    lines = [f"{digest_file(report).removeprefix('sha256:')}  report/report.md"
             if line.endswith("  report/report.md") else line
             for line in manifest.read_text(encoding="utf-8").splitlines()]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    forged = tmp_path / "forged.tar.gz"
    repack(root, forged)
    result = run_cli("audit", "verify", forged, "--output", "json")
    assert result.code == 4
    assert "signature of MANIFEST.sha256 does not verify" in json.loads(result.stdout)["problem"]


def test_an_added_file_is_named(run_cli, exported, tmp_path):
    root = unpack(exported, tmp_path / "unpacked")
    (root / "report" / "extra.md").write_text("x\n", encoding="utf-8")
    forged = tmp_path / "forged.tar.gz"
    repack(root, forged)
    result = run_cli("audit", "verify", forged)
    assert result.code == 4 and "report/extra.md is in the bundle but not in" in result.stderr


def test_a_secret_in_an_artifact_refuses_the_export(run_cli, estate, tmp_path):
    from migrate.orchestrate.pipeline import open_estate

    secret = "k3ep-th1s-0ut-of-evidence"
    folder = estate / "secrets"
    folder.mkdir(exist_ok=True)
    (folder / "leak").write_text(secret, encoding="utf-8")
    (folder / "leak").chmod(0o600)
    write_story(estate / ".migrate", open_estate(estate).settings.estate)
    log = estate / ".migrate" / "artifacts" / VERIFIED[0] / "transfer.log"
    log.write_text(f"password={secret}\n", encoding="utf-8")
    archive = tmp_path / "e.tar.gz"
    result = run_cli("evidence", "export", estate, "--output", archive)
    assert result.code == 1, result.stderr
    assert "transfer.log would carry a secret value" in result.stderr
    assert secret not in result.stderr and not archive.exists()
