"""The typed model of an estate: ``migrate.yaml`` and ``systems/*.yaml`` (format version 1).

The model is the single source of truth for the manifest format: the JSON Schema shipped in
``migrate/schemas/`` and the manifest reference in ``docs/manifest-reference.md`` are generated
from it (``migrate schema``). Validation here is structural (types, enumerations, ranges,
unknown keys); checks that need more than one field or file live in ``migrate.core.validate``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from migrate.core import safety

SCHEMA_VERSION = 1

SYSTEM_ID_PATTERN = r"^[a-z][a-z0-9-]{1,39}$"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
# A unit name starting with '-' would reach systemctl as an option.
UNIT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9@._-]*\.service$"
SECRET_PREFIX = "secret://"
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Flow endpoints that are not instances of the system itself.
FLOW_PEERS = ("internet", "exchange", "ops")


def _check_secret_ref(value: str) -> str:
    if not value.startswith(SECRET_PREFIX):
        # Never echo the value: it may be a real secret pasted into the manifest.
        raise PydanticCustomError(
            "literal_secret",
            "a literal secret is not allowed here; write a reference secret://NAME and put "
            "the secret in the estate's secrets folder, file NAME (mode 0600)",
        )
    if not SECRET_NAME.match(value[len(SECRET_PREFIX) :]):
        raise PydanticCustomError(
            "secret_ref",
            "secret reference must be secret://NAME with NAME of letters, digits, '.', '_', '-'",
        )
    return value


def _check_ipv4_address(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise PydanticCustomError(
            "ipv4_address", "not a valid IPv4 address (expected e.g. 192.168.10.21)"
        ) from None
    return value


def _check_ipv4_network(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise PydanticCustomError(
            "ipv4_network",
            "not a valid IPv4 network in CIDR form ({reason}); expected e.g. 10.20.0.0/16",
            {"reason": str(error)},
        ) from None
    return value


def _check_plain_text(value: str) -> str:
    reason = safety.text_problem(value)
    if reason is not None:
        # The reason is context, not the template: it holds braces of its own.
        raise PydanticCustomError("plain_text", "{reason}", {"reason": reason})
    return value


def _check_absolute_path(value: str) -> str:
    reason = safety.path_problem(value)
    if reason is not None:
        raise PydanticCustomError("absolute_path", "{reason}", {"reason": reason})
    return value


def _check_tree_path(value: str) -> str:
    reason = safety.tree_problem(value)
    if reason is not None:
        raise PydanticCustomError("tree_path", "{reason}", {"reason": reason})
    return value


def _check_https_url(value: str) -> str:
    if not re.match(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$", value):
        raise PydanticCustomError(
            "https_url",
            "must be an https:// URL (the platform is reached over verified TLS only)",
        )
    return value


SecretRef = Annotated[
    str,
    AfterValidator(_check_secret_ref),
    WithJsonSchema({"type": "string", "pattern": r"^secret://[A-Za-z0-9][A-Za-z0-9._-]*$",
                    "description": "Reference secret://NAME to the secrets folder's file NAME."}),
]
IPv4 = Annotated[
    str, AfterValidator(_check_ipv4_address), WithJsonSchema(
        {"type": "string", "format": "ipv4", "description": "IPv4 address, e.g. 192.168.10.21."})
]
CIDR = Annotated[
    str,
    AfterValidator(_check_ipv4_network),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9.]+/[0-9]{1,2}$",
                    "description": "IPv4 network in CIDR form."}),
]
# For editors: what _check_plain_text refuses (template markup, control characters).
PLAIN_TEXT_PATTERN = r"^(?!.*\{[{%#])[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
AbsolutePath = Annotated[
    str,
    AfterValidator(_check_absolute_path),
    WithJsonSchema({"type": "string", "pattern": "^/" + PLAIN_TEXT_PATTERN[1:],
                    "description": "Absolute path in plain form (no '.', '..' or '//' parts)."}),
]
TreePath = Annotated[
    AbsolutePath,
    AfterValidator(_check_tree_path),
    WithJsonSchema({"type": "string", "pattern": "^/" + PLAIN_TEXT_PATTERN[1:],
                    "description": "Absolute path copied as it is: not `/`, a whole system tree"
                    " (/etc, /usr, /var, /home, /lib*...), /proc, /sys, /dev, /run, /boot, an"
                    " ssh folder, account files, nor /var/lib/postgresql or /var/lib/mysql."}),
]


def _check_mirror_url(value: str) -> str:
    if not re.match(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$", value):
        raise PydanticCustomError(
            "mirror_url",
            "must be the http:// or https:// URL of a Debian archive, e.g."
            " http://mirror.egov.local/debian",
        )
    return value


MirrorUrl = Annotated[
    str,
    AfterValidator(_check_mirror_url),
    WithJsonSchema({"type": "string", "pattern": "^https?://",
                    "description": "http:// or https:// URL of a Debian archive."}),
]
# A sandbox machine's name: systemd-nspawn names the host side of its network vb-NAME, and a
# Linux interface name has at most 15 characters (rehearsal.sandbox.layout.MACHINE_NAME_MAX).
MACHINE_NAME_PATTERN = r"^[a-z](?:[a-z0-9-]{0,10}[a-z0-9])?$"
DEFAULT_PLATFORM_MACHINE = "exchange"


def _check_machine_name(value: str) -> str:
    if not re.fullmatch(MACHINE_NAME_PATTERN, value):
        raise PydanticCustomError(
            "machine_name",
            "not a sandbox machine name: 1 to 12 lowercase letters, digits and '-', starting"
            " with a letter and not ending with '-' (the machine's network interface is"
            " vb-NAME, at most 15 characters)",
        )
    return value


MachineName = Annotated[
    str,
    AfterValidator(_check_machine_name),
    WithJsonSchema({"type": "string", "pattern": MACHINE_NAME_PATTERN,
                    "description": "Sandbox machine name: 1-12 lowercase letters, digits, '-'."}),
]
HttpsUrl = Annotated[
    str,
    AfterValidator(_check_https_url),
    WithJsonSchema({"type": "string", "pattern": "^https://", "description": "https:// URL."}),
]
DEBIAN_PACKAGE_PATTERN = r"^[a-z0-9][a-z0-9+.-]+$"
DebianPackage = Annotated[str, Field(pattern=DEBIAN_PACKAGE_PATTERN,
                                     description="Debian package name, e.g. php-fpm.")]
TableName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$",
                                 description="Table name, optionally schema-qualified.")]
SystemId = Annotated[str, Field(pattern=SYSTEM_ID_PATTERN)]
LocalName = Annotated[str, Field(pattern=NAME_PATTERN)]
PlainText = Annotated[str, AfterValidator(_check_plain_text),
                     Field(json_schema_extra={"pattern": PLAIN_TEXT_PATTERN})]
Text = Annotated[PlainText, Field(min_length=1)]
# A mapping key: the same check, without a schema pattern (that would key patternProperties).
ImageName = Annotated[str, AfterValidator(_check_plain_text), Field(min_length=1)]
UrlPath = Annotated[PlainText, Field(pattern=r"^/[^\s]*$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Level = Annotated[int, Field(ge=1, le=4)]
Gigabytes = Annotated[float, Field(ge=0)]
Day = Annotated[date, Field(strict=False)]

Zone = Literal["internet", "egov_extranet"]
Classification = Literal["non_classified", "classified"]
UsageScope = Literal["public", "cross_department", "department", "internal"]
Funding = Literal["fiscal", "self_raised", "purchased_service", "other"]
CarrierNetwork = Literal["egov_extranet", "internet", "department_private"]
ResourceFormat = Literal[
    "electronic_file",
    "spreadsheet",
    "database",
    "image",
    "stream",
    "self_describing",
    "service_api",
]
ShareType = Literal["unconditional", "conditional", "none"]
OpenType = Literal["unconditional", "conditional", "none"]
UpdateCycle = Literal[
    "realtime", "daily", "weekly", "monthly", "quarterly", "half_yearly", "yearly"
]
ItemType = Literal[
    "string", "text", "integer", "number", "decimal", "boolean", "date", "datetime", "binary"
]
DatabaseEngine = Literal["postgresql", "mariadb"]
Protocol = Literal["tcp", "udp"]


class Strict(BaseModel):
    """Base of every manifest object: unknown keys are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---------------------------------------------------------------- migrate.yaml


