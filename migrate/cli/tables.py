"""Terminal tables that stay readable at any width, 80 columns included (presentation only;
the CLI prints them).

A table is laid out when it is drawn, for the width it gets: as it is when it fits; with its
columns narrowed when every column keeps its longest word (ids, addresses and headers are
never broken: rich alone would fold them); otherwise one record per row, the row's id as a
heading and each non-empty cell on a ``column  value`` line, so nothing is lost."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

# Columns whose values are identifiers: never wrapped, never folded.
KEY_COLUMNS = ("id", "system", "stack", "machine", "check", "run", "wave", "census",
               "disposition")
# The column that names a row in the record layout (matched on the header's last word).
HEADING_COLUMNS = ("id", "system", "stack", "machine", "check", "image", "bridge")
CJK_BREAK = 12  # cells: CJK text may break between characters, but not narrower than this
PADDING = 2  # a column's left and right padding
LABEL_WIDTH = 28  # a record's column names, at most


def is_key(column: str, index: int) -> bool:
    return index == 0 or column in KEY_COLUMNS


def widest_line(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.splitlines()), default=0)


def unbreakable(text: Text) -> int:
    """The widest piece of ``text`` a line cannot break: a word (CJK text breaks between
    characters, down to CJK_BREAK cells)."""
    widths = [min(cell_len(word), CJK_BREAK) if cell_len(word) > len(word) else cell_len(word)
              for word in text.plain.split()]
    return max(widths, default=0)


@dataclass
class FittingTable:
    """A titled table of text cells (rich markup allowed) that fits the width it is given."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add_row(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def cells(self, console: Console) -> list[list[Text]]:
        return [[console.render_str(c) for c in row] for row in self.rows]

    def column_ranges(self, console: Console) -> list[tuple[int, int]]:
        """Each column's (narrowest, natural) content width, headers included."""
        grid = [[Text(c) for c in self.columns], *self.cells(console)]
        ranges = []
        for index, column in enumerate(self.columns):
            texts = [row[index] for row in grid if index < len(row)]
            natural = max(widest_line(t) for t in texts)
            narrow = natural if is_key(column, index) else max(unbreakable(t) for t in texts)
            ranges.append((max(narrow, 1), max(natural, 1)))
        return ranges

    def frame(self) -> int:
        """What borders and padding take."""
        return len(self.columns) + 1 + PADDING * len(self.columns)

    def table(self, console: Console, widths: list[int] | None = None) -> Table:
        table = Table(title=self.title, title_justify="left", show_lines=False)
        for index, column in enumerate(self.columns):
            table.add_column(column, overflow="fold", no_wrap=is_key(column, index),
                             width=widths[index] if widths else None)
        for row in self.cells(console):
            table.add_row(*row)
        return table

    def records(self, console: Console) -> Group:
        """One record per row: the heading column's value, then each non-empty cell."""
        names = [c.split()[-1] if c.split() else c for c in self.columns]
        heading = next((i for i, n in enumerate(names) if n in HEADING_COLUMNS), 0)
        parts: list[Text | Padding] = [Text(self.title, style="italic")]
        label = min(max(cell_len(c) for c in self.columns), LABEL_WIDTH)
        for row in self.cells(console):
            parts.append(Text(row[heading].plain, style="bold"))
            grid = Table.grid(padding=(0, 2))
            grid.add_column(width=label, style="dim")
            grid.add_column(overflow="fold")
            for index, cell in enumerate(row):
                if index != heading and cell.plain.strip():
                    grid.add_row(self.columns[index], cell)
            parts.append(Padding(grid, (0, 0, 0, 2), expand=False))
        return Group(*parts)

    def layout(self, console: Console, width: int) -> Table | Group:
        ranges = self.column_ranges(console)
        room = width - self.frame()
        if sum(natural for _narrow, natural in ranges) <= room:
            return self.table(console)
        if sum(narrow for narrow, _natural in ranges) > room:
            return self.records(console)
        return self.table(console, narrowed(ranges, room))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(console, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


def narrowed(ranges: list[tuple[int, int]], room: int) -> list[int]:
    """Widths from each column's narrowest up, the room left shared in proportion to what
    each column would still take (``room`` is at least the sum of the narrowest)."""
    widths = [narrow for narrow, _natural in ranges]
    wants = [natural - narrow for narrow, natural in ranges]
    spare = room - sum(widths)
    total = sum(wants)
    for index, want in enumerate(wants):
        share = min(want, spare * want // total) if total else 0
        widths[index] += share
    left = room - sum(widths)
    for index in range(len(widths)):  # what rounding left, to the first that want it
        give = min(left, ranges[index][1] - widths[index])
        widths[index] += give
        left -= give
    return widths


def fitting_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
                  ) -> FittingTable:
    table = FittingTable(title, list(columns))
    for row in rows:
        table.add_row(*row)
    return table
