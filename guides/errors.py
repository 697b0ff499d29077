"""Errors raised when a labeling guide cannot be loaded or is inconsistent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GuideProblem:
    """One thing wrong with a guide.

    ``location`` is a path into the YAML document, such as ``labels[3].hotkey``,
    ``class_priors`` or ``<root>`` for the document as a whole; ``message`` is a
    sentence a person can act on.
    """

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class GuideError(Exception):
    """A guide failed to load; ``problems`` lists everything found, not just the first."""

    code: str = "invalid_guide"

    def __init__(self, problems: Iterable[GuideProblem], *, source: str = "<string>") -> None:
        self.problems: list[GuideProblem] = list(problems)
        if not self.problems:
            raise ValueError("GuideError needs at least one GuideProblem")
        self.source = source
        super().__init__(self._describe())

    def _describe(self) -> str:
        return "\n".join(f"{self.source}: {problem}" for problem in self.problems)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_guide_error, (self.problems, self.source))


def _rebuild_guide_error(problems: list[GuideProblem], source: str) -> GuideError:
    return GuideError(problems, source=source)


def format_location(parts: Sequence[str | int]) -> str:
    """Render a location tuple as a path: ``("labels", 2, "name")`` -> ``labels[2].name``.

    Keys that are not identifiers are quoted (``class_priors['Ankle boot']``); the
    empty tuple is the document root, ``<root>``.
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "<root>"
