"""The model of ``plan.json`` as ``migrate.core.plan`` writes it (schema version 1).

``migrate.core.plan`` builds the document as plain dicts; this model says what it holds, checks a
plan read back from disk before it is applied, and generates the shipped JSON Schema
``migrate/schemas/plan.schema.json`` (a test checks that every plan of the example estates
validates, and that the shipped schema is what this model generates). Unknown keys are
errors, as in the manifests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migrate.core.errors import InvalidInput, Problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Count = Annotated[int, Field(ge=0)]
Size = Annotated[float, Field(ge=0)]


class Inputs(Strict):
    migrate_yaml: str = Field(alias="migrate.yaml", description="sha256 of migrate.yaml")
    systems: dict[str, str] = Field(description="sha256 of each system manifest, by id")


class Cloud(Strict):
    target: str
    protection_level: int
    openstack: dict[str, Any] | None = Field(
        description="cloud.openstack of migrate.yaml, unset settings left out; null when "
                    "not given")


class Assumptions(Strict):
    """The estimating numbers (``migrate.core.plan.Assumptions``)."""

    volume_margin: float
    db_restore_gb_per_hour: float
    dump_restore_max_gb: float
    default_db_daily_change_ratio: float
    service_switch_seconds: int
    replication_switch_seconds: int


class Wave(Strict):
    number: Annotated[int, Field(ge=1)]
    systems: list[str]


class Department(Strict):
    code: str
    name: str


class Network(Strict):
    key: str = Field(description="<department>-<zone>")
    name: str
    department: Department
    zone: str
    slot: Count = Field(description="the subnet's index in its zone (sticky)")
    cidr: str
    gateway: str


class BootVolume(Strict):
    size_gb: Count
    encrypted: bool


class Volume(Strict):
    name: str
    mount: str
    size_gb: Count
    encrypted: bool
    holds: Literal["files", "databases"]


class Configuration(Strict):
    host: str
    path: str


class Rewrite(Strict):
    host: str
    file: str
    old: str
    new: str = Field(description="${INSTANCE} placeholders rendered to planned addresses")


class FloatingIp(Strict):
    network: str = Field(description="the external network it is allocated from")


class Instance(Strict):
    name: str
    resource_name: str
    replaces: list[str]
    roles: list[str]
    vcpu: Annotated[int, Field(ge=1)]
    memory_gb: Size
    flavor: str
    image: str
    cloud_image: str
    address: str
    host_number: Count = Field(description="the address's host number in its subnet (sticky)")
    boot_volume: BootVolume
    volumes: list[Volume]
    security_group: str
    services: list[str]
    packages: list[str]
    configuration: list[Configuration]
    rewrites: list[Rewrite]
    floating_ip: FloatingIp | None = Field(
        default=None, description="OpenStack: the floating IP of an Internet-zone instance a "
        "flow from internet reaches, else null; absent on other targets")


class InstancePeer(Strict):
    kind: Literal["instance"]
    instance: str
    cidr: str
    security_group: str


class SourceHostPeer(Strict):
    kind: Literal["source_host"]
    host: str
    cidr: str


class NetworkPeer(Strict):
    kind: Literal["internet", "exchange", "ops"]
    cidr: str


class MirrorPeer(Strict):
    kind: Literal["package_mirror"]
    cidr: str | None = Field(description="null: the target resolves its own mirror (sandbox)")


class CloudServicePeer(Strict):
    kind: Literal["metadata_service", "dns_server", "ntp_server"]
    cidr: str


Peer = Annotated[InstancePeer | SourceHostPeer | NetworkPeer | MirrorPeer | CloudServicePeer,
                 Field(discriminator="kind")]


class SecurityRule(Strict):
    instance: str
    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp"]
    port: Annotated[int, Field(ge=1, le=65535)]
    peer: Peer
    origin: str = Field(description="target.flows[N], management, interconnection, migration, "
                                    "packages, or (OpenStack) metadata, dns or ntp")
    temporary: bool = Field(description="removed once the move is done (migration access)")


class SourceHost(Strict):
    name: str
    address: str
    roles: list[str]
    moves_to: str


class Service(Strict):
    name: str
    unit: str
    port: Annotated[int, Field(ge=1, le=65535)]
    health: str | None
    source_host: str
    instance: str


class FileTree(Strict):
    host: str
    path: str
    size_gb: Size
    daily_change_gb: Size
    instance: str


class Database(Strict):
    host: str
    engine: str
    name: str
    user: str
    size_gb: Size
    daily_change_gb: Size
    instance: str
    method: Literal["final_dump", "logical_replication", "binlog_replication"]
    volatile_tables: list[str]


class Data(Strict):
    files: list[FileTree]
    databases: list[Database]
    total_gb: Size


class Estimates(Strict):
    initial_copy_minutes: Count
    cutover_minutes: Count
    bandwidth_mbps: float


class Management(Strict):
    separate_network: bool
    via: str


class Exchange(Strict):
    app_key: str
    resources: list[str]


class System(Strict):
    id: str
    name: str
    department: Department
    protection_level: int
    zone: str
    network: str = Field(description="key of its network in networks")
    encrypted_at_rest: bool
    management: Management
    instances: list[Instance]
    security_rules: list[SecurityRule]
    source_hosts: list[SourceHost]
    services: list[Service]
    data: Data
    estimates: Estimates
    max_downtime_minutes: int
    exchange: Exchange
    wave: Annotated[int, Field(ge=1)]
    depends_on: list[str]


class NotPlanned(Strict):
    id: str
    disposition: Literal["decommission", "merge", "refuse"]
    reasons: list[str]
    merge_into: str | None


class PlanDocument(Strict):
    """plan.json: the waves and the provider-neutral cloud resources of every migrating
    system. Deterministic: the same estate gives the same bytes."""

    schema_version: Literal[1]
    kind: Literal["migrate.plan"]
    estate: str
    inputs: Inputs
    as_of: str = Field(description="the census date (YYYY-MM-DD)")
    cloud: Cloud
    assumptions: Assumptions
    waves: list[Wave]
    networks: list[Network]
    systems: list[System]
    not_planned: list[NotPlanned]
    warnings: list[str]


def check_plan_document(document: Any, where: str) -> PlanDocument:
    """The document as the model, or InvalidInput naming every field that does not fit."""
    try:
        return PlanDocument.model_validate(document)
    except ValidationError as error:
        problems = [Problem(where, None, ".".join(str(p) for p in e["loc"]), e["msg"],
                            "re-plan ('migrate plan'): plan.json is written by migrate, "
                            "not by hand")
                    for e in error.errors()]
        raise InvalidInput(problems, f"{where} is not a plan this migrate can apply") from None
