"""Bring a DataTable up to date with new rows without rebuilding it when only values changed, keeping the
cursor on the same row key: a refresh every second must not make the table jump or flicker."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey

Cell = str | Text
Row = tuple[str, tuple[Cell, ...]]  # (row key, cells in column order)


def sync_table(table: DataTable[Cell], rows: Sequence[Row]) -> None:
    keys = [k for k, _ in rows]
    current = [k.value for k in table.rows]
    if keys == current:
        columns = list(table.columns)
        for key, cells in rows:
            old = table.get_row(key)
            for column, before, after in zip(columns, old, cells, strict=False):
                if _plain(before) != _plain(after) or _style(before) != _style(after):
                    table.update_cell(key, column, after, update_width=True)
        return
    selected = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected in keys:
        table.move_cursor(row=keys.index(selected), animate=False, scroll=False)


def selected_key(table: DataTable[Cell]) -> str | None:
    if not table.row_count:
        return None
    try:
        key: RowKey = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except CellDoesNotExist:
        return None
    return key.value


def _plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _style(cell: object) -> str:
    return (
        str([(s.start, s.end, str(s.style)) for s in cell.spans]) + str(cell.style)
        if isinstance(cell, Text)
        else ""
    )


class RowTable(DataTable[Cell]):
    """A row-cursor table that keeps its horizontal scroll where the person left it: DataTable scrolls a
    whole (wider than the screen) row into view on every cursor move, which jumps sideways at 80 columns."""

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        if self.cursor_type != "row":
            super()._scroll_cursor_into_view(animate)
            return
        spacing = self._get_fixed_offset()
        _x, y, _width, height = self._get_row_region(self.cursor_row)
        width = max(1, self.scrollable_content_region.width - spacing.left)
        region = Region(int(self.scroll_x) + spacing.left, y, width, height)
        self.scroll_to_region(region, animate=animate, spacing=spacing, force=True)
