"""Fixtures for servers the sandbox did not make: a bridge in 192.168.177.0/25, the package
mirror on its gateway, and a department server with a real third-party application
(MediaWiki from Debian bookworm on PostgreSQL) built there from packages (tests/foreign/
server.py). Skipped with the reason when not root or a tool is missing; everything they
start is stopped and removed by its own name afterwards, also when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady
from migrate.rehearsal.sandbox import images, mirror
from migrate.rehearsal.sandbox.host import find_tool, require_host
from tests.foreign import server, tomcat, world


@pytest.fixture(scope="session")
def foreign_host() -> Path:
    """Root, the sandbox tools and apt-cacher-ng; the legacy image (built once if missing)."""
    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if find_tool(mirror.DAEMON) is None:
        pytest.skip("needs apt-cacher-ng for the package mirror: run 'make host'")
    return images.ensure_image("legacy")


@pytest.fixture(scope="session")
def foreign_net(foreign_host: Path) -> Iterator[world.Net]:
    with world.bridge() as net:
        yield net


@pytest.fixture(scope="session")
def foreign_mirror(foreign_net: world.Net) -> Iterator[mirror.Mirror]:
    with world.package_mirror(foreign_net) as running:
        yield running


@pytest.fixture(scope="session")
def foreign_root(foreign_net: world.Net) -> Iterator[Path]:
    """The sandbox root of the foreign machines (their overlays, keys, console logs); what a
    killed session left there is destroyed first."""
    with world.machines_root() as root:
        yield root


@pytest.fixture(scope="session")
def foreign_access(tmp_path_factory: pytest.TempPathFactory) -> world.Access:
    """The host's ssh access to foreign machines: a key made here, real host keys."""
    folder = tmp_path_factory.mktemp("foreign-access")
    key, _ = world.operator_key(folder)
    return world.Access(key, folder / "known_hosts")


@pytest.fixture(scope="session")
def foreign_server(foreign_host: Path, foreign_net: world.Net, foreign_mirror: mirror.Mirror,
                   foreign_root: Path, foreign_access: world.Access
                   ) -> Iterator[server.ForeignServer]:
    """A department wiki server at 192.168.177.10: MediaWiki 1.39 from bookworm's packages
    on PostgreSQL 15, nginx and php-fpm, configured by hand the way its admin did; answering
    over HTTP with a page that lives in its database. Built once per recipe and kept
    (/var/cache/migrate/foreign), so later sessions boot the prepared server."""
    with server.department_wiki(foreign_net, foreign_mirror, foreign_root,
                                foreign_access) as built:
        yield built


@pytest.fixture(scope="session")
def tomcat_server(foreign_host: Path, foreign_net: world.Net, foreign_mirror: mirror.Mirror,
                  foreign_root: Path, foreign_access: world.Access
                  ) -> Iterator[tomcat.TomcatServer]:
    """A department's Java application at 192.168.177.11: a WAR on Debian's tomcat10 with
    MariaDB, set up by hand (tests/foreign/tomcat.py); answering over HTTP with data from its
    database. Built once per recipe and kept, as the wiki is."""
    with tomcat.department_tomcat(foreign_net, foreign_mirror, foreign_root,
                                  foreign_access) as built:
        yield built
