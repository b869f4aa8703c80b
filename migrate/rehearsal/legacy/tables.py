"""Tables of a legacy database: columns from the catalogue, rows from the seeded PRNG, SQL.

Values are kept as the text PostgreSQL prints for them (``numeric(14,2)`` as ``12.50``,
``timestamp(0)`` as ``2021-03-04 10:11:12``...), so the same strings serve three
purposes: the ``COPY`` data that loads them, the JSON the application returns, and a
checksum that can be computed both here and inside PostgreSQL:

    count(*) and sum of the first 64 bits (signed) of md5(row::text)

:func:`checksum_sql` is that query; :func:`table_checksum` computes the same sum from the
generated rows by rebuilding PostgreSQL's record text (``record_out`` quoting rules).
The sum does not depend on the order of the rows.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from migrate.core.model import Database, Item, Resource
from migrate.rehearsal.legacy import fake

# Item type -> PostgreSQL column type.
PG_TYPES = {
    "string": "text",
    "text": "text",
    "integer": "bigint",
    "number": "numeric",
    "decimal": "numeric(14,2)",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp(0)",
    "binary": "bytea",
}
FILLER_TABLE = "legacy_records"
MARKER_TABLE = "legacy_seed"
PG_IDENTIFIER_BYTES = 63
TABLE_FORMATS = ("service_api", "database")
# Share of a database's budget given to the catalogue tables; the filler takes the rest.
CATALOGUE_SHARE = 0.1
MIN_CATALOGUE_ROWS = 20

Row = tuple[str | None, ...]
ValueMaker = Callable[[random.Random], str]


@dataclass(frozen=True)
class Column:
    name: str  # the catalogue item name (the JSON key)
    column: str  # the PostgreSQL column (the item name, shortened if too long)
    type: str  # the item type

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.type]


@dataclass
class TableSeed:
    """One table and its generated rows (values as PostgreSQL prints them)."""

    name: str
    columns: tuple[Column, ...]
    rows: list[Row] = field(default_factory=list, repr=False)
    resource_code: str | None = None
    resource_name: str | None = None
    interface_path: str | None = None
    interface_service: str | None = None
    copy_lines: list[str] = field(default_factory=list, repr=False)
    _checksum: tuple[int, str] | None = field(default=None, repr=False, compare=False)

    def checksum(self) -> str:
        """:func:`table_checksum` of the rows, remembered while the rows stay the same."""
        if self._checksum is None or self._checksum[0] != len(self.rows):
            self._checksum = (len(self.rows), table_checksum(self.rows))
        return self._checksum[1]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_name_for(resource: Resource, taken: set[str]) -> str:
    """``/api/birth-certificates`` -> ``birth_certificates``; else ``res_4_130_001_0002``."""
    base = ""
    if resource.interface is not None:
        last = resource.interface.path.rstrip("/").rsplit("/", 1)[-1]
        base = re.sub(r"[^a-z0-9_]", "_", last.lower()).strip("_")
    if not base or not base[0].isalpha():
        base = "res_" + resource.code.replace("/", "_")
    name, n = base[:PG_IDENTIFIER_BYTES], 2
    while name in taken or name in (FILLER_TABLE, MARKER_TABLE):
        name, n = f"{base[:55]}_{n}", n + 1
    taken.add(name)
    return name


def _fit_identifier(name: str) -> str:
    """PostgreSQL silently truncates identifiers to 63 bytes; do it here, on a character."""
    while len(name.encode("utf-8")) > PG_IDENTIFIER_BYTES:
        name = name[:-1]
    return name


def columns_for(items: list[Item]) -> tuple[Column, ...]:
    taken = {"id"}
    columns = []
    for item in items:
        column, n = _fit_identifier(item.name), 2
        while column in taken:
            column, n = _fit_identifier(item.name)[:-2] + f"_{n}", n + 1
        taken.add(column)
        columns.append(Column(item.name, column, item.type))
    return tuple(columns)


# ---------------------------------------------------------------- values


def _by_type(kind: str) -> ValueMaker:
    makers: dict[str, ValueMaker] = {
        "string": lambda r: f"{fake.person_name(r)}{r.randrange(1000):03d}",
        "text": lambda r: fake.remark(r, 3),
        "integer": lambda r: str(r.randrange(1, 1000)),
        "number": lambda r: f"{r.randrange(100000) / 100:.2f}",
        "decimal": lambda r: fake.amount(r),
        "boolean": lambda r: r.choice(("t", "f")),
        "date": lambda r: fake.day(r).isoformat(),
        "datetime": lambda r: fake.moment(r).isoformat(sep=" "),
        "binary": lambda r: "\\x" + r.randbytes(16).hex(),
    }
    return makers[kind]


# Item-name hints for string, integer and decimal items: realistic values by meaning.
_NAMED: tuple[tuple[str, tuple[str, ...], ValueMaker], ...] = (
    ("姓名", ("string",), fake.person_name),
    ("权利人", ("string",), fake.person_name),
    ("身份证", ("string",), fake.id_card_number),
    ("证件号", ("string",), fake.id_card_number),
    ("统一社会信用代码", ("string",), fake.uscc),
    ("企业名称", ("string",), fake.company_name),
    ("单位名称", ("string",), fake.company_name),
    ("登记状态", ("string",), lambda r: r.choice(("存续", "在业", "吊销", "注销", "迁出"))),
    ("评价等级", ("string",), lambda r: r.choice(("A", "A", "B", "B", "B", "C", "D"))),
    ("不动产单元号", ("string",), fake.realty_unit_number),
    ("出生医学证明编号", ("string",), fake.birth_certificate_number),
    ("用户标识", ("string",), fake.user_token),
    ("区县", ("string",), lambda r: r.choice(fake.DISTRICTS)),
    ("登记类型", ("string",), lambda r: r.choice(("首次登记", "转移登记", "变更登记",
                                                   "抵押登记", "注销登记"))),
    ("月数", ("integer",), lambda r: str(r.randrange(0, 481))),
    ("人口", ("integer",), lambda r: str(r.choice((1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6)))),
    ("级别", ("integer",), lambda r: str(r.choice((1, 2, 2, 3, 3, 3, 4)))),
    ("件数", ("integer",), lambda r: str(r.randrange(0, 2000))),
    ("金额", ("decimal", "number"), lambda r: fake.amount(r, 200, 3000)),
)


def value_maker(item: Column) -> ValueMaker:
    for hint, kinds, maker in _NAMED:
        if hint in item.name and item.type in kinds:
            return maker
    return _by_type(item.type)


def catalogue_rows(rng: random.Random, columns: tuple[Column, ...]) -> Iterator[Row]:
    makers = [value_maker(c) for c in columns]
    row_id = 0
    while True:
        row_id += 1
        yield (str(row_id), *(make(rng) for make in makers))


FILLER_COLUMNS = (
    Column("姓名", "姓名", "string"),
    Column("公民身份号码", "公民身份号码", "string"),
    Column("业务类型", "业务类型", "string"),
    Column("业务日期", "业务日期", "date"),
    Column("金额", "金额", "decimal"),
    Column("经办机构", "经办机构", "string"),
    Column("备注", "备注", "text"),
)


def filler_rows(rng: random.Random) -> Iterator[Row]:
    row_id = 0
    while True:
        row_id += 1
        yield (str(row_id), fake.person_name(rng), fake.id_card_number(rng),
               rng.choice(fake.BUSINESS_TYPES), fake.day(rng).isoformat(),
               fake.amount(rng, 10, 20000), f"示例市{rng.choice(fake.DISTRICTS)}政务服务中心",
               fake.remark(rng, rng.randrange(8, 40)))


# ---------------------------------------------------------------- COPY and checksums

_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def copy_line(row: Row) -> str:
    return "\t".join(map(_copy_value, row)) + "\n"


def take_rows(table: TableSeed, rows: Iterator[Row], budget_bytes: int,
              minimum: int = 0) -> int:
    """Put rows into ``table`` until their COPY text reaches ``budget_bytes`` (and at least
    ``minimum`` rows); return the bytes used. The COPY lines are kept for the SQL."""
    table.rows, table.copy_lines = [], []
    used = 0
    while used < budget_bytes or len(table.rows) < minimum:
        row = next(rows)
        line = copy_line(row)
        used += len(line.encode("utf-8"))
        table.rows.append(row)
        table.copy_lines.append(line)
    return used


_RECORD_SPECIAL = re.compile(r'["\\(), \t\n\r\v\f]')


def _record_value(value: str | None) -> str:
    if value is None:
        return ""
    if value == "" or _RECORD_SPECIAL.search(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '""') + '"'
    return value


def record_text(row: Row) -> str:
    """The text of ``row::text`` as PostgreSQL's ``record_out`` writes it (C ctype)."""
    return "(" + ",".join(map(_record_value, row)) + ")"


