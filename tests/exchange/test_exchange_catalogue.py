"""Catalogue registration (编目/挂接): 未挂接 -> 待审核 -> 已挂接, with and without auto-approve."""

from __future__ import annotations

import uuid

import pytest

from migrate.adapters.exchange import ExchangeHTTPError


def state_of(resource: dict) -> tuple[str, str]:
    return resource["state"], resource["state_label"]


def test_system_registration_is_an_idempotent_put(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    first = app.client.get_system(app.system_id)
    assert first["department"] == {"code": "rsj", "name": "市人力资源和社会保障局"}
    assert first["base_url"] == "http://127.0.0.1:9"
    updated = app.client.register_system(
        app.system_id,
        name="社会保险查询系统",
        department_code="rsj",
        department_name="市人力资源和社会保障局",
        base_url="https://127.0.0.1:8443/",
        health_path="/healthz",
    )
    assert updated["base_url"] == "https://127.0.0.1:8443"
    assert updated["health_path"] == "/healthz"
    assert updated["created_at"] == first["created_at"]


def test_system_registration_validates_the_url(auto_server, enrolled) -> None:
    app = enrolled(auto_server)
    with pytest.raises(ExchangeHTTPError) as caught:
        app.client.register_system(
            app.system_id,
            name="x",
            department_code="rsj",
            department_name="x",
            base_url="ftp://user:pw@host/",
        )
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    assert any(detail.startswith("base_url") for detail in caught.value.details)


def test_manual_review_state_machine(review_server, enrolled, make_resource) -> None:
    app = enrolled(review_server)
    doc = make_resource()
    code = doc["code"]

    submitted = app.client.put_resource(doc)
    assert state_of(submitted) == ("pending_review", "待审核")
    assert submitted["key"] == code.replace("/", ".")
    assert submitted["items"] == doc["items"]
    with pytest.raises(ExchangeHTTPError) as caught:
        app.client.publish_record(code, {"x": 1})
    assert (caught.value.status, caught.value.code) == (409, "resource_not_linked")

    with review_server.admin() as admin:
        pending = [r["code"] for r in admin.list_all_resources(state="pending_review")]
        assert code in pending
        assert state_of(admin.approve_resource(code)) == ("linked", "已挂接")
        assert state_of(admin.approve_resource(code)) == ("linked", "已挂接")  # idempotent

    again = app.client.put_resource(doc)
    assert again["changed"] is False
    assert state_of(again) == ("linked", "已挂接")

    changed = app.client.put_resource({**doc, "update_cycle": "realtime"})
    assert changed["changed"] is True
    assert state_of(changed) == ("pending_review", "待审核")


def test_unregister_and_register_again(review_server, enrolled, make_resource) -> None:
    app = enrolled(review_server)
    doc = make_resource()
    app.client.put_resource(doc)
    with review_server.admin() as admin:
        admin.approve_resource(doc["code"])

    removed = app.client.delete_resource(doc["code"])
    assert state_of(removed) == ("unlinked", "未挂接")
    assert removed["unregistered_at"] is not None
    assert state_of(app.client.delete_resource(doc["code"])) == ("unlinked", "未挂接")
    assert state_of(app.client.get_resource(doc["code"])) == ("unlinked", "未挂接")
    with review_server.admin() as admin, pytest.raises(ExchangeHTTPError, match="invalid_state"):
        admin.approve_resource(doc["code"])

    back = app.client.put_resource(doc)
    assert state_of(back) == ("pending_review", "待审核")
    assert back["unregistered_at"] is None


def test_auto_approve_links_right_after_review(auto_server, enrolled, make_resource) -> None:
    app = enrolled(auto_server)
    doc = make_resource()
    linked = app.client.put_resource(doc)
    assert state_of(linked) == ("linked", "已挂接")
    assert linked["submitted_at"] and linked["linked_at"]
    assert state_of(app.client.delete_resource(doc["code"])) == ("unlinked", "未挂接")
    assert state_of(app.client.put_resource(doc)) == ("linked", "已挂接")


def test_list_shows_only_the_apps_resources(auto_server, enrolled, make_resource) -> None:
    first, second = enrolled(auto_server), enrolled(auto_server)
    mine = [make_resource(), make_resource()]
    for doc in mine:
        first.client.put_resource(doc)
    theirs = make_resource()
    second.client.put_resource(theirs)
    first.client.delete_resource(mine[1]["code"])

    listed = {r["code"]: r["state"] for r in first.client.list_resources()}
    assert listed == {mine[0]["code"]: "linked", mine[1]["code"]: "unlinked"}
    linked = [r["code"] for r in first.client.list_resources(state="linked")]
    assert linked == [mine[0]["code"]]


def test_another_system_can_neither_see_nor_take_a_resource(
    auto_server, enrolled, make_resource
) -> None:
    owner, other = enrolled(auto_server), enrolled(auto_server)
    doc = make_resource()
    owner.client.put_resource(doc)
    with pytest.raises(ExchangeHTTPError) as caught:
        other.client.get_resource(doc["code"])
    assert caught.value.status == 404
    with pytest.raises(ExchangeHTTPError) as caught:
        other.client.put_resource(doc)
    assert (caught.value.status, caught.value.code) == (409, "resource_owned_elsewhere")


def test_invalid_resource_lists_every_problem(auto_server, enrolled, make_resource) -> None:
    app = enrolled(auto_server)
    bad = make_resource(format="pdf", share_condition=None, items=[])
    del bad["summary"]
    with pytest.raises(ExchangeHTTPError) as caught:
        app.client.put_resource(bad)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    fields = {detail.split(":")[0] for detail in caught.value.details}
    assert fields == {"format", "share_condition", "items", "summary"}


def test_code_in_body_must_match_the_url(auto_server, enrolled, make_resource) -> None:
    app = enrolled(auto_server)
    doc = make_resource(code="3/110/001/0001")
    path = "/api/v1/resources/3.110.001.0002"
    with pytest.raises(ExchangeHTTPError, match="differs"):
        app.client.request("PUT", path, doc)


def test_resources_need_a_registered_system(auto_server, make_resource) -> None:
    with auto_server.admin() as admin:
        created = admin.create_app(f"sys-{uuid.uuid4().hex[:10]}")
    client = auto_server.app(created["app_key"], created["app_secret"])
    with client, pytest.raises(ExchangeHTTPError) as caught:
        client.put_resource(make_resource())
    assert (caught.value.status, caught.value.code) == (404, "system_not_registered")
