"""File trees of a legacy host: a plan of files (path, size, kind) and their lazy contents.

A tree is laid out like a department file store: ``YYYY/MM/<prefix>-<seq>.<ext>``, with
scanned documents (PDF-like binaries), CSV registers and plain-text receipts. Contents are
generated on demand from a PRNG keyed by the system, host and file path, so a plan is cheap
to hold and the bytes are the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

from migrate.rehearsal.legacy import fake

MIN_FILE = 2 * 1024
MAX_FILE = 384 * 1024
CORPUS_LINES = 4096
HEADERS = {"csv": "姓名,公民身份号码,业务日期,金额\n", "txt": "示例市政务服务受理回执\n"}
# (extension, weight): scans dominate a department file store.
KINDS = (("pdf", 5), ("csv", 2), ("txt", 2))


@dataclass(frozen=True)
class GeneratedFile:
    """A file whose bytes come from the seeded PRNG: ``content()`` is deterministic."""

    system_id: str
    host: str
    path: str  # absolute path in the machine
    size: int
    kind: str

    def content(self) -> bytes:
        rng = fake.rng_for(self.system_id, self.host, f"file:{self.path}")
        if self.kind == "pdf":
            return _pdf_like(rng, self.size)
        corpus = _corpus(self.system_id, self.host, self.kind)
        return _text_fill(rng, self.size, corpus, HEADERS[self.kind].encode("utf-8"))

    def sha256(self) -> str:
        return hashlib.sha256(self.content()).hexdigest()


def _pdf_like(rng: random.Random, size: int) -> bytes:
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    tail = b"\n%%EOF\n"
    if size <= len(head) + len(tail):
        return (head + tail)[:size]
    return head + rng.randbytes(size - len(head) - len(tail)) + tail


def _csv_line(rng: random.Random) -> str:
    return (f"{fake.person_name(rng)},{fake.id_card_number(rng)},{fake.day(rng).isoformat()},"
            f"{fake.amount(rng, 10, 20000)}\n")


def _receipt_line(rng: random.Random) -> str:
    return (f"{fake.moment(rng).isoformat(sep=' ')} 申请人：{fake.person_name(rng)} "
            f"办理事项：{rng.choice(fake.BUSINESS_TYPES)} {fake.remark(rng)}\n")


@functools.lru_cache(maxsize=32)
def _corpus(system_id: str, host: str, kind: str) -> tuple[bytes, ...]:
    """Lines a host's text files are drawn from: generating each line of hundreds of MB of
    text one by one would take minutes; drawing whole lines takes milliseconds."""
    rng = fake.rng_for(system_id, host, f"corpus:{kind}")
    make = _csv_line if kind == "csv" else _receipt_line
    return tuple(make(rng).encode("utf-8") for _ in range(CORPUS_LINES))


def _text_fill(rng: random.Random, size: int, corpus: tuple[bytes, ...], header: bytes) -> bytes:
    average = max(1, sum(map(len, corpus[:64])) // 64)
    parts, used = [header], len(header)
    while used < size:
        batch = rng.choices(corpus, k=(size - used) // average + 1)
        parts += batch
        used += sum(map(len, batch))
    data = b"".join(parts)[:size]
    # Cut at the last whole line and pad with newlines, so the file stays valid UTF-8.
    cut = data.rfind(b"\n") + 1
    return data[:cut] + b"\n" * (size - cut)


def plan_tree(system_id: str, host: str, root: str, budget_bytes: int) -> list[GeneratedFile]:
    """Files under ``root`` whose sizes add up to exactly ``budget_bytes``."""
    rng = fake.rng_for(system_id, host, f"tree:{root}")
    prefix = root.rstrip("/").rsplit("/", 1)[-1][:8] or "file"
    extensions = [ext for ext, weight in KINDS for _ in range(weight)]
    files: list[GeneratedFile] = []
    left, seq = budget_bytes, 0
    while left > 0:
        seq += 1
        size = min(left, _file_size(rng))
        if 0 < left - size < MIN_FILE:  # no tiny remainder: fold it into this file
            size = left
        when = fake.day(rng)
        path = f"{root.rstrip('/')}/{when:%Y}/{when:%m}/{prefix}-{seq:06d}.{rng.choice(extensions)}"
        files.append(GeneratedFile(system_id, host, path, size, path.rsplit(".", 1)[-1]))
        left -= size
    return sorted(files, key=lambda f: f.path)


def _file_size(rng: random.Random) -> int:
    # Log-uniform between MIN_FILE and MAX_FILE: many small receipts, some large scans.
    exponent = rng.uniform(MIN_FILE.bit_length() - 1, MAX_FILE.bit_length() - 1)
    return int(2**exponent)
