"""Listings in the openstack CLI's formats (cliff's): -f table|json|value|csv|yaml and -c COLUMN.

`value` prints each row's values separated by spaces, one row a line, no header (for shell loops);
`csv` a header and one quoted line a row; `json` and `yaml` a list of row objects, or, without -c,
the command's whole document. With `json` or `yaml`, a fatal error is also one object
`{"error": ..., "exit_code": ...}` on stdout; `value` and `csv` print nothing on stdout then (a line
there would read as data): the exit code and the message on stderr tell.
"""

import csv
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import click

from recovery.core.printable import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

FORMATS = ("table", "json", "value", "csv", "yaml")
DOCUMENT_FORMATS = ("json", "yaml")
"""The formats a fatal error is also printed in, on stdout."""
_FORMAT_KEY = "recovery.output_format"
"""Where the format chosen on the command line is kept in click's context (shared by the command's
contexts), so that an error raised anywhere can be printed in it."""


@dataclass(frozen=True)
class Output:
    format: str = "table"
    columns: tuple[str, ...] = ()

    @property
    def for_people(self) -> bool:
        return self.format == "table"


def remember_format(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Eager callback of -f and --json: later errors of the command are printed in this format."""
    if value is True:
        ctx.meta[_FORMAT_KEY] = "json"
    elif value and value != "table":  # -f's default never hides --json's choice
        ctx.meta[_FORMAT_KEY] = value
    return value


def chosen_output(output_format: str, as_json: bool, columns: tuple[str, ...]) -> Output:
    if as_json and output_format not in ("table", "json"):
        raise click.UsageError(f"--json is short for -f json, and -f {output_format} was given too: keep one")
    return Output("json" if as_json else output_format, columns)


def error_document(message: str, exit_code: int) -> str | None:
    """A fatal error as the chosen machine format prints it on stdout, or None (table, value, csv)."""
    ctx = click.get_current_context(silent=True)
    chosen = ctx.meta.get(_FORMAT_KEY) if ctx is not None else None
    if chosen not in DOCUMENT_FORMATS:
        return None
    return document_text({"error": message, "exit_code": exit_code}, chosen)


def document_text(doc: object, fmt: str) -> str:
    if fmt == "yaml":
        import yaml  # imported on use: only yaml output needs it

        class Dumper(yaml.SafeDumper):
            """The safe dumper, writing a string enumeration's members (Outcome) as the strings they are."""

        Dumper.add_multi_representer(str, yaml.SafeDumper.represent_str)
        return yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True).rstrip("\n")
    from recovery.core.documents import to_json

    return to_json(doc, indent=2)


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def selected_columns(available: Sequence[str], wanted: tuple[str, ...]) -> list[str]:
    """The -c columns in the order given (any case, spaces or dashes for underscores); all without -c.
    An unknown name is a usage error listing the columns there are."""
    if not wanted:
        return list(available)
    by_key = {_key(name): name for name in available}
    unknown = [name for name in wanted if _key(name) not in by_key]
    if unknown:
        raise click.UsageError(f"unknown column(s) {', '.join(unknown)}: the columns are {', '.join(available)}")
    return [by_key[_key(name)] for name in wanted]


def print_rows(rows: list[dict], columns: list[str], fmt: str) -> None:
    """Rows in a machine format; None prints as cliff prints it (None) in value, empty in csv. Text
    formats escape control characters from data (`printable`); json and yaml keep it exact."""
    if fmt in DOCUMENT_FORMATS:
        click.echo(document_text([{c: row.get(c) for c in columns} for row in rows], fmt))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv_cell(row.get(c)) for c in columns] for row in rows)
    else:
        for row in rows:
            click.echo(" ".join(printable(_text(row.get(c))) for c in columns))


def _text(value: object) -> str:
    """A cell as one line of text: a list or an object (a `diff` difference's facts) as compact JSON."""
    if isinstance(value, dict | list):
        from recovery.core.documents import to_json

        return to_json(value)
    return str(value)


