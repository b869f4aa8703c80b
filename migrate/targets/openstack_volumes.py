"""Encryption at rest on OpenStack, checked through the block-storage API (cinder v3).

Cinder encrypts a volume when its volume type has an encryption spec (provider luks or plain,
a cipher and key size, front-end: on the hypervisor, or back-end: in the storage); the guest
then sees a plain disk. So a volume the plan wants encrypted is checked where the truth is:
the volume (``GET /volumes/{id}``: its type, ``encrypted``), its type's encryption spec
(``GET /types/{id}/encryption``, which cinder's default policy shows to admins only) and the
volume's own encryption metadata (``GET /volumes/{id}/encryption``, which any member of the
project may read: the same spec, and whether cinder holds a key for this volume). Every
finding names the volume; nothing here echoes a key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migrate.core.errors import EnvironmentNotReady, StageFailed
from migrate.targets.contract import PROVISION_AGAIN, Encryption, Instance
from migrate.targets.openstack_api import Session

FORBIDDEN = 403
NOT_FOUND = 404
FRONT_END = "front-end"


def provider_kind(provider: Any) -> str | None:
    """luks, plain, or None (no encryption) for a spec's provider, also in the older class
    path form (``nova.volume.encryptors.luks.LuksEncryptor``)."""
    text = str(provider or "").lower()
    if "luks" in text:
        return "luks"
    if "plain" in text or "cryptsetup" in text:
        return "plain"
    return None


@dataclass
class Check:
    """The findings of one check: per ``instance:volume`` what the cloud reported, and the
    problems."""

    wanted_type: str
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    type_ids: dict[str, str] | None = None


def check_encryption(session: Session, stack: str, instances: Mapping[str, Instance],
                     wanted_type: str) -> dict[str, Instance]:
    """The instances, each encrypted volume's ``encryption`` replaced by what cinder reports
    (``by``, ``detail``, ``checked``); EnvironmentNotReady naming every volume that the plan
    wants encrypted and the cloud does not encrypt."""
    check = Check(wanted_type)
    checked = {name: _checked_instance(session, check, name, instance)
               for name, instance in sorted(instances.items())}
    if check.problems:
        raise EnvironmentNotReady(
            f"stack {stack}: {len(check.problems)} volume(s) the plan wants encrypted are not "
            f"encrypted by the cloud: {'; '.join(check.problems)}",
            hint=f"the cloud's operators give volume type {wanted_type} a LUKS encryption "
                 "(openstack volume type set --encryption-provider luks ...; cinder then "
                 "needs a key manager), or cloud.openstack.encrypted_volume_type names one "
                 "that has it; volumes made before the type encrypted stay plain: provision "
                 "them again (destroy, then provision)")
    return checked


def _checked_instance(session: Session, check: Check, name: str,
                      instance: Instance) -> Instance:
    wanted = [volume for volume in instance.volumes if volume.encryption.encrypted]
    boot = instance.boot_volume
    if wanted and boot is None:
        check.problems.append(f"{name}: the stack's outputs do not name the boot volume "
                              f"({PROVISION_AGAIN})")
    changes: dict[str, Any] = {}
    if boot is not None and boot.encryption.encrypted:
        encryption = _volume_encryption(session, check, f"{name}:boot", boot.volume_id)
        changes["boot_volume"] = boot.model_copy(update={"encryption": encryption})
    volumes = []
    for volume in instance.volumes:
        if not volume.encryption.encrypted:
            volumes.append(volume)
            continue
        label = f"{name}:{volume.name}"
        if not volume.volume_id:
            check.problems.append(f"{label}: the stack's outputs do not give its volume id "
                                  f"({PROVISION_AGAIN})")
            volumes.append(volume)
            continue
        encryption = _volume_encryption(session, check, label, volume.volume_id)
        volumes.append(volume.model_copy(update={"encryption": encryption}))
    changes["volumes"] = volumes
    return instance.model_copy(update=changes)


def _volume_encryption(session: Session, check: Check, label: str,
                       volume_id: str) -> Encryption:
    """What cinder reports for one volume; a problem recorded when it is not encrypted by
    the wanted type (the returned encryption then says so: ``encrypted`` false)."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    found = session.block_storage(f"/volumes/{volume_id}", absent=(NOT_FOUND,))
    if not isinstance(found, dict) or not isinstance(found.get("volume"), dict):
        check.problems.append(f"{label}: volume {volume_id} does not exist")
        return Encryption(encrypted=False, detail=f"volume {volume_id} not found")
    volume = found["volume"]
    type_name = str(volume.get("volume_type") or "")
    if check.type_ids is None:
        check.type_ids = volume_type_ids(session)
    spec, spec_from = type_encryption(session, type_name, check.type_ids)
    metadata = session.block_storage(f"/volumes/{volume_id}/encryption",
                                     absent=(FORBIDDEN, NOT_FOUND))
    metadata = metadata if isinstance(metadata, dict) else {}
    if spec is None and metadata:
        spec = {key: metadata.get(key) for key in ("provider", "cipher", "key_size",
                                                   "control_location")}
        spec_from = (f"GET /volumes/{volume_id}/encryption (the type's own spec is shown "
                     "to admins only)")
    spec = spec or {}
    kind = provider_kind(spec.get("provider"))
    report = {
        "volume_id": volume_id, "volume_type": type_name or None,
        "volume_encrypted": volume.get("encrypted") is True,
        "key_held": bool(metadata.get("encryption_key_id")) if metadata else None,
        "provider": spec.get("provider"), "cipher": spec.get("cipher"),
        "key_size": spec.get("key_size"), "control_location": spec.get("control_location"),
        "spec_from": spec_from, "checked_at": started,
        "checked_through": "the block-storage API (cinder v3)",
    }
    check.reports[label] = report
    problem = None
    if type_name != check.wanted_type:
        problem = (f"volume {volume_id} is of volume type {type_name or 'none'}, not "
                   f"{check.wanted_type}")
    elif kind is None:
        problem = (f"volume type {type_name} has no encryption (provider: "
                   f"{spec.get('provider') or 'none'})")
    elif not report["volume_encrypted"] or report["key_held"] is False:
        problem = (f"volume {volume_id} of type {type_name} is not encrypted itself (made "
                   "before its type encrypted?)")
    if problem:
        check.problems.append(f"{label}: {problem}")
        return Encryption(encrypted=False, detail=problem, checked=report)
    where = ("on the hypervisor" if spec.get("control_location") == FRONT_END
             else "in the storage back end")
    by = (f"cinder volume type {type_name} ({kind}, {spec.get('cipher') or 'default cipher'}, "
          f"{spec.get('key_size') or 'default'} bits, {where})")
    return Encryption(encrypted=True, by=by,
                      detail=f"volume {volume_id}: encrypted, spec from {spec_from}",
                      checked=report)


def type_encryption(session: Session, type_name: str,
                    type_ids: dict[str, str] | None = None
                    ) -> tuple[dict[str, Any] | None, str | None]:
    """Volume type ``type_name``'s encryption spec ({} when it has none) and the call that
    showed it; (None, None) when this user may not see it (cinder's default policy: admins
    only) or the type is not listed to it. ``type_ids`` (name -> id) saves listing again."""
    if type_ids is None:
        type_ids = volume_type_ids(session)
    type_id = type_ids.get(type_name)
    if not type_id:
        return None, None
    spec = session.block_storage(f"/types/{type_id}/encryption", absent=(FORBIDDEN,))
    if spec is None:
        return None, None
    if not isinstance(spec, dict):
        raise StageFailed(f"GET /types/{type_id}/encryption answered no JSON object")
    return spec, f"GET /types/{type_id}/encryption"


def volume_type_ids(session: Session) -> dict[str, str]:
    """Name -> id of the volume types cinder lists to this user."""
    listed = session.block_storage("/types", absent=(FORBIDDEN,)) or {}
    return {str(t.get("name")): str(t.get("id"))
            for t in listed.get("volume_types") or [] if isinstance(t, dict)}
