"""Every defect gets a test: exit 2, file, line and field named, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import edit, line_number


def rejected(run_cli, estate: Path, *fragments: str, command: str = "plan") -> str:
    result = run_cli(command, estate)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert not (estate / ".migrate").exists(), "invalid input must change nothing"
    return result.stderr


def where(estate: Path, name: str, needle: str, field: str) -> str:
    path = estate / "systems" / name if name != "migrate.yaml" else estate / name
    return f"{path}:{line_number(path, needle)}: {field}"


def test_unknown_field_suggests_the_close_name(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "protection_level: 2", "protecton_level: 2")
    err = rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "protecton_level",
                                          "protecton_level"), "unknown field 'protecton_level'")
    assert "did you mean 'protection_level'?" in err


def test_missing_required_field(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml",
         "function: 孕产妇和儿童保健档案、出生医学证明签发管理\n", "")
    rejected(run_cli, estate, f"{estate}/systems/wjw-fybj.yaml:1: function: required field")


def test_value_outside_an_enumeration_lists_the_valid_ones(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "classification: non_classified",
         "classification: secret")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "classification:",
                                    "classification"), "'secret' is not allowed",
             "'non_classified' or 'classified'")


def test_nested_field_path_with_list_index(run_cli, estate):
    edit(estate / "systems/zrj-bdcdj.yaml", "{from: web, to: file, port: 2049}",
         "{from: web, to: file, port: 70000}")
    rejected(run_cli, estate, where(estate, "zrj-bdcdj.yaml", "port: 70000",
                                    "target.flows[2].port"), "less than or equal to 65535")


def test_duplicate_system_ids_name_both_files(run_cli, estate):
    copy = estate / "systems" / "nested" / "copy.yaml"
    copy.parent.mkdir()
    copy.write_text((estate / "systems/wjw-fybj.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    err = rejected(run_cli, estate, "system id 'wjw-fybj' is also used by")
    assert f"{estate}/systems/nested/copy.yaml:2: id" in err
    assert f"{estate}/systems/wjw-fybj.yaml:2: id" in err


def test_unknown_depends_on(run_cli, estate):
    edit(estate / "systems/mzj-shjz.yaml", "depends_on: [rsj-sbcx]", "depends_on: [rsj-sbxc]")
    rejected(run_cli, estate, where(estate, "mzj-shjz.yaml", "depends_on:", "depends_on[0]"),
             "unknown system 'rsj-sbxc'", "did you mean 'rsj-sbcx'?")


def test_dependency_cycle_names_every_system_in_it(run_cli, estate):
    edit(estate / "systems/sjj-tyrz.yaml", "depends_on: []", "depends_on: [mzj-shjz]")
    rejected(run_cli, estate, where(estate, "mzj-shjz.yaml", "depends_on:", "depends_on[0]"),
             "dependency cycle between systems: mzj-shjz, rsj-sbcx, sjj-tyrz")


def test_depending_on_itself_is_a_cycle(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml", "depends_on: []", "depends_on: [wjw-fybj]")
    rejected(run_cli, estate, "dependency cycle between systems: wjw-fybj")


def test_flow_naming_an_unknown_instance(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "{from: web, to: db, port: 5432}",
         "{from: web, to: database, port: 5432}")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "to: database",
                                    "target.flows[1].to"), "unknown flow endpoint 'database'",
             "db, exchange, internet, ops, web")


def test_replaces_naming_an_unknown_source_host(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "replaces: [db1]", "replaces: [db2]")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "replaces: [db2]",
                                    "target.instances[1].replaces[0]"),
             "unknown source host 'db2'", "source.hosts names: db1, web1")


def test_service_on_an_unknown_host(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "{name: sbcx-web, host: web1,",
         "{name: sbcx-web, host: web9,")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "host: web9",
                                    "workload.services[0].host"), "unknown source host 'web9'")


def test_invalid_address(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "address: 192.168.10.22", "address: 192.168.10.322")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "192.168.10.322",
                                    "source.hosts[1].address"), "not a valid IPv4 address")


def test_rewrites_outside_configuration_and_unknown_placeholders(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml", "file: /etc/legacy/fybj-web.json",
         "file: /etc/other/fybj-web.json")
    edit(estate / "systems/wjw-fybj.yaml", 'new: \'"host": "${db}"\'', 'new: \'"host": "${dbx}"\'')
    edit(estate / "systems/wjw-fybj.yaml", "{host: web1, path: /opt/legacy/app.py}",
         "{host: web9, path: /opt/legacy/app.py}")
    edit(estate / "systems/rsj-sbcx.yaml", "vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12}",
         "vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12, packages: [Bad_Name]}")
    rejected(run_cli, estate,
             where(estate, "wjw-fybj.yaml", "file: /etc/other", "workload.rewrites[0].file"),
             "/etc/other/fybj-web.json is not under a configuration path of host 'web1'",
             "workload.rewrites[0].new: placeholder ${dbx} names no target instance",
             where(estate, "wjw-fybj.yaml", "host: web9", "workload.configuration[0].host"),
             "unknown source host 'web9'",
             where(estate, "rsj-sbcx.yaml", "Bad_Name", "target.instances[0].packages[0]"))


def test_two_source_hosts_with_one_address(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "address: 192.168.10.22", "address: 192.168.10.21")
    rejected(run_cli, estate, "address 192.168.10.21 is also used by rsj-sbcx.web1")


def test_overlapping_zone_cidrs(run_cli, estate):
    edit(estate / "migrate.yaml", "egov_extranet: {cidr: 10.20.0.0/16}",
         "egov_extranet: {cidr: 10.10.128.0/17}")
    rejected(run_cli, estate, where(estate, "migrate.yaml", "10.10.128.0/17",
                                    "cloud.zones.egov_extranet.cidr"),
             "overlaps cloud.zones.internet.cidr (10.10.0.0/16)")


def test_cidr_with_host_bits(run_cli, estate):
    edit(estate / "migrate.yaml", "ops_network: 10.30.0.0/24", "ops_network: 10.30.0.7/24")
    rejected(run_cli, estate, where(estate, "migrate.yaml", "ops_network", "cloud.ops_network"),
             "has host bits set")


def test_duplicate_catalogue_resource_codes(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml", "code: 3/140/005/0001", "code: 3/110/001/0001")
    err = rejected(run_cli, estate, where(estate, "wjw-fybj.yaml", "code: 3/110/001/0001",
                                          "exchange.resources[0].code"),
                   "catalogue resource code 3/110/001/0001 is also registered in")
    assert f"{estate}/systems/rsj-sbcx.yaml:" in err


def test_port_opened_to_internet_outside_the_internet_zone(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "{from: exchange, to: web, port: 8080}",
         "{from: internet, to: web, port: 8080}")
    rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "from: internet",
                                    "target.flows[0].from"),
             "port 8080 opened to 'internet' in zone 'egov_extranet'")


def test_literal_secret_is_refused_and_never_echoed(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "password: secret://db-sbcx",
         "password: Hunter2-Sbcx!")
    err = rejected(run_cli, estate, where(estate, "rsj-sbcx.yaml", "Hunter2",
                                          "workload.databases[0].password"),
                   "a literal secret is not allowed here")
    assert "Hunter2" not in err


def test_literal_secret_is_not_echoed_in_json_either(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "app_secret: secret://exchange-rsj-sbcx",
         "app_secret: 8f3kq-LEAKED")
    result = run_cli("validate", estate, "--output", "json")
    assert result.code == 2
    assert "LEAKED" not in result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [p["path"] for p in problems] == ["exchange.app_secret"]


def test_unsupported_schema_version(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "schema_version: 1", "schema_version: 2")
    rejected(run_cli, estate, f"{estate}/systems/rsj-sbcx.yaml:1: schema_version",
             "schema_version 2 is not supported", "reads schema_version: 1")


def test_empty_file(run_cli, estate):
    (estate / "systems/empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    rejected(run_cli, estate, f"{estate}/systems/empty.yaml:1: the file is empty")


def test_unparsable_file(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "  usage_scope: public", "  usage_scope: [public")
    rejected(run_cli, estate, f"{estate}/systems/rsj-sbcx.yaml:", "not valid YAML")


def test_duplicate_yaml_key(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "protection_level: 2",
         "protection_level: 2\nprotection_level: 1")
    rejected(run_cli, estate, f"{estate}/systems/rsj-sbcx.yaml:8: protection_level",
             "duplicate key 'protection_level'")


def test_unknown_image_and_no_fitting_flavor(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml",
         "{name: db,  replaces: [db1],  vcpu: 2, memory_gb: 4, disk_gb: 100, image: debian-12}",
         "{name: db,  replaces: [db1],  vcpu: 16, memory_gb: 4, disk_gb: 100, image: centos-7}")
    rejected(run_cli, estate, "target.instances[1].image: unknown image 'centos-7'",
             "target.instances[1].vcpu: no flavor fits 16 vCPU / 4 GB")


def test_conditional_share_needs_a_condition(run_cli, estate):
    edit(estate / "systems/wjw-fybj.yaml",
         "      share_condition: 仅限公安户籍、医保参保登记和社保卡办理时核验\n", "")
    rejected(run_cli, estate, "exchange.resources[0].share_condition: required when "
             "share_type is conditional")


def test_every_problem_of_every_file_at_once(run_cli, estate):
    edit(estate / "systems/rsj-sbcx.yaml", "protection_level: 2", "protection_level: 7")
    edit(estate / "systems/wjw-fybj.yaml", "usage_scope: cross_department",
         "usage_scope: city")
    edit(estate / "migrate.yaml", "target: sandbox", "target: aliyun")
    result = run_cli("validate", estate, "--output", "json")
    assert result.code == 2
    paths = {(Path(p["file"]).name, p["path"]) for p in json.loads(result.stdout)["problems"]}
    assert paths == {("rsj-sbcx.yaml", "protection_level"),
                     ("wjw-fybj.yaml", "census.usage_scope"),
                     ("migrate.yaml", "cloud.target")}


def test_not_an_estate_folder(run_cli, tmp_path):
    result = run_cli("plan", tmp_path / "nowhere")
    assert result.code == 2
    assert "not an estate folder" in result.stderr


def test_missing_estate_settings(run_cli, estate):
    (estate / "migrate.yaml").unlink()
    rejected(run_cli, estate, f"{estate}/migrate.yaml: missing migrate.yaml")


def test_migrating_system_without_exchange_section(run_cli, estate):
    text = (estate / "systems/wjw-fybj.yaml").read_text(encoding="utf-8")
    start, end = text.index("exchange:\n"), text.index("cutover:")
    (estate / "systems/wjw-fybj.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    run = run_cli("validate", estate)
    assert run.code == 0, "an exchange section is only needed by systems that migrate"
    rejected(run_cli, estate, "wjw-fybj.yaml:1: exchange: required: every system that moves")


def test_platform_machine_that_is_no_machine_name(run_cli, estate):
    for bad in ("Exchange", "exchange-platform", "-x", "x-", "ex change"):
        edit(estate / "migrate.yaml", "  allowed_networks: []\n",
             f"  allowed_networks: []\n  platform_machine: {bad!r}\n")
        err = rejected(run_cli, estate, where(estate, "migrate.yaml", "platform_machine",
                                              "sandbox.platform_machine"),
                       "not a sandbox machine name", f"got {bad!r}")
        assert "Traceback" not in err
        edit(estate / "migrate.yaml", f"  platform_machine: {bad!r}\n", "")
