"""How the CLI's tables fit the width they are printed in.

A table that fits is drawn as rich draws it, its widths untouched: printed to a file or
a pipe (a width of 100,000) it is never changed at all. One that does not fit gives way
as a person laying it out by hand would, each step only as far as the table is still
too wide:

1. A header wraps at its spaces (`delta` over `version`), never inside a word: no column
   is ever narrower than its header's longest word.
2. A `detail` (a long technical value, whole in `--json`: a data fingerprint) is cut
   with `…`, down to twelve columns.
3. A `text` (a message, an error) wraps at its words, down to twenty columns; a `list`
   (`1 pass, 1 warn`) wraps between its items, never inside one; a `value` longer than
   UNIT_WIDTH (a schema rule's differences) wraps at its words. A `key` (what names the
   row: a table, a rule, a run id) and a shorter `value` (`max_failing 0`, `2.67%`, a
   date and time, an outcome) are units: they never wrap.
4. A column with nothing in it is left out (an empty `error` column: nothing is lost),
   and steps 1 to 3 are taken again from the start.
5. The table takes its compact look, and steps 1 to 3 again: one space between columns,
   and a boxed table loses its side borders and its rules between columns (it keeps the
   one under its header).
6. Columns are left out, the least useful first, in the order the table gives (`hide`:
   for `validate` the rule's `type` goes first); after each, steps 1 to 3 and 5 are
   taken again, from the table's own look. A line under the table names those that
   held something: `(type hidden to fit 80 columns; --json has every field)`.
7. Only when every column in `hide` is gone and the rest is still too wide (a run id
   alone is wider than a 20-column terminal): the columns fold, a word split over two
   lines, the `key` last; a header's word only if even those do not fit.

No text is ever cut off but a `detail`. The layout happens when rich draws the table, at
the width it is drawn in (a table inside a `Padding` fits the room the padding leaves).
A command printing several boxed tables (`status`) draws them all in the compact look
when one of them needs it (`compact`), not a boxed table over a bare one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.style import Style
from rich.table import Table
from rich.text import Text

Kind = Literal["key", "value", "list", "text", "detail"]

#: A `value` up to this wide is one unit, never wrapped (`2026-12-01 07:05:14`,
#: `completed (partial)`); a longer one (a schema rule's differences) wraps at its words.
UNIT_WIDTH = 24
#: How far a `detail`, then a `text`, gives way before columns are left out.
DETAIL_WIDTH = 12
TEXT_WIDTH = 20
#: In the last resort, how far the columns fold before one is narrower still, and how
#: much the key's width counts (a run id folds only once it is twice as wide as the rest).
NARROW_WIDTH = 5
KEY_WEIGHT = 0.5
#: What a list's items are joined by (`1 pass, 1 warn`): it wraps only there.
LIST_SEPARATOR = ", "


class _Sizes(NamedTuple):
    natural: int  # the widest value or the header, what rich gives the column
    whole: int  # the widest value, with the header's longest word: its header wrapped
    floor: int  # the narrowest the column's kind allows before columns are left out
    head_word: int  # the header's longest word: no column is narrower
    empty: bool  # no row has a value in it


class _Plan(NamedTuple):
    shown: list[int]  # the columns drawn, in order
    widths: list[int]  # their widths
    compact: bool  # the compact look


class FittedTable(Table):
    """A rich Table whose columns, each of a `Kind`, fit the width it is drawn in (see
    the module's docstring). Add columns with `column`, rows with `add_row`."""

    def __init__(
        self,
        *,
        plain: bool = False,
        hide: Sequence[str] = (),
        said: set[str] | None = None,
        **options: Any,
    ) -> None:
        """`plain`: the look of the CLI's plain-text tables (no borders, two spaces
        between columns, the header a line like the others); else rich's boxed table.
        `hide`: the headers of the columns that may be left out, the least useful first.
        `said`: the notes of hidden columns printed already (a command printing several
        tables says each once)."""
        if plain:
            options = {"box": None, "pad_edge": False, "header_style": Style(), **options}
        super().__init__(**options)
        self.kinds: list[Kind] = []
        self.hide = tuple(hide)
        self.said = said
        #: Whether the table is drawn in its compact look, even where its own one fits
        #: (as the other tables the command prints are).
        self.compact = False
        self._chromes: dict[tuple[int, bool], int] = {}

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
        width = options.max_width if self.width is None else self.width
        sizes = [self._sizes(console, options, i) for i in range(len(self.columns))]
        plan = self.plan(sizes, width)
        if plan is None:  # it fits: rich's own layout, nothing has to give way
            yield from super().__rich_console__(console, options)
            return
        drawn = self._drawn(plan)
        yield from Table.__rich_console__(drawn, console, options)
        hidden = [
            str(self.columns[i].header)
            for i in range(len(self.columns))
            if i not in plan.shown and not sizes[i].empty
        ]
        note = _note(hidden, console.width, options.max_width)
        if note and (self.said is None or note not in self.said):
            if self.said is not None:
                self.said.add(note)
            yield Text(note, style="dim")

    def plan(self, sizes: Sequence[_Sizes], width: int) -> _Plan | None:
        """The columns to draw and their widths for the table to fit `width`; None when
        it fits as it is (in its own look: `compact` asks for the compact one)."""
        every = list(range(len(self.columns)))
        looks = (True,) if self.compact else (False, True)
        natural = [s.natural for s in sizes]
        if sum(natural) + self._chrome(len(every), compact=self.compact) <= width:
            return _Plan(every, natural, compact=True) if self.compact else None
        # all the columns, wrapped headers and text in the table's own look; then without
        # its empty columns, in either look; then without each column of `hide` in turn
        attempts: list[tuple[list[int], tuple[bool, ...]]] = []
        if not self.compact:
            attempts.append((every, (False,)))
        shown = [i for i in every if not (sizes[i].empty and self.kinds[i] != "key")]
        attempts.append((shown, looks))
        for name in self.hide:
            drop = [i for i in shown if self.columns[i].header == name]
            if drop and self.kinds[drop[0]] != "key":
                shown = [i for i in shown if i != drop[0]]
                attempts.append((shown, looks))
        for columns, tried in attempts:
            for compact in tried:
                widths = self._narrowed(sizes, columns, width, compact=compact)
                if sum(widths) + self._chrome(len(columns), compact=compact) <= width:
                    return _Plan(columns, widths, compact)
        return _Plan(shown, self._folded(sizes, shown, width), compact=True)

    def wants_compact(self, console: Console) -> bool:
        """Whether this table, printed on `console` as it is, takes its compact look to
        fit (a command printing several tables gives them all the look: `compact`)."""
        options = console.options
        sizes = [self._sizes(console, options, i) for i in range(len(self.columns))]
        plan = self.plan(sizes, options.max_width if self.width is None else self.width)
        return plan is not None and plan.compact

    def _narrowed(
        self, sizes: Sequence[_Sizes], shown: list[int], width: int, *, compact: bool
    ) -> list[int]:
        """Steps 1 to 3 (the module's docstring), in a look: the widths of the `shown`
        columns, each no narrower than its kind allows."""
        widths = [sizes[i].natural for i in shown]
        chrome = self._chrome(len(shown), compact=compact)

        def narrow(kinds: Iterable[Kind], floors: list[int], *, level: bool) -> None:
            excess = sum(widths) + chrome - width
            among = [j for j, i in enumerate(shown) if self.kinds[i] in kinds]
            if excess > 0:
                _narrow(widths, floors, among, excess, level=level)

        narrow(("key", "value"), [sizes[i].whole for i in shown], level=False)
        narrow(("detail",), [sizes[i].floor for i in shown], level=True)
        narrow(("text", "list", "value"), [sizes[i].floor for i in shown], level=True)
        return widths

    def _folded(self, sizes: Sequence[_Sizes], shown: list[int], width: int) -> list[int]:
        """Step 7: the columns fold, the widest first, the key counted at half its width
        (a rule's name folds only once it is twice as wide as its message)."""
        widths = self._narrowed(sizes, shown, width, compact=True)
        every = list(range(len(shown)))
        heads = [sizes[i].head_word for i in shown]
        weights = [KEY_WEIGHT if self.kinds[i] == "key" else 1.0 for i in shown]
        for floors in (
            [max(h, min(w, NARROW_WIDTH)) for h, w in zip(heads, widths, strict=True)],
            [max(h, 1) for h in heads],
            [1] * len(shown),  # even the headers' words do not fit
        ):
            excess = sum(widths) + self._chrome(len(shown), compact=True) - width
            if excess > 0:
                _narrow(widths, floors, every, excess, level=True, weights=weights)
        return widths

    def _drawn(self, plan: _Plan) -> Table:
        """This table as rich draws it in `plan`: its shown columns at their widths, a
        list's items wrapped between them, in its own look or the compact one."""
        drawn = copy.copy(self)
        columns = []
        for j, (i, w) in enumerate(zip(plan.shown, plan.widths, strict=True)):
            col = self.columns[i]
            cells = col._cells
            if self.kinds[i] == "list":
                cells = [_wrapped_list(c, w) for c in cells]
            columns.append(dataclasses.replace(col, _index=j, width=w, _cells=list(cells)))
        drawn.columns = columns
        if plan.compact:
            _compact(drawn)
        return drawn

    def _chrome(self, count: int, *, compact: bool) -> int:
        """The width of the borders and the cells' padding of `count` columns, as rich
        counts them when it lays the table out (its `_extra_width` and
        `_get_padding_width`, private but in every rich since 10: a count of our own
        would drift from the one that draws)."""
        known = self._chromes.get((count, compact))
        if known is not None:
            return known
        scratch = copy.copy(self)
        scratch.columns = [dataclasses.replace(c, _cells=[]) for c in self.columns[:1]] * count
        if compact:
            _compact(scratch)
        chrome = scratch._extra_width + sum(scratch._get_padding_width(i) for i in range(count))
        self._chromes[(count, compact)] = chrome
        return chrome

    def _sizes(self, console: Console, options: ConsoleOptions, index: int) -> _Sizes:
        col = self.columns[index]
        kind = self.kinds[index]
        head_word, head = _measure(console, options, col.header)
        values = [_measure(console, options, c) for c in col._cells]
        data = max((m[1] for m in values), default=0)
        natural = max(data, head)
        whole = max(data, head_word)
        if kind == "detail":
            floor = max(head_word, min(natural, DETAIL_WIDTH))
        elif kind == "text":
            floor = max(head_word, min(natural, TEXT_WIDTH))
        elif kind == "list":
            floor = max([head_word] + [_longest_item(console, c) for c in col._cells])
        else:  # a unit, but a long value, which wraps at its words
            units = [line if line <= UNIT_WIDTH else word for word, line in values]
            floor = max([head_word, *units])
        return _Sizes(natural, whole, floor, head_word, empty=data == 0)


def _compact(table: Table) -> None:
    """One space between columns, no side borders (a boxed table keeps a rule under its
    header: its columns are split by that space)."""
    if table.box is not None:
        table.box, table.show_edge = box.SIMPLE_HEAD, False
        table.pad_edge, table.padding = False, (0, 0, 0, 0)
    else:
        table.pad_edge, table.padding = False, (0, 1, 0, 0)


def _note(hidden: Sequence[str], width: int, room: int) -> str:
    """`(type and failing hidden to fit 80 columns; --json has every field)`, or shorter
    where that is wider than `room`: one line under the table."""
    if not hidden:
        return ""
    names = hidden[0] if len(hidden) == 1 else f"{', '.join(hidden[:-1])} and {hidden[-1]}"
    for note in (
        f"({names} hidden to fit {width} columns; --json has every field)",
        f"({names} hidden; --json has all)",
    ):
        if cell_len(note) <= room:
            return note
    return f"({len(hidden)} columns hidden; --json has all)"


def _measure(console: Console, options: ConsoleOptions, cell: RenderableType) -> tuple[int, int]:
    """A cell's longest word and longest line: of a Text's own characters (a third of
    the time rich's Measurement takes over a 100-rule table), else rich's measure (a
    string of markup)."""
    if isinstance(cell, Text):
        lines = cell.plain.splitlines() or [""]
        words = [w for line in lines for w in line.split()] or [""]
        return max(map(cell_len, words)), max(map(cell_len, lines))
    measured = Measurement.get(console, options, cell)
    return measured.minimum, measured.maximum


def _plain(console: Console, cell: RenderableType) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return console.render_str(cell).plain
    return ""


def _longest_item(console: Console, cell: RenderableType) -> int:
    """The widest item of a list cell, its separator's comma included."""
    items = _plain(console, cell).split(LIST_SEPARATOR)
    return max(cell_len(item) + (i < len(items) - 1) for i, item in enumerate(items))


def _wrapped_list(cell: RenderableType, width: int) -> RenderableType:
    """A list cell (`1 pass, 1 warn`) with a line break after the separators where its
    line would be wider than `width`: it wraps between its items, never inside one (rich
    wraps at any space: `1 pass, 1` over `warn`). An item wider than `width` folds."""
    if not isinstance(cell, str | Text):
        return cell
    text = cell.plain if isinstance(cell, Text) else cell
    if cell_len(text) <= width:
        return cell
    items = text.split(LIST_SEPARATOR)
    breaks: set[int] = set()  # after which items a line ends
    line = 0
    for i, item in enumerate(items):
        size = cell_len(item) + (i < len(items) - 1)
        if line and line + 1 + size > width:
            breaks.add(i - 1)
            line = size
        else:
            line += size + (1 if line else 0)
    joined = "".join(
        item + ("" if i == len(items) - 1 else ",\n" if i in breaks else LIST_SEPARATOR)
        for i, item in enumerate(items)
    )
    if isinstance(cell, Text):
        return Text(joined, style=cell.style, justify=cell.justify)
    return joined


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
    a wrapped header); with `level` the widest down to the next widest, then those
    together (text wraps a little in each column rather than much in one); `weights`
    count a column's width times its weight."""
    if not level:
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
    hide: Sequence[str] = (),
    said: set[str] | None = None,
) -> None:
    """A plain-text table (`render.print_rows`) that did not fit the terminal, as a
    FittedTable in the same look. The cells are text as it is (no markup), already
    escaped; `colours` maps a column to its values' (colour, bold)."""
    table = FittedTable(plain=True, hide=hide, said=said)
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