class Flavor(Strict):
    name: Text
    vcpu: Annotated[int, Field(ge=1)]
    memory_gb: Annotated[float, Field(gt=0)]


class ZoneSettings(Strict):
    cidr: CIDR = Field(description="Address space of this cloud zone.")


class OpenStackSettings(Strict):
    cloud: Text = Field(description="Entry in the user's clouds.yaml; no credentials here.")
    external_network: Text = Field(description="External network routers attach to.")
    encrypted_volume_type: Text = Field(
        default="encrypted",
        description="Cinder volume type with encryption at rest (used for level 3 and above).",
    )
    region: Text | None = Field(
        default=None, description="Region of the clouds.yaml entry to use; unset: its own."
    )
    operator_key: Text | None = Field(
        default=None,
        description="The operator's SSH private key (mode 0600), relative to the estate folder,"
        " with its public key beside it as KEY.pub: the instances get the public key, the"
        " plays and verification log in with the private one. Never the key itself.",
    )
    metadata_service: bool = Field(
        default=True,
        description="Whether instances reach nova's metadata service (169.254.169.254, tcp"
        " 80) for their metadata and cloud-init user data: each gets an egress rule to it."
        " false when the cloud serves no metadata to its instances: no rule, and each"
        " instance asks for a config drive instead.",
    )
    dns_servers: list[IPv4] = Field(
        default_factory=list,
        description="The cloud's DNS resolvers: each department subnet's DHCP hands them to"
        " its instances, and each instance gets egress rules to each of them on udp and tcp"
        " 53. Empty (the default): the subnets keep the cloud's own DHCP settings, no rule.",
    )
    ntp_servers: list[IPv4] = Field(
        default_factory=list,
        description="The cloud's time servers: cloud-init gives them to each instance's NTP"
        " client at first boot, and each instance gets an egress rule to each of them on udp"
        " 123. Empty (the default): no rule, the image's own time settings.",
    )
    floating_network: Text | None = Field(
        default=None,
        description="The external network floating IPs are allocated from, for the Internet"
        " zone's instances that a flow from `internet` reaches (no other instance gets one);"
        " unset: external_network. The department routers must reach it (neutron associates"
        " a floating IP through the router of the instance's subnet).",
    )


