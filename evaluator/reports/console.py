"""Tables and lines for a terminal, a pipe or a file: data is never markup, nothing is cut.

Every cell, title and line goes to rich as a Text, so `[bold]` in a model name
or a path prints as typed. Column widths are decided here, not by rich: rich
shrinks columns below their longest word when a table is wider than the
console and ellipsises what no longer fits ("Scene Unde…", "100.…"). Here a
column is never narrower than its longest word, so a cell wraps between words
and a number is never split. A table too wide even so is split into parts that
repeat its key columns; narrower still, each row becomes a block of
"header: value" lines. `Grid.markdown()` gives the same table as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Column as RichColumn
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "right"  # numbers right (kept on one line), text "left" (wraps)
    key: bool = False  # names the row: repeated in each part of a split table
    optional: bool = False  # left out when every cell is empty
    wrap: bool | None = None  # may wrap between words (default: text columns do)

    @property
    def wraps(self) -> bool:
        return self.justify == "left" if self.wrap is None else self.wrap


def _overhead(n: int) -> int:
    """Borders and padding of a rich table of n columns (edges, separators, 1 space each side)."""
    return 3 * n + 1


def _words(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def _lines(text: str) -> int:
    return max((cell_len(x) for x in text.splitlines()), default=0)


def _fit(mins: list[int], maxs: list[int], text: list[bool], width: int) -> list[int] | None:
    """Column widths within `width`, each at least its minimum; room left over goes to the
    text columns first (in proportion to what they lack), then to the rest (their headers),
    the smallest need first. None when the minimums do not fit."""
    if sum(maxs) + _overhead(len(maxs)) <= width:
        return list(maxs)
    spare = width - sum(mins) - _overhead(len(mins))
    if spare < 0:
        return None
    widths = list(mins)
    lacking = sum(maxs[i] - mins[i] for i in range(len(mins)) if text[i])
    if lacking:
        share = min(1.0, spare / lacking)
        for i in range(len(mins)):
            if text[i]:
                give = int((maxs[i] - mins[i]) * share)
                widths[i] += give
                spare -= give
    for i in sorted(range(len(mins)), key=lambda i: (not text[i], maxs[i] - widths[i])):
        give = min(spare, maxs[i] - widths[i])
        widths[i] += give
        spare -= give
    return widths


@dataclass
class Grid:
    """A table's content (plain strings) that renders to fit any width."""

    title: str
    columns: list[Column]
    rows: list[list[str]] = field(default_factory=list)

    def add_row(self, *cells: object) -> None:
        row = ["" if c is None else str(c) for c in cells]
        if len(row) != len(self.columns):
            raise ValueError(f"{self.title}: {len(row)} cells for {len(self.columns)} columns")
        self.rows.append(row)

    def _measure(self, i: int) -> tuple[int, int, int]:
        """(longest word, longest cell line, longest line with the header) of column i."""
        header, cells = self.columns[i].header, [r[i] for r in self.rows]
        words = max(_words(t) for t in [header, *cells])
        cell_lines = max((_lines(t) for t in cells), default=0)
        return max(words, 1), max(cell_lines, words, 1), max(cell_lines, _lines(header), 1)

    def _shown(self) -> list[int]:
        return [i for i, c in enumerate(self.columns)
                if not (c.optional and all(not r[i] for r in self.rows))]

    def _parts(self, width: int) -> list[tuple[list[int], list[int]]] | None:
        """[(column indices, widths)] of the tables to draw, or None for the row blocks.

        Numbers stay on one line (their column is as wide as its widest cell); text wraps
        between words; key columns stay whole while that leaves room for another column."""
        sizes = {i: self._measure(i) for i in self._shown()}
        keys = [i for i in sizes if self.columns[i].key]
        rest = [i for i in sizes if not self.columns[i].key]
        for whole_keys in (True, False):
            parts = self._split(keys, rest, sizes, whole_keys, width)
            if parts is not None:
                return parts
        return None

    def _fit(self, cols: list[int], sizes: dict, whole_keys: bool, width: int) -> list[int] | None:
        text = [self.columns[i].wraps and not self.columns[i].key for i in cols]
        mins = [sizes[i][2] if whole_keys and self.columns[i].key else
                sizes[i][0] if self.columns[i].wraps else sizes[i][1] for i in cols]
        maxs = [max(m, sizes[i][2]) for m, i in zip(mins, cols, strict=True)]
        return _fit(mins, maxs, text, width)

    def _split(self, keys: list[int], rest: list[int], sizes: dict, whole_keys: bool,
               width: int) -> list[tuple[list[int], list[int]]] | None:
        whole = self._fit(keys + rest, sizes, whole_keys, width)
        if whole is not None:
            return [(keys + rest, whole)]
        if not rest:
            return None
        parts, current = [], []
        for i in rest:
            if self._fit(keys + current + [i], sizes, whole_keys, width) is not None:
                current.append(i)
                continue
            if not current or self._fit(keys + [i], sizes, whole_keys, width) is None:
                return None  # this column does not fit beside the keys at all
            parts.append(current)
            current = [i]
        parts.append(current)
        return [(keys + p, self._fit(keys + p, sizes, whole_keys, width)) for p in parts]

    def renderables(self, width: int) -> list[RenderableType]:
        parts = self._parts(width)
        if parts is None:
            return [self._blocks()]
        out = []
        for n, (cols, widths) in enumerate(parts, 1):
            title = self.title if len(parts) == 1 else f"{self.title}\n(part {n} of {len(parts)})"
            table = Table(*(RichColumn(Text(self.columns[i].header),
                                       justify=self.columns[i].justify, width=w, overflow="fold")
                            for i, w in zip(cols, widths, strict=True)),
                          title=Text(title) if title else None)
            for row in self.rows:
                table.add_row(*(Text(row[i]) for i in cols))
            out.append(table)
        return out

    def _blocks(self) -> Text:
        """Each row as "header: value" lines: legible at any width."""
        text = Text(self.title + "\n" if self.title else "")
        shown = self._shown()
        for row in self.rows:
            for c, cell in ((self.columns[i], row[i]) for i in shown):
                if cell:
                    text.append(f"  {c.header}: {cell}\n" if not c.key else f"{cell}\n")
            text.append("\n")
        return text

    def markdown(self) -> str:
        def cell(s: str) -> str:
            return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")

        align = {"right": "---:", "left": ":---", "center": ":---:"}
        head, *rest = self.title.split("\n") if self.title else [""]
        lines = ([f"**{cell(head)}**" + ("  " if rest else ""), *(f"{cell(x)}  " for x in rest), ""]
                 if self.title else [])
        shown = self._shown()
        lines.append("| " + " | ".join(cell(self.columns[i].header) for i in shown) + " |")
        lines.append("|" + "|".join(align.get(self.columns[i].justify, "---") for i in shown) + "|")
        lines += ["| " + " | ".join(cell(r[i]) for i in shown) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"


def show(console: Console, grid: Grid) -> None:
    for r in grid.renderables(console.width):
        console.print(r)


def say(console: Console, text: str, style: str | None = None, soft_wrap: bool = False) -> None:
    """One line of text, printed as typed (never markup); it wraps between words."""
    console.print(Text(text, style=style or ""), soft_wrap=soft_wrap)
