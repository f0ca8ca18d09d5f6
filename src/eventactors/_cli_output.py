"""How the inspector's subcommands print: tables for people, JSON for scripts, one-line errors.

Tables use rich (the `cli` extra) when it is installed, else plain aligned columns, as
`ProgressBar` does for `rebuild`. What a store holds is data, never markup or terminal
control: every cell goes to rich as `Text`, and characters that are not printable (escape
sequences, newlines, bidirectional overrides) are shown escaped, as `repr` shows them.
JSON is written by msgspec, so it is always valid: NaN and infinities become null.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from ._inspection_data import envelope_as_data, payload_as_data, utc
from .records import EventEnvelope
from .serialization import Serializer

Row = Sequence[object]
#: The width of a table written to a pipe or a file, where no terminal says how wide to be.
PIPED_WIDTH = 160


def note(command: str, message: str) -> None:
    """One line on stderr, naming the subcommand: a remark beside the output."""
    print(f"eventactors {command}: {message}", file=sys.stderr)


def error(command: str, message: str) -> int:
    """The one line a failed subcommand prints on stderr; returns its exit code."""
    note(command, message)
    return 1


def json_text(data: Any, *, indent: int | None = None) -> str:
    """`data` as JSON text: one line, or indented by `indent` spaces."""
    encoded = msgspec.json.encode(data)
    return (encoded if indent is None else msgspec.json.format(encoded, indent=indent)).decode()


def print_json(data: Any, *, line: bool = False) -> None:
    """One JSON document: indented (what `--json` prints for everything but event listings),
    or with `line`, on one line (one event of a listing)."""
    print(json_text(data, indent=None if line else 2), flush=True)


def printable(text: str) -> str:
    """`text` with every character that is not printable escaped as `repr` would show it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def moment(timestamp: datetime | None) -> str:
    """UTC, to the millisecond: what a person compares across rows."""
    if timestamp is None:
        return "-"
    return utc(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def print_table(
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    title: str | None = None,
    numbers: Collection[str] = (),
) -> None:
    """A table, with the columns named in `numbers` right-aligned."""
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    title = None if title is None else printable(title)
    right = {index for index, column in enumerate(columns) if column in numbers}
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        _print_plain(columns, cells, title, right)
        return
    table = Table(
        title=None if title is None else Text(title),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for index, column in enumerate(columns):
        last = index == len(columns) - 1  # only the last column (a payload) wraps
        table.add_column(
            Text(column), justify="right" if index in right else "left", no_wrap=not last
        )
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    Console(file=sys.stdout, highlight=False, width=PIPED_WIDTH if piped else None).print(table)


def _print_plain(
    columns: Sequence[str], cells: list[list[str]], title: str | None, right: Collection[int]
) -> None:
    if title:
        print(title)
    widths = [max(len(text) for text in column) for column in zip(columns, *cells, strict=True)]
    for row in [list(columns), *cells]:
        print(line(row, widths, right))


def line(cells: Sequence[str], widths: Sequence[int], right: Collection[int] = ()) -> str:
    """Cells padded to `widths` (escaped, so that one event is one line of the terminal)."""
    parts = [
        printable(cell).rjust(width) if index in right else printable(cell).ljust(width)
        for index, (cell, width) in enumerate(zip(cells, widths, strict=False))
    ]
    return "  ".join(parts).rstrip()


# -- events -------------------------------------------------------------------------------

_STREAM = 1  # the column a listing of one stream leaves out
EVENT_COLUMNS = ("position", "stream", "seq", "time", "type", "payload")
#: The widths of a followed event's line, so that live lines line up with each other.
LINE_WIDTHS = (8, 24, 5, 23, 16, 0)


def event_row(serializer: Serializer, envelope: EventEnvelope) -> list[str]:
    return [
        str(envelope.global_position),
        envelope.persistence_id,
        str(envelope.sequence_number),
        moment(envelope.timestamp),
        envelope.event_type,
        json_text(payload_as_data(serializer, envelope), indent=0),
    ]


def print_events(
    serializer: Serializer,
    envelopes: Sequence[EventEnvelope],
    *,
    title: str | None,
    one_stream: bool,
) -> None:
    """One table of events: a listing prints one per page, so it never holds more."""
    rows = [event_row(serializer, envelope) for envelope in envelopes]
    columns = list(EVENT_COLUMNS)
    if one_stream:
        for cells in [columns, *rows]:
            del cells[_STREAM]
    print_table(columns, rows, title=title, numbers=("position", "seq"))


def print_event(serializer: Serializer, envelope: EventEnvelope, *, json_lines: bool) -> None:
    """One event on one line, flushed: the form of `events --follow` and of `--json`."""
    if json_lines:
        print_json(envelope_as_data(serializer, envelope), line=True)
    else:
        print(line(event_row(serializer, envelope), LINE_WIDTHS, (0, 2)), flush=True)
