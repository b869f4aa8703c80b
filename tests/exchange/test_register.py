"""migrate register against a real platform server (loopback, verified TLS)."""

from __future__ import annotations

import uuid

from migrate.stages.register import endpoint_of, register_catalogue
from tests.exchange.conftest import resource_doc
from tests.factories import system


def manifest(system_id: str, codes: list[str]):
    resources = [resource_doc(code, interface={"service": "web", "path": "/api/insured"})
                 for code in codes]
    return system(system_id, exchange={"app_key": system_id,
                                       "app_secret": f"secret://exchange-{system_id}",
                                       "resources": resources})


PLANNED = {"services": [{"name": "web", "instance": "app", "port": 8080, "health": "/health",
                         "source_host": "web1"}],
           "instances": [{"name": "app", "address": "10.20.53.159"}],
           "source_hosts": [{"name": "web1", "address": "192.168.10.21"}]}


def app_client(server, system_id: str):
    with server.admin() as admin:
        created = admin.create_app(system_id, app_key=system_id)
    return server.app(created["app_key"], created["app_secret"])


def test_endpoint_is_the_service_the_catalogue_names_on_its_target_instance():
    assert endpoint_of(manifest("rsj-abc", []), PLANNED) == ("http://10.20.53.159:8080",
                                                               "/health")


def test_before_the_cutover_the_endpoint_is_the_service_on_its_source_host():
    assert endpoint_of(manifest("rsj-abc", []), PLANNED, "source") == (
        "http://192.168.10.21:8080", "/health")


def test_the_endpoint_switches_to_the_target_and_back(auto_server):
    system_id = f"rsj-{uuid.uuid4().hex[:8]}"
    with app_client(auto_server, system_id) as client:
        before = register_catalogue(manifest(system_id, []), PLANNED, client, "source")
        after = register_catalogue(manifest(system_id, []), PLANNED, client, "target")
        assert after["endpoint"]["changed"] is True
        assert client.get_system(system_id)["base_url"] == "http://10.20.53.159:8080"
        back = register_catalogue(manifest(system_id, []), PLANNED, client, "source")
        assert back["endpoint"]["changed"] is True
        assert client.get_system(system_id)["base_url"] == before["endpoint"]["base_url"]


def test_register_links_every_resource_and_a_second_run_changes_nothing(auto_server):
    system_id = f"rsj-{uuid.uuid4().hex[:8]}"
    codes = [f"3/110/{n:03d}/{uuid.uuid4().int % 10000:04d}" for n in (1, 2)]
    with app_client(auto_server, system_id) as client:
        first = register_catalogue(manifest(system_id, codes), PLANNED, client)
        assert first["changed"] is True
        assert [r["state"] for r in first["resources"]] == ["linked", "linked"]
        assert first["resources"][0]["state_zh"] == "已挂接"
        assert client.get_system(system_id)["base_url"] == "http://10.20.53.159:8080"
        second = register_catalogue(manifest(system_id, codes), PLANNED, client)
        assert second["changed"] is False and second["linked"] == 2


def test_under_review_resources_are_reported_as_pending(review_server):
    system_id = f"mzj-{uuid.uuid4().hex[:8]}"
    with app_client(review_server, system_id) as client:
        result = register_catalogue(manifest(system_id, [f"3/120/002/{uuid.uuid4().int % 9999}"]),
                                    PLANNED, client)
    assert [r["state_zh"] for r in result["resources"]] == ["待审核"]
    assert result["linked"] == 0
