"""The OpenStack plugin's pins, SDK token list, plugin-cache install and offline archive,
without compiling anything (a shell script stands in for the plugin)."""

from __future__ import annotations

import json
import shutil
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

from migrate.adapters.engine import build, prepare_state_dir, provider
from migrate.adapters.engine.__main__ import main
from migrate.adapters.engine.version import OPENSTACK_PROVIDER_VERSION, PULUMI_VERSION
from migrate.core.errors import EnvironmentNotReady, GuardRefused
from tests.engine.killed_engine import outlived, plugin_of_a_killed_engine

ROOT = Path(__file__).resolve().parents[2]


def test_the_plugin_version_is_the_pinned_sdk_version() -> None:
    assert version("pulumi-openstack") == OPENSTACK_PROVIDER_VERSION
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"pulumi-openstack=={OPENSTACK_PROVIDER_VERSION}"' in pyproject


def test_go_mod_pins_what_version_py_says() -> None:
    provider.check_pins()


def test_a_go_mod_with_other_pins_is_refused(tmp_path: Path) -> None:
    text = (provider.SOURCE_DIR / "go.mod").read_text().replace("v3.120.0", "v3.119.0")
    (tmp_path / "go.mod").write_text(text)
    with pytest.raises(EnvironmentNotReady, match=r"v3\.119\.0"):
        provider.check_pins(tmp_path)


def test_the_committed_sdk_token_list_is_the_installed_sdks() -> None:
    committed = (provider.SOURCE_DIR / provider.SDK_TOKENS_FILE).read_text()
    assert committed == provider.sdk_tokens_text(), (
        "regenerate it: python -m migrate.adapters.engine sdk-tokens > "
        "providers/openstack/provider/sdk-tokens.txt"
    )
    tokens = provider.sdk_tokens()
    assert "openstack:networking/secGroupRule:SecGroupRule" in tokens
    assert "openstack:images/getImage:getImage" in tokens


def test_build_without_go_says_what_to_install(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider, "find_go", lambda: None)
    with pytest.raises(EnvironmentNotReady, match="Go is not installed") as caught:
        provider.build_provider(progress=lambda _line: None)
    assert "install Go" in (caught.value.hint or "")
    assert "migrate.adapters.engine install" in (caught.value.hint or "")


def test_missing_plugin_without_build_names_make_provider(isolated_cache: Path) -> None:
    with pytest.raises(EnvironmentNotReady, match="not built") as caught:
        provider.ensure_provider(build=False)
    assert "make provider" in (caught.value.hint or "")


def fake_plugin(version: str = OPENSTACK_PROVIDER_VERSION) -> Path:
    """A complete-looking plugin in the (isolated) cache: a script printing its version."""
    bin_dir = provider.provider_bin_dir(version)
    bin_dir.mkdir(parents=True)
    plugin = bin_dir / provider.PLUGIN_FILE
    build.install_executable(f"#!/bin/sh\necho {version}\n", plugin)
    provider.schema_path(version).write_text('{"name": "openstack", "resources": {}}')
    provider.marker_path(version).write_text(
        json.dumps({"version": version, "source": provider.source_digest()}))
    return plugin


def fake_engine() -> None:
    bin_dir = build.engine_bin_dir()
    bin_dir.mkdir(parents=True)
    for name in build.ENGINE_FILES:
        build.install_executable(f"#!/bin/sh\necho {name}\n", bin_dir / name)
    build.write_marker(PULUMI_VERSION, 1.0)


def test_a_marker_of_another_version_or_other_sources_is_not_complete(
    isolated_cache: Path
) -> None:
    plugin = fake_plugin()
    assert provider.find_provider() == plugin
    marker = json.loads(provider.marker_path().read_text())
    provider.marker_path().write_text(json.dumps({**marker, "version": "5.0.0"}))
    assert provider.find_provider() is None
    provider.marker_path().write_text(json.dumps({**marker, "source": "0" * 64}))
    assert provider.find_provider() is None


