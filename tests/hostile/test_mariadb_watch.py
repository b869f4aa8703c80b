"""Discovery's watch of MariaDB's tables (probes.mysql_sample_command): the statements the
server makes from information_schema, whatever the names they hold, reach the second client
as they are, in each of the two samples, and never the shell. Run here in bash and in sh (sudo's
shell) with a fake ``mariadb`` client that prints hostile statements and records what it gets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migrate.adapters.access import Login, SourceSession
from migrate.stages.discovery import probes

# what a server with such names would make: a backtick, $(...), a quote, a newline and the
# probe's own heredoc end on a line of its own
NAME = "x`$(touch PWNED)`'\nMIGRATE_SQL_END\ntouch PWNED\n"
GENERATED = (f"SELECT 'rows', 'shop', {NAME!r}, COUNT(*) FROM `shop`.`{NAME}`; "
             f"CHECKSUM TABLE `shop`.`{NAME}`;")

FAKE_CLIENT = """#!/bin/sh
case " $* " in
  *" --raw "*) cat > "$HERE/generator.sql"; printf '%s\\n' "$GENERATED" ;;
  *) cat > "$HERE/watched.sql" ;;
esac
"""


@pytest.mark.parametrize("sample", ["before", "after"])
@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_server_made_statements_reach_the_client_as_they_are(tmp_path: Path, shell: str,
                                                                 sample: str) -> None:
    client = tmp_path / "bin" / "mariadb"
    client.parent.mkdir()
    client.write_text(FAKE_CLIENT)
    client.chmod(0o755)
    session = SourceSession(Login("127.0.0.1", "root", None), client=None)  # type: ignore[arg-type]
    command = probes.mysql_sample_command(session, sample)
    done = subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=30,
                          check=False, cwd=tmp_path,
                          env={"PATH": f"{client.parent}:/usr/bin:/bin", "HERE": str(tmp_path),
                               "GENERATED": GENERATED})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "PWNED").exists() and not Path("/PWNED").exists()
    assert (tmp_path / "generator.sql").read_text() == probes.MYSQL_WATCH_STATEMENTS_SQL + ";\n"
    assert (tmp_path / "watched.sql").read_text() == (
        f"{probes.MYSQL_WATCH_SESSION}\nSELECT '### {sample}';\n{GENERATED}\n")