class PackageSettings(Strict):
    mirror: MirrorUrl = Field(
        description="The cloud's internal Debian package mirror: the URL of a Debian archive"
        " (the folder that holds dists/ and pool/), e.g. http://mirror.egov.local/debian."
        " Target machines install packages from it and from nothing else (government clouds"
        " have no Internet).",
    )
    network: CIDR | None = Field(
        default=None,
        description="Where the mirror answers, for the targets' egress rule to it; defaults"
        " to the mirror URL's address when that is an IPv4 address.",
    )


class CloudSettings(Strict):
    target: Literal["sandbox", "openstack"]
    protection_level: Level = Field(
        description="The cloud's own 等保 level; systems above it are refused."
    )
    openstack: OpenStackSettings | None = None
    zones: dict[Zone, ZoneSettings] = Field(min_length=1)
    images: dict[ImageName, Text] = Field(
        min_length=1, description="Manifest image name -> cloud image name."
    )
    flavors: list[Flavor] = Field(
        min_length=1, description="The smallest flavor that fits an instance is chosen."
    )
    ops_network: CIDR | None = Field(
        default=None,
        description="Management network (bastion) that flows from/to `ops` refer to.",
    )
    subnet_prefix: Annotated[int, Field(ge=16, le=28)] = Field(
        default=24, description="Prefix length of each department subnet carved from a zone."
    )
    packages: PackageSettings | None = Field(
        default=None,
        description="Where target machines get their packages from. On openstack, name the"
        " cloud's mirror here; with cloud.target sandbox leave it out: the sandbox runs the"
        " cloud's mirror on this host (apt-cacher-ng on a bridge address) and fills it in.",
    )


