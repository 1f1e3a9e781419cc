"""sync_table against a real DataTable: values change in place, columns grow with them, the cursor stays on
its row when rows come and go."""

from __future__ import annotations

from textual.app import App, ComposeResult

from llmctl.tui.table_sync import RowTable, selected_key, sync_table


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        table = RowTable(id="t", cursor_type="row")
        table.add_columns("name", "phase")
        yield table


async def test_a_longer_value_widens_its_column_and_the_cursor_keeps_its_row() -> None:
    app = OneTable()
    async with app.run_test() as pilot:
        table = app.query_one(RowTable)
        sync_table(table, [("a", ("a", "up")), ("b", ("b", "up"))])
        await pilot.pause()
        narrow = list(table.columns.values())[1].content_width
        sync_table(table, [("a", ("a", "up")), ("b", ("b", "failed: CUDA out of memory"))])
        await pilot.pause()
        assert table.get_row("b")[1] == "failed: CUDA out of memory"
        assert list(table.columns.values())[1].content_width == len("failed: CUDA out of memory") > narrow
        table.move_cursor(row=1)
        sync_table(table, [("z", ("z", "up")), ("a", ("a", "up")), ("b", ("b", "up"))])
        await pilot.pause()
        assert selected_key(table) == "b"
