"""Seeding of legacy machines: determinism, scaling, realistic values, secrets, file modes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady, InvalidInput
from migrate.core.state import read_secret_in as read_secret
from migrate.rehearsal.legacy import fake, units
from migrate.rehearsal.legacy.seed import (
    HostSeed,
    build_host_seeds,
    expected_digests,
    install_plan,
    seed_estate,
    write_into_root,
)
from migrate.rehearsal.legacy.tables import (
    FILLER_TABLE,
    Column,
    TableSeed,
    copy_line,
    record_text,
    table_checksum,
)
from tests.legacy.helpers import SMALL_SCALE, SeededEstate


def digest_of(seed: HostSeed) -> str:
    """One digest over every file of a seed: paths, modes, link targets and bytes."""
    total = hashlib.sha256()
    for item in seed.files:
        total.update(f"{item.path}\0{item.mode:o}\0{item.link}\0".encode())
        total.update(item.content())
    return total.hexdigest()


def test_same_manifest_gives_byte_identical_seeds(seeded_estate: SeededEstate) -> None:
    first = seeded_estate.seeds("rsj-sbcx")
    second = seeded_estate.seeds("rsj-sbcx")
    assert sorted(first) == ["db1", "web1"]
    for host in first:
        assert digest_of(first[host]) == digest_of(second[host])
        assert expected_digests(first[host]) == expected_digests(second[host])


def test_seeds_do_not_depend_on_the_process(seeded_estate: SeededEstate) -> None:
    """Another interpreter, with another hash seed, gives the same bytes."""
    script = (
        "import sys; from pathlib import Path\n"
        "from migrate.core.loader import load_estate\n"
        "from migrate.rehearsal.legacy.seed import build_host_seeds\n"
        "from tests.legacy.test_legacy_seed import digest_of\n"
        "system = load_estate(sys.argv[1]).systems['mzj-shjz']\n"
        "for seed in build_host_seeds(system, Path(sys.argv[2]), int(sys.argv[3])):\n"
        "    print(seed.host, digest_of(seed))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", script, str(seeded_estate.root),
                           str(seeded_estate.secrets_dir), str(SMALL_SCALE)],
                          capture_output=True, text=True, env=env, check=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    here = {host: digest_of(seed) for host, seed in seeded_estate.seeds("mzj-shjz").items()}
    assert dict(line.split() for line in done.stdout.splitlines()) == here


def test_different_systems_get_different_data(seeded_estate: SeededEstate) -> None:
    sbcx = expected_digests(seeded_estate.seeds("rsj-sbcx")["web1"])["files"]
    fybj = expected_digests(seeded_estate.seeds("wjw-fybj")["web1"])["files"]
    assert sbcx and fybj
    assert not set(sbcx.values()) & set(fybj.values())
    sbcx_rows = seeded_estate.seeds("rsj-sbcx")["db1"].databases[0].tables[0].rows
    qyxy_rows = seeded_estate.seeds("scj-qyxy")["db1"].databases[0].tables[0].rows
    assert sbcx_rows[:5] != qyxy_rows[:5]


def test_sizes_scale_with_declared_size(seeded_estate: SeededEstate) -> None:
    system = seeded_estate.estate.systems["rsj-sbcx"]  # 40 GB files, 12 GB database
    small = {s.host: s for s in build_host_seeds(system, seeded_estate.secrets_dir, 8192)}
    large = {s.host: s for s in build_host_seeds(system, seeded_estate.secrets_dir, 32768)}
    small_files = sum(f.size for f in small["web1"].trees["/srv/sbcx/uploads"])
    large_files = sum(f.size for f in large["web1"].trees["/srv/sbcx/uploads"])
    assert small_files == 40 * 8192 and large_files == 40 * 32768  # exactly the budget

    def copy_bytes(seed: HostSeed) -> int:
        return sum(len(copy_line(r).encode()) for t in seed.databases[0].tables for r in t.rows)

    assert 12 * 8192 <= copy_bytes(small["db1"]) < 12 * 8192 * 1.2
    assert 12 * 32768 <= copy_bytes(large["db1"]) < 12 * 32768 * 1.2
    # A larger scale extends the same data: the first rows do not change.
    assert large["db1"].databases[0].tables[0].rows[:20] == \
        small["db1"].databases[0].tables[0].rows[:20]


def test_database_size_follows_each_manifest(seeded_estate: SeededEstate) -> None:
    fybj = seeded_estate.seeds("wjw-fybj")["db1"]  # 1.5 GB
    qyxy = seeded_estate.seeds("scj-qyxy")["db1"]  # 48 GB
    size = {s.system_id: sum(f.size for f in s.files if f.path.endswith("data.sql"))
            for s in (fybj, qyxy)}
    assert 20 < size["scj-qyxy"] / size["wjw-fybj"] < 45  # 32x declared


def test_catalogue_tables_follow_the_resources(seeded_estate: SeededEstate) -> None:
    qyxy = seeded_estate.seeds("scj-qyxy")
    tables = {t.name: t for t in qyxy["db1"].databases[0].tables}
    assert sorted(tables) == ["enterprises", FILLER_TABLE, "res_4_130_001_0002"]
    assert [c.name for c in tables["enterprises"].columns] == ["统一社会信用代码", "企业名称",
                                                               "登记状态"]
    assert [c.pg_type for c in tables["res_4_130_001_0002"].columns] == ["text", "date", "text"]
    config = qyxy["web1"].services[0].config
    assert [r["path"] for r in config["resources"]] == ["/api/enterprises"]  # the database
    assert config["database"]["host"] == "192.168.40.22"  # resource is not served
    assert config["files"] == [{"name": "reports", "root": "/srv/qyxy/reports"}]
    # bdcdj: the spreadsheet resource gets no table.
    bdcdj = seeded_estate.seeds("zrj-bdcdj")["db1"].databases[0]
    assert [t.name for t in bdcdj.tables] == ["registers", FILLER_TABLE]


def test_identifiers_and_codes_carry_valid_check_digits(seeded_estate: SeededEstate) -> None:
    seed = seeded_estate.seeds("scj-qyxy")["db1"]
    tables = {t.name: t for t in seed.databases[0].tables}
    id_cards = [row[2] for row in tables[FILLER_TABLE].rows]
    codes = [row[1] for row in tables["enterprises"].rows]
    assert len(id_cards) > 50 and len(codes) > 50
    assert all(fake.valid_id_card(n) for n in id_cards)
    assert all(fake.valid_uscc(c) for c in codes)
    # The checks themselves reject a changed digit (so they can fail).
    broken = id_cards[0][:17] + ("0" if id_cards[0][17] != "0" else "1")
    assert not fake.valid_id_card(broken)
    assert not fake.valid_uscc(codes[0][:17] + ("0" if codes[0][17] != "0" else "1"))


def test_known_check_digits() -> None:
    # Published examples: GB 11643's sample number and a real company's credit code.
    assert fake.id_card_check_digit("11010519491231002") == "X"
    assert fake.uscc_check_digit("91350100M000100Y4") == "3"


def test_values_look_real() -> None:
    rng = random.Random(7)
    names = [fake.person_name(rng) for _ in range(200)]
    assert all(2 <= len(n) <= 3 and n[0] in fake.SURNAMES for n in names)
    assert len(set(names)) > 150
    assert all(fake.valid_id_card(fake.id_card_number(rng)) for _ in range(500))


def test_record_text_matches_postgresql_quoting() -> None:
    row = ("7", "张三", None, "2021-03-04 10:11:12", "", 'a"b', "x,y", "\\x0a")
    assert record_text(row) == '(7,张三,,"2021-03-04 10:11:12","","a""b","x,y","\\\\x0a")'
    table = TableSeed("t", (Column("a", "a", "string"),), rows=[("1", "x"), ("2", "y")])
    assert table.checksum() == table_checksum(list(reversed(table.rows)))  # order-free


def test_no_secret_value_outside_the_password_files(seeded_estate: SeededEstate) -> None:
    values = [v.encode() for v in seeded_estate.secret_values.values()]
    for system_id in seeded_estate.estate.systems:
        for seed in seeded_estate.seeds(system_id).values():
            for item in seed.files:
                content = item.content()
                leaked = [v for v in values if v in content]
                if item.path.startswith(units.SECRETS_DIR + "/"):
                    assert item.mode == 0o600
                    name = item.path.rsplit("/", 1)[1]
                    assert content == seeded_estate.secret_values[name].encode()
                else:
                    assert not leaked, f"a secret appears in {seed.system_id}:{item.path}"


def test_role_sql_holds_a_scram_verifier_not_the_password(seeded_estate: SeededEstate) -> None:
    seed = seeded_estate.seeds("rsj-sbcx")["db1"]
    roles = seed.file("/opt/legacy/seed/sbcx/roles.sql").content().decode()
    assert "PASSWORD 'SCRAM-SHA-256$4096:" in roles
    assert seeded_estate.secret_values["db-sbcx"] not in roles
    # RFC 7677's test vector: user "user", password "pencil".
    salt = __import__("base64").b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = units.scram_verifier("pencil", salt)
    assert verifier == ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")


def test_missing_secret_is_reported_without_a_value(seeded_estate: SeededEstate) -> None:
    (seeded_estate.secrets_dir / "db-sbcx").unlink()
    with pytest.raises(EnvironmentNotReady) as caught:
        seeded_estate.seeds("rsj-sbcx")
    assert "db-sbcx" in caught.value.message
    assert read_secret(seeded_estate.secrets_dir, "secret://db-fybj") == \
        seeded_estate.secret_values["db-fybj"]


def test_unknown_workload_host_is_invalid_input(seeded_estate: SeededEstate) -> None:
    system = seeded_estate.estate.systems["rsj-sbcx"]
    data = system.model_dump(by_alias=True)
    data["workload"]["files"][0]["host"] = "nas9"
    broken = type(system).model_validate(data)
    with pytest.raises(InvalidInput, match="problem"):
        build_host_seeds(broken, seeded_estate.secrets_dir, SMALL_SCALE)


def test_units_and_config_are_wired_together(seeded_estate: SeededEstate) -> None:
    seeds = seeded_estate.seeds("rsj-sbcx")
    web, db = seeds["web1"], seeds["db1"]
    assert web.units_enabled == ["sbcx-web.service"]
    assert db.units_enabled == ["legacy-seed.service", "postgresql.service"]
    unit = web.file("/etc/systemd/system/sbcx-web.service").content().decode()
    assert "ExecStart=/usr/bin/python3 /opt/legacy/app.py --config /etc/legacy/sbcx-web.json" \
        in unit
    assert "User=sbcx-web" in unit and "After=" in unit and "postgresql.service" in unit
    assert "LoadCredential=db-password:/etc/legacy/secrets/db-sbcx" in unit
    config = json.loads(web.file("/etc/legacy/sbcx-web.json").content())
    assert config["listen"] == {"address": "0.0.0.0", "port": 8080}
    assert config["database"]["password_file"] == "/etc/legacy/secrets/db-sbcx"
    assert "password" not in config["database"]
    assert "sbcx-web" in web.file(units.SYSUSERS_FILE).content().decode()
    script = db.file(units.SEED_SCRIPT).content().decode()
    assert f"seed_database sbcx {db.databases[0].digest}" in script
    hba = db.file(units.HBA_FILE).content().decode()
    assert "192.168.10.21/32" in hba and "trust" not in hba


def test_addresses_can_be_overridden(seeded_estate: SeededEstate) -> None:
    system = seeded_estate.estate.systems["rsj-sbcx"]
    seeds = build_host_seeds(system, seeded_estate.secrets_dir, SMALL_SCALE,
                             addresses={"db1": "10.250.7.22", "web1": "10.250.7.21"})
    web = next(s for s in seeds if s.host == "web1")
    assert web.services[0].config["database"]["host"] == "10.250.7.22"
    assert web.address == "10.250.7.21"


def test_write_into_root_writes_the_tree_with_modes(seeded_estate: SeededEstate,
                                                   tmp_path: Path) -> None:
    seeds = seeded_estate.seeds("rsj-sbcx")
    root = tmp_path / "upper"
    old_umask = os.umask(0o077)  # a strict umask must not make config unreadable
    try:
        for seed in seeds.values():
            write_into_root(seed, root)
    finally:
        os.umask(old_umask)
    mode = lambda p: stat.S_IMODE((root / p.lstrip("/")).lstat().st_mode)  # noqa: E731
    assert mode("/etc/legacy/secrets/db-sbcx") == 0o600
    assert mode("/etc/legacy") == 0o755 and mode("/etc/legacy/sbcx-web.json") == 0o644
    assert mode("/opt/legacy/app.py") == 0o755 and mode(units.SEED_SCRIPT) == 0o755
    assert mode("/srv/sbcx/uploads") == 0o755
    link = root / "etc/systemd/system/multi-user.target.wants/sbcx-web.service"
    assert os.readlink(link) == "/etc/systemd/system/sbcx-web.service"
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/postgresql.service") \
        == "/lib/systemd/system/postgresql.service"
    written = {str(p.relative_to(root)) for p in root.rglob("*")
               if p.is_file() and not p.is_symlink()}  # links point into the machine
    expected = {f.path.lstrip("/") for s in seeds.values() for f in s.files
                if f.link is None and not f.path.endswith("/")}
    assert written == expected
    digests = expected_digests(seeds["web1"])["files"]
    assert len(digests) > 3
    for path, sha in digests.items():
        assert hashlib.sha256((root / path.lstrip("/")).read_bytes()).hexdigest() == sha
    # Idempotent: a second write changes nothing and leaves no temporary files.
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    write_into_root(seeds["web1"], root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_system_without_workload_gets_an_empty_seed(seeded_estate: SeededEstate) -> None:
    seed = seeded_estate.seeds("gaj-rkhc")["srv1"]
    assert seed.files == [] and expected_digests(seed)["tables"] == {}


def test_install_plan_and_whole_estate(seeded_estate: SeededEstate) -> None:
    seeds = seed_estate(seeded_estate.estate, scale=4096)
    assert sorted(seeds) == sorted(seeded_estate.estate.systems)
    hosts = {(sid, s.host) for sid, found in seeds.items() for s in found}
    assert ("zrj-bdcdj", "file1") in hosts and len(hosts) == 17
    plan = install_plan(next(s for s in seeds["rsj-sbcx"] if s.host == "web1"))
    assert plan[0].startswith("write file tree /srv/sbcx/uploads: ")
    assert any("sbcx-web.service serves /api/insured on port 8080" in step for step in plan)