class ExchangeSettings(Strict):
    url: HttpsUrl
    ca_bundle: Text = Field(description="CA bundle to verify the platform, relative to the estate.")
    network: CIDR | None = Field(
        default=None,
        description="Network the platform connects from; flows from/to `exchange` use it.",
    )


class SecretsSettings(Strict):
    dir: Text = Field(default="secrets", description="secret://NAME reads this folder's file NAME.")


class SandboxSettings(Strict):
    surroundings: bool | None = Field(
        default=None,
        description="Rehearse what surrounds the cloud on this host: the source hosts' server "
        "rooms (seed_legacy), the exchange platform and the package mirror, every connection "
        "kept on this host. Always so with cloud.target sandbox; with openstack, true rehearses "
        "against an OpenStack on this host (the test cloud).",
    )
    seed_legacy: bool = True
    allowed_networks: list[CIDR] = Field(
        default_factory=list,
        description="Other LOCAL networks a rehearsal may reach (routed via a local bridge).",
    )
    platform_machine: MachineName = Field(
        default=DEFAULT_PLATFORM_MACHINE,
        description="Name of the exchange platform's machine in the rehearsal. Machine names "
        "are the host's, like its bridges: estates rehearsed side by side on one host need "
        "platform names of their own, and exchange networks, source networks and system ids "
        "of their own (legacy machines are named SYSTEM-HOST, bridges after their networks).",
    )


class SourcesSettings(Strict):
    known_hosts: Text | None = Field(
        default=None,
        description="known_hosts file (OpenSSH format) with the source hosts' keys, relative "
        "to the estate folder; `migrate trust` records keys there. Unset: the sandbox's own "
        "(sandbox up writes it). An unknown or changed source key stops every stage.",
    )


class CensusSettings(Strict):
    as_of: Day | None = Field(
        default=None, description="Date the census is taken on; defaults to today."
    )


class TransferSettings(Strict):
    bandwidth_mbps: Annotated[float, Field(gt=0)] = Field(
        default=100, description="Usable bandwidth from the server rooms to the cloud."
    )
    incremental_interval_hours: Annotated[float, Field(gt=0)] = Field(
        default=1, description="Time between incremental passes before the cutover."
    )


class EstateSettings(Strict):
    schema_version: Literal[1]
    estate: Text = Field(description="Free text title, shown in reports.")
    cloud: CloudSettings
    exchange: ExchangeSettings
    secrets: SecretsSettings = SecretsSettings()
    sandbox: SandboxSettings = SandboxSettings()
    sources: SourcesSettings = SourcesSettings()
    census: CensusSettings = CensusSettings()
    transfer: TransferSettings = TransferSettings()


# ---------------------------------------------------------------- systems/*.yaml


class Department(Strict):
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,15}$")]
    name: Text


class UsageFrequency(Strict):
    monthly_active_users: Annotated[int, Field(ge=0)]
    last_used: Day | None = Field(description="Last observed use; null if never used.")


class Approval(Strict):
    department: Text
    date: Day
    document: Text


class Maintenance(Strict):
    vendor: PlainText | None = None
    last_update: Day | None = None
    active: bool


