"""How the CLI's tables fit the width they are printed in.

rich lays a table out by shrinking its widest columns first, whatever they hold: a
table name folded mid-word (`shop.customer` over `s`) for want of one column, while an
empty `error` column kept its width; at a narrower width its last resort narrowed every
column alike, and a cell it could not wrap lost its end (`…`, or nothing at all). Here
each column says what it holds, and the columns give way in this order, each step only
as far as the table is still too wide, the widest column of a step first:

1. The header of an `id` or a `value` (a status, a count, a time) longer than the
   column's values wraps at its spaces (`delta` over `version`).
2. `detail` (a long technical value, whole in `--json`: a data fingerprint) is cut with
   `…`, down to twelve columns.
3. `text` (a message, a list of counts) wraps at its spaces, down to ten columns (or
   its longest word, up to twenty: `max_failing` stays whole).
4. Only if that is not enough: the table drops its side borders and the padding beside
   its column rules (a plain table: one space between columns instead of two), and
   steps 1 to 3 are taken again from the start in that look.
5. An `id` or a `value` wraps at its spaces (`2025-01-23` over `02:00:07`).
6. Its header folds, down to five columns (`obser` over `ved`): not yet its values.
7. Every column, the widest first, down to five columns, an `id` (a table or rule
   name, a run id: what a reader copies or greps) counted at half its width: a name
   folds only once it is twice as wide as the widest other column, and before it left
   an error message three columns wide.
8. Every column the same way, down to one: a `key` (a run id, copied into the next
   command) folds only now.

No text is ever cut off but a `detail`: every other column folds what does not fit
(`overflow="fold"`), at worst a word split over two lines. A table that fits is drawn as
rich draws it, its widths untouched: printed to a file or a pipe (a width of 100,000) it
is never changed at all. The layout happens when rich draws the table, at the width it
is drawn in (a table inside a `Padding` fits the room the padding leaves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.style import Style
from rich.table import Table
from rich.text import Text

Kind = Literal["key", "id", "value", "text", "detail"]

#: How far a `detail`, then a `text` column gives way before anything else does (a
#: `text` keeps its words up to TEXT_WORD whole: `max_failing`), and how far each column
#: gives way before an `id` does, then before the last step narrows them all alike.
DETAIL_WIDTH = 12
TEXT_WIDTH = 10
TEXT_WORD = 20
NARROW_WIDTH = 5
NARROWEST_WIDTH = 3
#: An `id` column's width counts this much in step 7: it folds only once it is twice
#: as wide as the widest other column.
ID_WEIGHT = 0.5


class _Sizes(NamedTuple):
    data: int  # the widest value
    data_word: int  # the longest word of a value
    head: int  # the header
    head_word: int  # the header's longest word


class FittedTable(Table):
    """A rich Table whose columns, each of a `Kind`, fit the width it is drawn in (see
    the module's docstring). Add columns with `column`, rows with `add_row`."""

    def __init__(self, *, plain: bool = False, **options: Any) -> None:
        """`plain`: the look of the CLI's plain-text tables (no borders, two spaces
        between columns, the header a line like the others); else rich's boxed table."""
        if plain:
            options = {"box": None, "pad_edge": False, "header_style": Style(), **options}
        super().__init__(**options)
        self.kinds: list[Kind] = []
        self._look = (self.box, self.show_edge, self.pad_edge, self.padding)

    def column(self, header: str, kind: Kind, *, right: bool = False) -> None:
        """A column holding `kind`; it folds what does not fit, but a `detail`, cut."""
        detail = kind == "detail"
        self.add_column(
            header,
            overflow="ellipsis" if detail else "fold",
            no_wrap=detail,
            justify="right" if right else "left",
        )
        self.kinds.append(kind)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.fit(console, options)
        yield from super().__rich_console__(console, options)

    def fit(self, console: Console, options: ConsoleOptions) -> None:
        """Set each column's width so that the table fits `options.max_width`."""
        self.box, self.show_edge, self.pad_edge, self.padding = self._look
        for col in self.columns:
            col.width = None
        width = options.max_width if self.width is None else self.width
        sizes = [_sizes(console, options, col) for col in self.columns]
        natural = [max(s.data, s.head) for s in sizes]
        if sum(natural) + self._chrome() <= width:
            return  # rich's own layout: nothing has to give way
        every = range(len(self.columns))
        widths = list(natural)

        def of(*kinds: Kind) -> list[int]:
            return [i for i in every if self.kinds[i] in kinds]

        def narrow(
            among: list[int],
            floors: list[int],
            *,
            level: bool = False,
            weights: Sequence[float] | None = None,
        ) -> None:
            excess = sum(widths) + self._chrome() - width
            if excess > 0:
                _narrow(widths, floors, among, excess, level=level, weights=weights)

        whole = of("key", "id", "value")
        head_words = [max(s.data, s.head_word) for s in sizes]
        for look in ("own", "compact"):  # compact only when the own look does not fit
            if look == "compact":
                self._compact()
                widths[:] = natural
            narrow(whole, head_words)
            detail = [
                min(n, max(s.head_word, DETAIL_WIDTH)) for n, s in zip(natural, sizes, strict=True)
            ]
            narrow(of("detail"), detail, level=True)
            text = [min(n, _text_floor(s)) for n, s in zip(natural, sizes, strict=True)]
            narrow(of("text"), text, level=True)
            if sum(widths) + self._chrome() <= width:
                break
        narrow(whole, [max(s.data_word, s.head_word) for s in sizes])
        narrow(whole, [max(s.data_word, min(s.head_word, NARROW_WIDTH)) for s in sizes])
        # then every column, the widest first, an id counted at half its width: a name
        # stays whole while it is not much wider than the rest (a run id beside dates),
        # and folds before it leaves an error message three columns wide
        weights = [ID_WEIGHT if k == "id" else 1.0 for k in self.kinds]
        narrow(
            of("id", "value", "text", "detail"),
            [min(n, NARROW_WIDTH) for n in natural],
            weights=weights,
        )
        narrow(list(every), [1] * len(widths), weights=weights)
        for col, w in zip(self.columns, widths, strict=True):
            col.width = w

    def _compact(self) -> None:
        """No side borders, and one space of padding between columns (a boxed table keeps
        a rule under its header)."""
        if self.box is not None:
            self.box, self.show_edge = box.SIMPLE_HEAD, False
        self.pad_edge, self.padding = False, (0, 1, 0, 0)

    def _chrome(self) -> int:
        """The width of the borders and the cells' padding, as rich counts them when it
        lays the table out (its `_extra_width` and `_get_padding_width`, private but in
        every rich since 10: a count of our own would drift from the one that draws)."""
        return self._extra_width + sum(self._get_padding_width(i) for i in range(len(self.columns)))


def _text_floor(sizes: _Sizes) -> int:
    return max(sizes.head_word, TEXT_WIDTH, min(sizes.data_word, TEXT_WORD))


def _sizes(console: Console, options: ConsoleOptions, col: Any) -> _Sizes:
    values = [_measure(console, options, c) for c in col.cells]
    head = _measure(console, options, col.header)
    return _Sizes(
        max((m[1] for m in values), default=0),
        max((m[0] for m in values), default=0),
        head[1],
        head[0],
    )


def _measure(console: Console, options: ConsoleOptions, cell: Any) -> tuple[int, int]:
    """A cell's longest word and longest line: of a Text's own characters (a third of
    the time rich's Measurement takes over a 100-rule table), else rich's measure (a
    string of markup)."""
    if isinstance(cell, Text):
        lines = cell.plain.splitlines() or [""]
        words = [w for line in lines for w in line.split()] or [""]
        return max(map(cell_len, words)), max(map(cell_len, lines))
    measured = Measurement.get(console, options, cell)
    return measured.minimum, measured.maximum


def _narrow(
    widths: list[int],
    floors: Sequence[int],
    among: Sequence[int],
    excess: int,
    *,
    level: bool = False,
    weights: Sequence[float] | None = None,
) -> None:
    """Take up to `excess` columns off the columns `among`, none below its floor: the
    widest first, each down to its floor before the next (as few columns change as can:
    a folded value or header); with `level` the widest down to the next widest, then
    those together (text wraps a little in each column rather than much in one); with
    `weights` as `level`, a column's width counted times its weight."""
    if not (level or weights):
        for i in sorted(among, key=lambda i: -widths[i]):
            take = min(excess, widths[i] - floors[i])
            if take > 0:
                widths[i] -= take
                excess -= take
        return
    weight = weights or [1.0] * len(widths)
    while excess > 0:
        open_ = [i for i in among if widths[i] > floors[i]]
        if not open_:
            return
        widest = max(open_, key=lambda i: widths[i] * weight[i])
        # down to the next widest at once (a long message is thousands of columns wide),
        # then one column at a time among equals
        second = max((widths[i] * weight[i] for i in open_ if i != widest), default=0)
        down_to = max(math.ceil(second / weight[widest]), floors[widest])
        take = max(1, min(excess, widths[widest] - down_to))
        widths[widest] -= take
        excess -= take


def print_rows(
    out: Console,
    columns: Sequence[tuple[str, Kind]],
    rows: Sequence[Sequence[str]],
    *,
    indent: int = 0,
    right: Sequence[int] = (),
    colours: dict[int, dict[str, tuple[str | None, bool]]] | None = None,
) -> None:
    """A plain-text table (`render.print_rows`) that did not fit the terminal, as a
    FittedTable in the same look. The cells are text as it is (no markup), already
    escaped; `colours` maps a column to its values' (colour, bold)."""
    table = FittedTable(plain=True)
    for i, (header, kind) in enumerate(columns):
        table.column(header, kind, right=i in right)
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            colour, bold = (colours or {}).get(i, {}).get(cell, (None, False))
            cells.append(Text(cell, style=Style(color=colour, bold=bold or None)))
        table.add_row(*cells)
    # expand: a Padding that fits itself to its content measures the whole table first
    out.print(Padding(table, (0, 0, 0, indent), expand=True) if indent else table)
