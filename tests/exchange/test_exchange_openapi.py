"""docs/exchange-openapi.yaml is valid OpenAPI 3.1 and describes exactly what server.py serves."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import openapi_schema_validator
import openapi_spec_validator
import pytest
import referencing
import referencing.jsonschema
import yaml

from migrate.rehearsal.exchange.server import ROUTES

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "exchange-openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SECURITY_BY_AUTH = {
    "none": [],
    "admin": [{"adminBearer": []}],
    "app": [{"appKey": [], "appTimestamp": [], "appNonce": [], "appSignature": []}],
}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def served_operations() -> set[tuple[str, str]]:
    return {(route.path, route.method.lower()) for route in ROUTES}


def documented_operations(spec: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_spec_is_valid_openapi_3_1(spec: dict) -> None:
    assert spec["openapi"].startswith("3.1.")
    openapi_spec_validator.validate(spec)


def test_every_served_route_is_documented(spec: dict) -> None:
    missing = served_operations() - documented_operations(spec)
    assert not missing, f"served but not in the OpenAPI file: {sorted(missing)}"


def test_every_documented_route_is_served(spec: dict) -> None:
    extra = documented_operations(spec) - served_operations()
    assert not extra, f"documented but not served: {sorted(extra)}"


def test_documented_security_matches_the_server(spec: dict) -> None:
    for route in ROUTES:
        operation = spec["paths"][route.path][route.method.lower()]
        security = operation.get("security", spec["security"])
        assert security == SECURITY_BY_AUTH[route.auth], f"{route.method} {route.path}"


@pytest.fixture(scope="module")
def response_validator(spec: dict):
    """Validate live answers against the spec's own component schemas."""
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:exchange-openapi", resource)

    def validate(name: str, instance: object) -> None:
        schema = {"$ref": f"urn:exchange-openapi#/components/schemas/{name}"}
        openapi_schema_validator.OAS31Validator(schema, registry=registry).validate(instance)

    return validate


def test_live_answers_match_the_documented_schemas(
    auto_server, enrolled, make_resource, response_validator
) -> None:
    app = enrolled(auto_server)
    doc = make_resource()
    with auto_server.admin() as admin:
        response_validator("Health", admin.health())
        response_validator("App", admin.list_apps()[0])
    response_validator("WhoAmI", app.client.whoami())
    response_validator("System", app.client.get_system(app.system_id))
    response_validator("ProbeResult", app.client.probe_system(app.system_id))
    response_validator("Resource", app.client.put_resource(doc))
    published = app.client.publish_record(doc["code"], {"k": "值"})
    response_validator("PublishedRecord", published)
    response_validator("Record", app.client.read_record(doc["code"], published["id"]))
    response_validator("ResourceList", {"resources": app.client.list_resources()})
    with pytest.raises(jsonschema.ValidationError, match="is not one of"):
        response_validator("Resource", {**app.client.get_resource(doc["code"]), "state": "x"})


def test_the_standalone_server_accepts_exactly_the_manifest_enumerations():
    """server.py repeats the model's enumerations (it runs with no migrate package): keep
    the two from drifting apart."""
    import typing

    from migrate.core import model
    from migrate.rehearsal.exchange import server

    assert typing.get_args(model.ResourceFormat) == server.FORMATS
    assert typing.get_args(model.ShareType) == server.SHARE_TYPES