class Census(Strict):
    usage_scope: UsageScope
    usage_frequency: UsageFrequency
    approval: Approval
    funding: Funding
    network: CarrierNetwork
    maintenance: Maintenance
    replaceable_by: SystemId | None = None
    duplicates: list[SystemId] = Field(default_factory=list)
    annual_cost_wan: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Build and operate cost per year, in 万元."
    )


class SshAccess(Strict):
    user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$",
                               description="Login name on the source hosts.")]
    key: SecretRef
    port: Port = 22


class SourceHost(Strict):
    name: LocalName
    address: IPv4
    roles: list[Text] = Field(default_factory=list)


class Source(Strict):
    ssh: SshAccess
    hosts: list[SourceHost] = Field(min_length=1)


class Service(Strict):
    name: LocalName
    host: LocalName
    unit: Annotated[str, Field(pattern=UNIT_PATTERN)]
    port: Port
    health: UrlPath | None = None


class FileTree(Strict):
    host: LocalName
    path: TreePath = Field(
        description="A data folder copied with rsync, what the target has more removed; not"
        " inside or around another files or configuration path of the same target instance.",
    )
    size_gb: Gigabytes
    daily_change_gb: Gigabytes = 0.0


class Database(Strict):
    host: LocalName
    engine: DatabaseEngine = Field(
        description="`postgresql`, or `mariadb` (Debian's mariadb-server, MySQL's dialect):"
        " a MariaDB database moves by a consistent dump (mariadb-dump --single-transaction)"
        " up to the plan's dump_restore_max_gb, above it by `binlog_replication` (the target"
        " a replica of the source from the dump's GTID position until the cutover: the"
        " source needs log_bin, binlog_format ROW and a non-zero server_id), with its"
        " application user's password hash and grants.",
    )
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
    size_gb: Gigabytes
    password: SecretRef
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = Field(
        default=None, description="Role (MariaDB: user) the application logs in as; defaults"
        " to the db name.",
    )
    daily_change_gb: Gigabytes | None = Field(
        default=None, description="Data written per day; defaults to 1% of size_gb."
    )
    volatile_tables: list[TableName] = Field(
        default_factory=list,
        description="Tables the application writes as it serves, even to answer a read"
        " (caches, sessions, job queues; e.g. MediaWiki's objectcache and l10n_cache): moved"
        " with the rest, but left out of the comparisons made once the target serves (the"
        " cutover's evidence, verification). `table` means `public.table`, PostgreSQL's"
        " default schema: a table of another schema is `schema.table` (`migrate discover`"
        " proposes the tables it sees written, schema-qualified). On MariaDB, whose schema is"
        " the database, `table` means `NAME.table`.",
    )


class ConfigurationPath(Strict):
    host: LocalName = Field(description="Source host the path is on.")
    path: TreePath = Field(
        description="A file or folder copied to the target as it is, owner, mode and times"
        " kept: the application's code, settings and unit files, anything that is not data."
        " A folder is made the same as the source's (what the target has there and the source"
        " not is removed, e.g. a package's default site). A rewrite's file is written with the"
        " rewrite applied instead.",
    )


class Rewrite(Strict):
    host: LocalName = Field(description="Source host the file is on.")
    file: AbsolutePath = Field(
        description="File to rewrite on the target; it must lie under a `configuration` path"
        " of the same host.",
    )
    old: Text = Field(description="Text replaced, every occurrence (e.g. the old address).")
    new: PlainText = Field(
        description="Replacement. `${NAME}` is the planned address of target instance NAME"
        " (e.g. `${db}`); `$${` writes a literal `${`. Rendered into the plan.",
    )


class Workload(Strict):
    services: list[Service] = Field(default_factory=list)
    files: list[FileTree] = Field(default_factory=list)
    databases: list[Database] = Field(default_factory=list)
    configuration: list[ConfigurationPath] = Field(
        default_factory=list,
        description="Application and configuration paths copied to the target as they are"
        " (code, settings, unit files that are not data), before the services start. Unit"
        " files of the declared services in /etc/systemd/system are copied without being"
        " listed here.",
    )
    rewrites: list[Rewrite] = Field(
        default_factory=list,
        description="Settings that name the old addresses: each `old` replaced by `new` in a"
        " copied configuration file, on the target only.",
    )


