"""A small bounded cache for what never changes once written (a stored report, a pushed round).

Keys carry the database URL, so one process serving several databases (tests) never mixes
them up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")


class Memo:
    """Least-recently-used values by key, at most `size` of them; safe across threads."""

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ValueError(f"expected a size >= 1, got {size}")
        self._size = size
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value kept for `key`, made (outside the lock) and kept when missing."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value


def database_of(session: Session) -> str:
    """The URL of the database `session` talks to (password hidden)."""
    return session.get_bind().engine.url.render_as_string(hide_password=True)
