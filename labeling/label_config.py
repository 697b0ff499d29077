"""Reading a Label Studio labeling config: which Choices tag labels which Image, and how.

An ML backend answers for whatever project it is connected to, so it reads the project's
config from each request rather than assuming the one `studio_config` builds. No SDK import
here (see `gateway.py`): the standard library's parser suffices for the few tags needed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from labeling.errors import LabelingError

MAX_CONFIG_CHARS = 1_000_000


class LabelConfigUnsupported(LabelingError):
    """The labeling config has no single-image Choices tag the model can fill."""

    code = "label_config_unsupported"


@dataclass(frozen=True)
class ChoicesTarget:
    """Where a single-choice prediction goes and where the task's image URL is found."""

    from_name: str  # the Choices tag's name
    to_name: str  # the Image tag's name
    image_key: str  # the task data key holding the image URL (`$image` -> "image")
    choices: tuple[str, ...]  # the values the Choices tag offers, in config order


def parse_choices_config(config: str) -> ChoicesTarget:
    """The first Choices tag that labels an Image tag fed by a task data key.

    Raises LabelConfigUnsupported (a readable reason) for text that is not XML, or a config
    without such a pair.
    """
    if not config or len(config) > MAX_CONFIG_CHARS:
        raise LabelConfigUnsupported(
            f"expected a labeling config of 1 to {MAX_CONFIG_CHARS} characters"
        )
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as err:
        raise LabelConfigUnsupported(f"the labeling config is not valid XML: {err}") from err
    images = {
        tag.get("name"): tag.get("value", "")
        for tag in root.iter()
        if _tag(tag) == "image" and tag.get("name")
    }
    for tag in root.iter():
        if _tag(tag) != "choices" or not tag.get("name"):
            continue
        to_name = (tag.get("toName") or "").split(",")[0].strip()
        value = images.get(to_name, "")
        if not value.startswith("$") or len(value) < 2:
            continue
        choices = tuple(
            str(choice.get("value"))
            for choice in tag.iter()
            if _tag(choice) == "choice" and choice.get("value")
        )
        if choices:
            return ChoicesTarget(str(tag.get("name")), to_name, value[1:], choices)
    raise LabelConfigUnsupported(
        'the labeling config needs a <Choices> tag whose toName is an <Image value="$key"> tag'
    )


def _tag(element: ElementTree.Element) -> str:
    return str(element.tag).lower()