def row_hash(row: Row) -> int:
    digest = hashlib.md5(record_text(row).encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def table_checksum(rows: list[Row]) -> str:
    """Order-independent checksum of rows; equals what :func:`checksum_sql` returns."""
    return str(sum(map(row_hash, rows)))


def checksum_sql(table: str) -> str:
    """A query giving (rows, checksum) of ``table`` in PostgreSQL, comparable with
    ``expected_digests``: the checksum as text, so no client rounds it."""
    return (f"SELECT count(*) AS rows, coalesce(sum(('x' || substr(md5(t::text), 1, 16))"
            f"::bit(64)::bigint), 0)::text AS checksum FROM {quote_ident(table)} AS t")


# ---------------------------------------------------------------- building tables


def catalogue_tables(resources: list[Resource]) -> list[TableSeed]:
    """One empty table per catalogue resource exchanged as a service API or database."""
    taken: set[str] = set()
    tables = []
    for resource in resources:
        if resource.format not in TABLE_FORMATS:
            continue
        interface = resource.interface
        tables.append(TableSeed(
            name=table_name_for(resource, taken),
            columns=columns_for(resource.items),
            resource_code=resource.code,
            resource_name=resource.name,
            interface_path=interface.path if interface else None,
            interface_service=interface.service if interface else None,
        ))
    return tables


def fill_tables(system_id: str, host: str, database: Database, tables: list[TableSeed],
                budget_bytes: int) -> TableSeed:
    """Fill the catalogue tables and make the filler table; together about the budget."""
    share = int(budget_bytes * CATALOGUE_SHARE) // max(len(tables), 1)
    used = 0
    for table in tables:
        rng = fake.rng_for(system_id, host, f"db:{database.name}/{table.name}")
        used += take_rows(table, catalogue_rows(rng, table.columns), share, MIN_CATALOGUE_ROWS)
    rng = fake.rng_for(system_id, host, f"db:{database.name}/{FILLER_TABLE}")
    filler = TableSeed(FILLER_TABLE, FILLER_COLUMNS)
    take_rows(filler, filler_rows(rng), budget_bytes - used)
    return filler


def create_table_sql(table: TableSeed, owner: str) -> str:
    columns = ",\n    ".join(f"{quote_ident(c.column)} {c.pg_type}" for c in table.columns)
    name = quote_ident(table.name)
    comment = table.resource_name or "业务档案（历史数据）"
    return (
        f"CREATE TABLE {name} (\n    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        + (f",\n    {columns}" if columns else "") + "\n);\n"
        f"COMMENT ON TABLE {name} IS {quote_literal(comment)};\n"
        f"ALTER TABLE {name} OWNER TO {quote_ident(owner)};\n"
    )


def copy_sql(table: TableSeed) -> Iterator[str]:
    names = ", ".join(["id", *(quote_ident(c.column) for c in table.columns)])
    yield f"COPY {quote_ident(table.name)} ({names}) FROM stdin;\n"
    if len(table.copy_lines) == len(table.rows):
        yield from table.copy_lines
    else:
        yield from map(copy_line, table.rows)
    yield "\\.\n"
    # Rows were loaded with explicit ids: new rows continue after them.
    yield (f"SELECT setval(pg_get_serial_sequence({quote_literal(quote_ident(table.name))}, "
           f"'id'), {max(len(table.rows), 1)}, {'true' if table.rows else 'false'});\n")