def test_the_source_digest_follows_the_go_program_not_the_generated_schema(
    tmp_path: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(provider.SOURCE_DIR, source)
    assert provider.source_digest(source) == provider.source_digest()
    (source / "cmd" / provider.PLUGIN_FILE / "schema.json").write_text("{}")
    assert provider.source_digest(source) == provider.source_digest()
    tokens = source / "provider" / "tokens.go"
    tokens.write_text(tokens.read_text() + "\n// changed\n")
    assert provider.source_digest(source) != provider.source_digest()


def test_prepare_state_dir_links_the_plugin_into_the_engines_plugin_cache(
    isolated_cache: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    prepare_state_dir(state)
    assert not (state / "pulumi-home" / "plugins").exists(), "nothing built, nothing linked"
    plugin = fake_plugin()
    prepare_state_dir(state)
    prepare_state_dir(state)  # idempotent
    link = state / "pulumi-home" / "plugins" / f"resource-openstack-v{OPENSTACK_PROVIDER_VERSION}"
    assert sorted(p.name for p in link.iterdir()) == [provider.PLUGIN_FILE]
    assert str(plugin) in (link / provider.PLUGIN_FILE).read_text()  # it becomes the plugin
    assert provider.reported_version(link / provider.PLUGIN_FILE) == OPENSTACK_PROVIDER_VERSION



def test_the_plugin_ends_when_the_engine_that_started_it_is_killed(
    isolated_cache: Path, tmp_path: Path
) -> None:
    """A SIGKILLed engine leaves no OpenStack plugin behind (tfbridge's would serve for ever)."""
    plugin = fake_plugin()
    build.install_executable("#!/bin/sh\necho 40001\nexec sleep 120\n", plugin)
    state = tmp_path / "state"
    prepare_state_dir(state)
    cached = provider.plugin_dir(state / "pulumi-home") / provider.PLUGIN_FILE
    with plugin_of_a_killed_engine(cached) as (pid, port):
        assert port == 40001 and Path(f"/proc/{pid}").exists()
    if outlived(pid, 10):
        pytest.fail("the plugin outlived the engine that started it")


def test_pack_then_install_carries_engine_and_plugin_with_a_checked_sha256(
    isolated_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_engine()
    fake_plugin()
    archive, digest = provider.pack(tmp_path / "dist")
    assert Path(f"{archive}.sha256").read_text() == f"{digest}  {archive.name}\n"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert f"pulumi/v{PULUMI_VERSION}/bin/pulumi" in names
    assert f"providers/openstack/v{OPENSTACK_PROVIDER_VERSION}/bin/.complete" in names

    site = tmp_path / "site-cache"
    monkeypatch.setenv("MIGRATE_CACHE_DIR", str(site))
    assert provider.find_provider() is None and not build.is_complete()
    assert main(["install", str(archive)]) == 0
    assert build.is_complete()
    assert provider.find_provider() == site / (
        f"providers/openstack/v{OPENSTACK_PROVIDER_VERSION}/bin/{provider.PLUGIN_FILE}")
    assert provider.reported_version(provider.find_provider()) == OPENSTACK_PROVIDER_VERSION


def test_install_refuses_a_damaged_archive_or_one_without_checksum(
    isolated_cache: Path, tmp_path: Path
) -> None:
    fake_engine()
    fake_plugin()
    archive, _digest = provider.pack(tmp_path / "dist")
    with archive.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(GuardRefused, match="expected"):
        provider.install_archive(archive)
    Path(f"{archive}.sha256").unlink()
    with pytest.raises(GuardRefused, match="no checksum"):
        provider.install_archive(archive)
    assert main(["install", str(archive), "--sha256", "0" * 64]) != 0


def test_pack_without_a_built_plugin_says_how_to_build_it(
    isolated_cache: Path, tmp_path: Path
) -> None:
    fake_engine()
    with pytest.raises(EnvironmentNotReady, match="provider plugin") as caught:
        provider.pack(tmp_path / "dist")
    assert "make provider" in (caught.value.hint or "")


def test_a_complete_plugin_needs_no_go(
    isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = fake_plugin()
    monkeypatch.setattr(provider, "find_go", lambda: None)
    assert provider.build_provider(progress=lambda _line: None) == plugin
    assert main(["build-provider"]) == 0


def test_install_refuses_entries_outside_the_cache(isolated_cache: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="../outside")
    digest = provider.sha256_of(archive)
    with pytest.raises(GuardRefused, match="unexpected entry"):
        provider.install_archive(archive, digest)
    assert not (isolated_cache.parent / "outside").exists()


def test_a_failed_build_step_shows_the_log_tail_and_says_make_provider(tmp_path: Path) -> None:
    log = provider.provider_log(tmp_path / "build.log", progress=lambda _line: None)
    with pytest.raises(EnvironmentNotReady, match="OpenStack provider plugin failed") as caught:
        log.run(["sh", "-c", "echo no-such-module >&2; exit 1"], cwd=tmp_path,
                env={"PATH": "/usr/bin:/bin"})
    assert "no-such-module" in caught.value.message
    assert "make provider" in (caught.value.hint or "")