def _csv_cell(value: object) -> object:
    if isinstance(value, dict | list):
        return printable(_text(value))
    return "" if value is None else printable(value) if isinstance(value, str) else value


KEY_COLUMNS = ("uuid", "host", "id")
"""What a stacked table keeps in a column of its own, whole on one line: the first of these chosen."""


def rows_table(rows: list[dict], columns: list[str], title: str | None = None,
               headers: dict[str, str] | None = None, no_wrap: Sequence[str] = (),
               width: int | None = None) -> "Table":
    """The chosen columns as a table; uuids, states and the `no_wrap` columns never wrap. Cells are
    plain text (never rich markup), control characters escaped. When the columns do not fit in `width`,
    the rows are stacked instead: the key column (KEY_COLUMNS) whole, and the others as `Header: value`
    lines in one cell, so that no host name or uuid is ever split over lines."""
    from rich.table import Table  # imported on use: `decide` starts without rich
    from rich.text import Text

    headers = {column: (headers or {}).get(column, column) for column in columns}
    cells = [{c: "-" if row.get(c) is None else printable(_text(row.get(c))) for c in columns} for row in rows]
    if width is not None and _natural_width(cells, headers) > width:
        return _stacked_table(cells, headers, title)
    table = Table(title=title)
    for column in columns:
        table.add_column(headers[column], no_wrap=column in ("uuid", "id", *no_wrap) or "state" in column,
                         overflow="fold")
    for row in cells:
        table.add_row(*(Text(row[c]) for c in columns))
    return table


def _natural_width(cells: list[dict[str, str]], headers: dict[str, str]) -> int:
    """The width of the table with no cell wrapped: each column's widest cell, its padding and rule."""
    from rich.cells import cell_len

    return 1 + sum(3 + max([cell_len(header), *(cell_len(row[column]) for row in cells)])
                   for column, header in headers.items())


def _stacked_table(cells: list[dict[str, str]], headers: dict[str, str], title: str | None) -> "Table":
    from rich import box
    from rich.table import Table
    from rich.text import Text

    key = next((column for column in KEY_COLUMNS if column in headers), next(iter(headers)))
    rest = [column for column in headers if column != key]
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(headers[key], no_wrap=True)
    table.add_column("details", overflow="fold")
    for row in cells:
        table.add_row(Text(row[key]), Text("\n".join(f"{headers[column]}: {row[column]}" for column in rest)))
    return table


def emit(output: Output, doc: object, rows: Callable[[], list[dict]], columns: list[str],
         for_people: Callable[[], None], headers: dict[str, str] | None = None) -> None:
    """A command's result in the chosen format: its own layout for people (a table of the -c columns
    with -c), its whole document in json or yaml (rows of the -c columns with -c), rows in value and csv."""
    if output.for_people and not output.columns:
        for_people()
    elif output.for_people:
        console = stdout_console()
        console.print(rows_table(rows(), columns, headers=headers, width=console.width))
    elif output.format in DOCUMENT_FORMATS and not output.columns:
        click.echo(document_text(doc, output.format))
    else:
        print_rows(rows(), columns, output.format)


PIPE_WIDTH = 80
"""The width of what is printed into a pipe or a file when $COLUMNS does not say one."""


def stdout_console() -> "Console":
    """rich's console on stdout: the terminal's width there; into a pipe or a file, $COLUMNS (else
    PIPE_WIDTH) columns and no padding at the ends of lines, so that `| cat` reads as the terminal would."""
    from rich.console import Console  # imported on use: `decide` starts without rich

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=_pipe_width(), file=_Unpadded(sys.stdout))


def _pipe_width() -> int:
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


class _Unpadded(io.TextIOBase):
    """Text written through it, less the spaces at the end of each line (rich pads table cells and titles)."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._target.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._target.write(self._partial)
            self._partial = ""
        self._target.flush()
