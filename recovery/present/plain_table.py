"""A two-column table of cells (`CellLine`s) written as plain lines, laid out exactly as rich lays out a
`box.SIMPLE_HEAD` table without edge padding (the run report's narrow layout), at a small part of rich's
cost: rich renders every cell through its measuring and segment machinery, which for a report of
5,000 instances took twice as long as the run itself. Used where no style is shown (into a pipe or a
file); tests/present/test_plain_table.py holds its output to rich's."""

from collections.abc import Iterable
from itertools import chain, pairwise
from typing import NamedTuple

from rich._wrap import divide_line
from rich.cells import cell_len, set_cell_size


class CellLine(NamedTuple):
    """One line of a table cell before it is laid out: its pieces of text (printable already) with their
    styles, and what becomes of it when it is wider than its column (rich's `overflow` and `no_wrap`)."""

    pieces: tuple[tuple[str, str], ...]
    overflow: str | None = None
    no_wrap: bool = False

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.pieces)

    def text(self):
        """As a rich Text, for a table rich lays out (rich.text is loaded only then)."""
        from rich.text import Text

        text = Text(overflow=self.overflow, no_wrap=self.no_wrap)
        for piece, style in self.pieces:
            text.append(piece, style=style or None)
        return text


EDGES = 5
"""The cells a row adds to its two columns: the left edge, the padding and divider between them, the right edge."""
MIN_SECOND_WIDTH = 20
"""Narrower than this, the second column is left to rich (which then narrows the first column too)."""


def two_column_lines(title: str, headers: tuple[str, str], rows: list[tuple[CellLine, list[CellLine]]], width: int,
                     first_min_width: int) -> list[str] | None:
    """The table's lines, trailing spaces removed; None when it cannot be laid out in `width` without
    narrowing the first column (whose cells never wrap)."""
    first = max(first_min_width, _cells(headers[0]), *(_longest(key) for key, _ in rows))
    second = _natural_width(chain([headers[1]], (text.plain for _, cell in rows for text in cell)),
                            width - first - EDGES)
    if second < MIN_SECOND_WIDTH:
        return None
    table_width = first + second + EDGES
    lines = [_centred(line, table_width) for line in _wrapped(_bare(title), table_width)]
    lines.append("")  # the box's top edge: spaces
    lines += _row([_bare(headers[0])], [_bare(headers[1])], first, second, header=True)
    lines.append(" " + "─" * (table_width - 2))
    for key, cell in rows:
        lines += _row([key], cell, first, second)
    lines.append("")  # the bottom edge
    return lines


def _cells(text: str) -> int:
    """Its width on a terminal (rich's cell_len, skipped for ASCII, whose every character is one cell)."""
    return len(text) if text.isascii() else cell_len(text)


def _bare(text: str) -> CellLine:
    return CellLine(((text, ""),))


def _natural_width(texts: Iterable[str], available: int) -> int:
    """The widest line of the texts, or `available` as soon as one is as wide (the column is then that)."""
    widest = 0
    for text in texts:
        widest = max(widest, *(_cells(line) for line in text.split("\n")))
        if widest >= available:
            return available
    return widest


def _longest(text: CellLine) -> int:
    return max(_cells(line) for line in text.plain.split("\n"))


def _row(left: list[CellLine], right: list[CellLine], first: int, second: int, header: bool = False) -> list[str]:
    """A row's lines: its cells top-aligned, or, in the header, bottom-aligned (as rich aligns them)."""
    left_lines = [line for text in left for line in _wrapped(text, first)]
    right_lines = [line for text in right for line in _wrapped(text, second)]
    height = max(len(left_lines), len(right_lines))
    if header:
        left_lines = [""] * (height - len(left_lines)) + left_lines
        right_lines = [""] * (height - len(right_lines)) + right_lines
    left_lines += [""] * (height - len(left_lines))
    right_lines += [""] * (height - len(right_lines))
    return [(" " + _padded(a, first) + "   " + b).rstrip(" ") for a, b in zip(left_lines, right_lines, strict=True)]


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _cells(text))


def _wrapped(text: CellLine, width: int) -> list[str]:
    """The text's lines in a cell `width` wide, as rich's Text.wrap makes them (left justified)."""
    overflow = text.overflow or "fold"
    lines = []
    for line in text.plain.split("\n"):
        if text.no_wrap or (len(line) <= width and line.isascii()):  # (an ASCII line that fits is itself)
            pieces = [line]
        else:
            offsets = [0, *divide_line(line, width, fold=overflow == "fold"), len(line)]
            pieces = [_rstrip_end(line[start:end], width) for start, end in pairwise(offsets)]
        lines += [_truncated(piece, width, overflow) for piece in pieces]
    return lines


def _rstrip_end(piece: str, width: int) -> str:
    """Less the spaces past `width` at its end (rich's Text.rstrip_end)."""
    excess = len(piece) - width
    if excess <= 0:
        return piece
    spaces = len(piece) - len(piece.rstrip())
    return piece[:len(piece) - min(spaces, excess)]


def _truncated(piece: str, width: int, overflow: str) -> str:
    if _cells(piece) <= width:
        return piece
    if overflow == "ellipsis":
        return set_cell_size(piece, width - 1) + "…"
    return set_cell_size(piece, width)


def _centred(piece: str, width: int) -> str:
    piece = piece.rstrip()
    return " " * ((width - _cells(piece)) // 2) + piece
