"""The footer, with whole keys only.

Textual's footer lays its keys out in one row and cuts the row at the right edge, mid-word at
80 columns ("esc Cancel"). This one shows the keys in order while they fit whole beside the
palette key, and leaves the rest out (the palette lists every action with its keys).
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widget import Widget
from textual.widgets import Footer


class KeyFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        keys = list(self.query_children("FooterKey"))  # a type Textual does not export
        room = self.size.width - sum(_width(k) for k in keys if k.has_class("-command-palette"))
        fits = True
        for key in keys:
            if key.has_class("-command-palette"):
                continue
            width = _width(key)
            fits = fits and width <= room
            key.display = fits
            if fits:
                room -= width


def _width(key: Widget) -> int:
    """The columns the key takes: its text, padding, border and margin."""
    styles = key.styles
    return cell_len(str(key.render())) + styles.gutter.width + styles.margin.width
