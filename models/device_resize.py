"""Turning decoded images upright and resizing them in batches, on whichever device they are."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn ``image: (C, H, W)`` upright as EXIF ``orientation`` (1-8) says, as Pillow does."""
    if orientation in (5, 7):  # a transpose, then what 1 or 3 would do
        image = image.transpose(1, 2)
    if orientation in (2, 4, 3, 7):
        dims = {2: (2,), 4: (1,), 3: (1, 2), 7: (1, 2)}[orientation]
        return image.flip(dims)
    if orientation in (6, 8):
        return torch.rot90(image, -1 if orientation == 6 else 1, dims=(1, 2))
    return image


def resize_square(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Resize ``(3, h, w)`` uint8 images to ``(n, 3, size, size)`` uint8.

    Bilinear with antialiasing when shrinking, like Pillow's resize; images of the same shape
    are resized in one call.
    """
    if not images:
        raise ValueError("expected at least one image to resize")
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=images[0].device)
    resize_into(out, list(range(len(images))), images)
    return out


def resize_into(out: torch.Tensor, rows: Sequence[int], images: Sequence[torch.Tensor]) -> None:
    """Write ``images[k]: (3, h, w)`` uint8, resized, into ``out[rows[k]]: (3, S, S)``.

    Images are grouped by shape: one stack and one interpolation per group, so a batch of
    same-sized photos costs one resize call.
    """
    size = out.shape[-1]
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(position)
    for shape, positions in groups.items():
        stack = torch.stack([images[p] for p in positions])
        if shape[1:] != (size, size):
            resized = F.interpolate(
                stack.float(), size=(size, size), mode="bilinear", antialias=True
            )
            stack = resized.round_().clamp_(0, 255).to(torch.uint8)
        targets = [rows[p] for p in positions]
        if targets == list(range(targets[0], targets[0] + len(targets))):
            out[targets[0] : targets[0] + len(targets)] = stack
        else:
            out[torch.tensor(targets, device=out.device)] = stack
