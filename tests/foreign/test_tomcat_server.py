"""The third-party Java application on Tomcat and MariaDB the fixture builds outside
``sandbox up``: a WAR deployed by hand, a JDBC URL naming the server's address, uploads on
disk; it answers from its database and writes its uploads folder."""

from __future__ import annotations

import pytest

from tests.foreign import server, tomcat
from tests.foreign.tomcat import TomcatServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_the_application_answers_with_projects_from_its_database(tomcat_server: TomcatServer):
    print(f"\ntomcat server ready in {tomcat_server.setup_s:.1f} s"
          f" ({'prepared overlay' if tomcat_server.prepared else 'built from packages'}):"
          f" {tomcat_server.phases}")
    status, body = server.get(tomcat_server.url("/"))
    assert status == 200, body[:500]
    assert tomcat_server.marker in body and tomcat.TITLE in body
    titles = tomcat_server.sql("SELECT title FROM projects ORDER BY id").splitlines()
    assert len(titles) == 4 and all(title in body for title in titles)


def test_it_logs_in_as_its_own_user_on_the_servers_address(tomcat_server: TomcatServer):
    context = tomcat_server.ssh(f"cat {tomcat_server.context_file}")
    assert f"jdbc:mariadb://{tomcat_server.address}:3306/{tomcat_server.database}" in context
    password = tomcat_server.db_password_file.read_text().strip()
    assert f'password="{password}"' in context
    users = tomcat_server.sql("SELECT user, host FROM mysql.user WHERE user = 'xmsb'")
    assert users.split() == [tomcat_server.user, tomcat_server.address]
    assert tomcat_server.ssh(f"stat -c '%U:%G %a' {tomcat_server.context_file}").strip() == (
        "root:tomcat 640")
    # bind-address names the server's address (in the sandbox MariaDB starts before the
    # address is set and listens on every address instead; the JDBC URL reaches it either way)
    assert tomcat_server.sql("SELECT @@bind_address").strip() == tomcat_server.address


def test_uploads_go_to_disk_and_into_the_database(tomcat_server: TomcatServer):
    name = "test-upload.txt"
    status, body = tomcat.post(tomcat_server.url(f"/upload.jsp?project=XM2026-002&name={name}"),
                               "申报材料".encode() * 100)
    assert status == 200 and body.strip() == "stored 1200", body[:500]
    try:
        owner = tomcat_server.ssh(f"stat -c '%U %s' {tomcat_server.uploads}/{name}")
        assert owner.split() == ["tomcat", "1200"]
        count = tomcat_server.sql(f"SELECT count(*) FROM attachments WHERE file_name = '{name}'")
        assert count.strip() == "1"
        refused, _ = tomcat.post(tomcat_server.url("/upload.jsp?project=XM2026-002&name=../x"),
                                 b"x")
        assert refused == 400
    finally:
        tomcat_server.ssh(f"rm -f {tomcat_server.uploads}/{name}")
        tomcat_server.sql(f"DELETE FROM attachments WHERE file_name = '{name}'")


def test_it_runs_debians_tomcat_and_mariadb(tomcat_server: TomcatServer):
    versions = tomcat_server.ssh("dpkg-query -W -f '${Package} ${Version}\\n'"
                                 " tomcat10 mariadb-server libmariadb-java")
    assert {line.split()[0] for line in versions.splitlines()} == {
        "libmariadb-java", "mariadb-server", "tomcat10"}
    units = tomcat_server.ssh("systemctl is-enabled mariadb tomcat10 xmsb-cleanup.timer")
    assert units.split() == ["enabled"] * 3
    war = tomcat_server.ssh(f"python3 -m zipfile -l {tomcat_server.war}")
    assert "index.jsp" in war and "WEB-INF/web.xml" in war