class Instance(Strict):
    name: LocalName
    replaces: list[LocalName] = Field(min_length=1)
    vcpu: Annotated[int, Field(ge=1)]
    memory_gb: Annotated[float, Field(gt=0)]
    disk_gb: Annotated[int, Field(ge=1)]
    image: Text
    packages: list[DebianPackage] = Field(
        default_factory=list,
        description="Debian packages installed on the target with apt from the cloud's"
        " package mirror (cloud.packages.mirror; the sandbox runs its own), before the"
        " configuration is copied.",
    )


class Flow(Strict):
    model_config = ConfigDict(populate_by_name=True)

    from_: LocalName = Field(
        alias="from", description="Where the traffic comes from: an instance of this system "
        "or a peer: `ops`, `exchange`, `internet`.")
    to: LocalName = Field(description=(
        "Where it goes: an instance of this system or a peer. A flow from an instance to "
        "itself plans a port its own application reaches on its address (e.g. MariaDB's 3306 "
        "bound to it): verification finds it listening as planned."))
    port: Port
    protocol: Protocol = "tcp"


class Target(Strict):
    zone: Zone
    instances: list[Instance] = Field(min_length=1)
    flows: list[Flow] = Field(default_factory=list)


class Item(Strict):
    name: Text
    type: ItemType


class Interface(Strict):
    service: LocalName
    path: UrlPath


class Resource(Strict):
    code: Annotated[str, Field(pattern=r"^[0-9]{1,4}(/[0-9]{1,6}){1,5}$")]
    name: Text
    summary: Text
    format: ResourceFormat
    share_type: ShareType
    share_condition: PlainText | None = None
    open_type: OpenType
    update_cycle: UpdateCycle
    interface: Interface | None = None
    items: list[Item] = Field(default_factory=list)


class Exchange(Strict):
    app_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    app_secret: SecretRef
    resources: list[Resource] = Field(default_factory=list)


class Cutover(Strict):
    max_downtime_minutes: Annotated[int, Field(ge=1)] = 60


class SystemManifest(Strict):
    schema_version: Literal[1]
    id: SystemId
    name: Text
    department: Department
    function: Text
    classification: Classification
    protection_level: Level
    census: Census
    source: Source
    workload: Workload = Workload()
    target: Target | None = Field(
        default=None, description="Required for every system the census migrates."
    )
    depends_on: list[SystemId] = Field(default_factory=list)
    exchange: Exchange | None = Field(
        default=None, description="Required for every system the census migrates."
    )
    cutover: Cutover = Cutover()

    def host(self, name: str) -> SourceHost | None:
        return next((h for h in self.source.hosts if h.name == name), None)

    def instance(self, name: str) -> Instance | None:
        if self.target is None:
            return None
        return next((i for i in self.target.instances if i.name == name), None)


# ---------------------------------------------------------------- rewrite placeholders

# ``${NAME}`` in a rewrite's ``new`` is the planned address of target instance NAME;
# ``$${`` is a literal ``${``. Deliberately not Jinja: Ansible would template it.
PLACEHOLDER = re.compile(r"\$(\$)?\{([^}]*)\}")


def placeholder_names(text: str) -> list[str]:
    """The instance names ``text`` refers to, in order (escaped ``$${...}`` left out)."""
    return [m.group(2) for m in PLACEHOLDER.finditer(text) if m.group(1) is None]


def render_placeholders(text: str, addresses: dict[str, str]) -> str:
    """``text`` with each ``${NAME}`` replaced by ``addresses[NAME]`` and ``$${`` by ``${``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "${" + match.group(2) + "}"
        return addresses[match.group(2)]

    return PLACEHOLDER.sub(replace, text)
