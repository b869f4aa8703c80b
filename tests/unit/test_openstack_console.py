"""Host keys read from an instance's console (what cloud-init prints), parsed strictly."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from migrate.targets.openstack_console import (
    BEGIN,
    END,
    ConsoleKeysError,
    host_keys_from_console,
)


def public_line(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


ED = public_line(ed25519.Ed25519PrivateKey.generate())
EC = public_line(ec.generate_private_key(ec.SECP256R1()))
ED_OTHER = public_line(ed25519.Ed25519PrivateKey.generate())


def console(*blocks: list[str], before: str = "[  1.0] booting\n") -> str:
    text = before
    for lines in blocks:
        text += "\n".join([BEGIN, *lines, END]) + "\n[ 130.4] cloud-init finished\n"
    return text


def test_no_block_yet_is_no_keys():
    assert host_keys_from_console("[  1.0] booting\nlogin: ") == []
    assert host_keys_from_console(f"{BEGIN}\n{ED} root@a\n") == []  # still being written


def test_keys_of_the_block_without_their_comments():
    text = console([f"{EC} root@mzj-shjz-app", f"{ED} root@mzj-shjz-app"])
    assert host_keys_from_console(text) == [EC, ED]


def test_the_last_complete_block_counts():
    text = console([f"{ED} root@a"], [f"{ED_OTHER} root@a"]) + f"{BEGIN}\n{ED} root@a\n"
    assert host_keys_from_console(text) == [ED_OTHER]


def test_carriage_returns_of_a_serial_console_are_ignored():
    text = console([f"{ED} root@a"]).replace("\n", "\r\n")
    assert host_keys_from_console(text) == [ED]


@pytest.mark.parametrize("line", [
    "ssh-dss AAAAB3NzaC1kc3MAAACBAP root@a",   # not a type we accept
    "ssh-ed25519 not*base64 root@a",
    "echo pwned",
])
def test_anything_else_in_the_block_is_refused(line):
    with pytest.raises(ConsoleKeysError):
        host_keys_from_console(console([f"{ED} root@a", line]))


def test_a_key_whose_blob_names_another_type_is_refused():
    blob = EC.split()[1]
    with pytest.raises(ConsoleKeysError, match="of type 'ecdsa-sha2-nistp256', not 'ssh-ed25519'"):
        host_keys_from_console(console([f"ssh-ed25519 {blob} root@a"]))
