"""Data Manager filters: the `query` that selects a few tasks of a project server-side."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def _query(item: dict[str, object]) -> str:
    return json.dumps({"filters": {"conjunction": "and", "items": [item]}})


def updated_since_query(since: datetime) -> str:
    """The Data Manager filter that selects tasks whose `updated_at` is after `since`."""
    value = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {
        "filter": "filter:tasks:updated_at",
        "operator": "greater",
        "type": "Datetime",
        "value": value,
    }
    return _query(item)


def id_range_query(first: int, last: int) -> str:
    """The Data Manager filter that selects tasks with `first <= id <= last`."""
    item = {
        "filter": "filter:tasks:id",
        "operator": "in",
        "type": "Number",
        "value": {"min": first, "max": last},
    }
    return _query(item)


def ids_after_query(task_id: int) -> str:
    """The Data Manager filter that selects tasks whose id is greater than `task_id`."""
    item = {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": task_id}
    return _query(item)
