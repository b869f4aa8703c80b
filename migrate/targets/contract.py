"""What every stack program outputs for each instance of a system, whatever the cloud: the
``instances`` output of a system stack (``sys-<id>``), one entry per planned instance.

Both programs (``stacks/sandbox``, ``stacks/openstack``) satisfy this model, and the stages read
targets only through it, from the provisioning state (never from the journal: whoever can
write that file would choose where the data goes and which host key is trusted).

Per instance: the cloud's ``id``, the planned ``address``, its SSH ``host_keys`` ("type
base64", at least one), ``roles``, ``replaces`` (the source hosts it takes over) and
``resource_name``; per data volume: its ``name`` and ``mount``, how the guest finds it
(``device``, or ``serial``: the cloud's volume id as the guest sees it; the sandbox's
``path`` is a host folder the machine bind-mounts itself), its ``volume_id`` where the cloud has
one, and ``encryption`` as the cloud reports it; the boot volume's id and encryption as
``boot_volume`` where the instance boots from a volume (OpenStack); ``floating_address``
beside the fixed one where the plan gives the instance a floating IP (OpenStack). Other keys
a program exports (the sandbox's ``machine``, ``known_hosts``) are allowed and ignored.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from migrate.core.errors import StageFailed

KEY_TYPE = re.compile(r"^[a-z0-9][a-z0-9@.-]*$")
PROVISION_AGAIN = "provision the system again: the next run restores its outputs"


def host_key_line(text: str) -> str:
    """``type base64`` of an OpenSSH public key (a trailing comment is dropped); the key's
    own wire form must name the same type."""
    parts = text.split()
    if len(parts) < 2 or not KEY_TYPE.match(parts[0]):
        raise ValueError("not an SSH public key ('type base64')")
    key_type, encoded = parts[:2]
    try:
        blob = base64.b64decode(encoded, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError(f"the {key_type} key is not valid base64 key data") from None
    if named != key_type:
        raise ValueError(f"the key data is of type {named!r}, not {key_type!r}")
    return f"{key_type} {encoded}"


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError("not an IP address") from None  # ipaddress's message repeats it


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError("not an absolute path")
    return path


HostKey = Annotated[str, AfterValidator(host_key_line)]
Address = Annotated[str, AfterValidator(_address)]
Name = Annotated[str, Field(min_length=1)]
MountPoint = Annotated[str, AfterValidator(_absolute)]


class Output(BaseModel):
    """Read from a stack's outputs: types are not coerced; unknown keys are ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Encryption(Output):
    """A volume's encryption at rest as the cloud reports it: ``by`` says who encrypts (the
    cloud's volume type, e.g. "volume type encrypted (LUKS, on the hypervisor)", or
    "dm-crypt in the guest"); ``detail`` is the cloud's own words."""

    encrypted: bool
    by: str | None = None
    detail: str = ""
    # what the target found when it checked through the cloud's API (volume type, provider,
    # cipher, key size, where, when); None: not checked (set by the target, never by a program)
    checked: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _encrypted_by_someone(self) -> Encryption:
        if self.encrypted and not self.by:
            raise ValueError("an encrypted volume must say what encrypts it ('by')")
        return self


class Volume(Output):
    name: Name
    mount: MountPoint
    device: str | None = None
    serial: str | None = None
    path: str | None = None
    volume_id: str | None = None
    encryption: Encryption

    @field_validator("encryption", mode="before")
    @classmethod
    def _sandbox_sentence(cls, value: Any) -> Any:
        """State written before this model: the sandbox reported a sentence (it never
        encrypts), e.g. "not available in the sandbox"."""
        if isinstance(value, str):
            return {"encrypted": False, "detail": value}
        return value

    @model_validator(mode="after")
    def _findable(self) -> Volume:
        if not (self.device or self.serial or self.path):
            raise ValueError(f"volume {self.name} says neither its device, its serial (volume "
                             "id) nor its path: the guest could not find it")
        return self


class BootVolume(Output):
    volume_id: Name
    encryption: Encryption


class Instance(Output):
    id: Name
    address: Address
    host_keys: list[HostKey] = Field(min_length=1)
    roles: list[str]
    replaces: list[str]
    resource_name: Name
    volumes: list[Volume]
    boot_volume: BootVolume | None = None
    floating_address: Address | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_host_key(cls, value: Any) -> Any:
        """State written before ``host_keys``: the sandbox exported a single ``host_key``."""
        if isinstance(value, Mapping) and "host_keys" not in value and "host_key" in value:
            return {**value, "host_keys": [value["host_key"]]}
        return value

    def access(self) -> dict[str, str]:
        """What a stage reaches the instance with: its address and the host key it pins."""
        return {"address": self.address, "host_key": self.host_keys[0]}


def has_host_keys(outputs: Any) -> bool:
    return isinstance(outputs, Mapping) and bool(outputs.get("host_keys")
                                                 or outputs.get("host_key"))


def read_instance(stack: str, name: str, outputs: Any) -> Instance:
    """One instance's outputs as the model; StageFailed naming the stack and the instance
    (and every defect) when they are malformed."""
    try:
        return Instance.model_validate(outputs)
    except ValidationError as error:
        raise StageFailed(f"stack {stack}: instance {name} has unusable outputs: "
                          f"{defects(error)}", hint=PROVISION_AGAIN) from None


def read_instances(stack: str, outputs: Any) -> dict[str, Instance]:
    """The ``instances`` output of a system stack, each entry read with ``read_instance``."""
    if not isinstance(outputs, Mapping) or not outputs:
        raise StageFailed(f"stack {stack}: its 'instances' output is not a map of instance "
                          "name to outputs", hint=PROVISION_AGAIN)
    return {str(name): read_instance(stack, str(name), found)
            for name, found in outputs.items()}


def defects(error: ValidationError) -> str:
    """Each defect as ``field: message``, without the values (a stack's outputs are not
    echoed into errors and logs)."""
    found = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "outputs"
        found.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(found)
