"""The tests' secret scan (tests/run/secret_scan.py, used by the run tests' secrets_written)
finds one leaked line of a multi-line key, which the comparison of whole secret files that
it replaces missed, and does not flag the lines every key of a format shares."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.run import secret_scan
from tests.run.test_run_sandbox import secrets_written


def openssh_key() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()


def whole_files_only(values: list[str], data: bytes) -> list[str]:
    """The scan before: a secret file counted as leaked only when the whole of it was."""
    return [v for v in values if v.encode() in data]


def secret_line(key: str) -> str:
    """A line of the key no other key shares: the one holding its private half."""
    body = [line for line in key.splitlines() if not line.startswith("-----")]
    return body[2]


def test_a_single_leaked_key_line_is_found_and_was_missed_before(tmp_path: Path) -> None:
    key = openssh_key().strip()
    line = secret_line(key)
    log = tmp_path / "play.log"
    log.write_text(f"TASK [copy] changed: ... {line} ...\n")
    values = [key, secrets.token_urlsafe(24)]
    assert whole_files_only(values, log.read_bytes()) == []  # missed before
    assert secret_scan.leaks(values, [log]) == [str(log)]
    assert secret_scan.leaks(values, [], [f"stderr: {line}"]) == ["printed output 0"]


def test_the_lines_every_key_shares_are_no_leak(tmp_path: Path) -> None:
    """Another key on disk (a migration key, the operator's) has the same armor and first
    line as the estate's keys: not a leak of them."""
    estate_keys = [openssh_key().strip() for _ in range(3)]
    other = tmp_path / "operator_ed25519"
    other.write_text(openssh_key())
    assert secret_scan.leaks(estate_keys, [other]) == []
    body = [line for line in estate_keys[0].splitlines() if not line.startswith("-----")]
    assert other.read_text().splitlines()[1] == body[0]  # what a naive line scan would flag
    assert body[0] not in secret_scan.needles(estate_keys)


def test_another_key_is_no_leak_of_an_estate_s_only_key(tmp_path: Path) -> None:
    """An estate of one system holds one ssh key: nothing shares its header line, which every
    other OpenSSH key on disk (the operator's, a migration key) begins with too."""
    only_key = openssh_key().strip()
    other = tmp_path / "operator_ed25519"
    other.write_text(openssh_key())
    assert secret_scan.leaks([only_key, secrets.token_urlsafe(24)], [other]) == []
    other.write_text(f"{secret_line(only_key)}\n")
    assert secret_scan.leaks([only_key], [other]) == [str(other)]


def test_the_run_tests_scan_finds_a_key_line_in_an_estate(estate: Path) -> None:
    """secrets_written, as the run tests call it, on an estate whose run left one line of
    its source access key in an artifact."""
    key = openssh_key().strip()
    folder = estate / "secrets"
    folder.mkdir()
    (folder / "ssh-wjw").write_text(key + "\n")
    (folder / "db-fybj").write_text(secrets.token_urlsafe(24) + "\n")
    artifact = estate / ".migrate" / "runs" / "x-wjw-fybj-transfer-1" / "stdout"
    artifact.parent.mkdir(parents=True)
    artifact.write_text("ok\n")
    assert secrets_written(estate, "clean output") == []
    artifact.write_text(f"diff:\n+{secret_line(key)}\n")
    assert secrets_written(estate, "clean output") == [str(artifact)]
