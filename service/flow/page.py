"""The board as one self-contained HTML page that keeps itself up to date.

The page carries the board's JSON for its first paint, then polls the JSON twin
(`/v1/board`, with the page's own query so a signed link keeps working) every few seconds and
redraws: counts, WIP, charts (inline SVG) and quality. No script comes from elsewhere.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template

from service.flow.schemas import Board

TEMPLATE = Template(files("service.flow").joinpath("templates/board.html").read_text())
POLL_MS = 3000


def board_html(board: Board, *, title: str = "Flow board", poll_ms: int = POLL_MS) -> str:
    """The page for `board`; it polls every `poll_ms` milliseconds."""
    if poll_ms < 100:
        raise ValueError(f"expected a poll interval of at least 100 ms, got {poll_ms}")
    data = board.model_dump_json().replace("<", "\\u003c")  # no `</script>` can end the block
    return TEMPLATE.substitute(title=escape(title), board_json=data, poll_ms=poll_ms)
