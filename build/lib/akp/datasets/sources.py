"""The user's own data on disk: an image folder or a MedMNIST ``.npz`` file, chosen by what the path is.

Data reaches a shared server as untrusted uploads, so every loader checks what
it reads and fails with :class:`~akp.datasets.base.DatasetError` naming the
file and the problem; a failure leaves nothing behind.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from akp.datasets.base import DATASET_FIELD, Dataset, DatasetError, OptionSchema, check_options, option_field
from akp.datasets.images import OPTIONS as IMAGE_OPTIONS
from akp.datasets.images import load_image_folder
from akp.datasets.npz import OPTIONS as NPZ_OPTIONS
from akp.datasets.npz import load_medmnist_npz
from akp.datasets.pixels import check_class_list

__all__ = ["OPTIONS", "RESOLVE_OPTIONS", "load_source", "validate_real_options"]

#: Options a spec may give real data (``spec.dataset_options``): those of every real-data loader.
OPTIONS: OptionSchema = {**IMAGE_OPTIONS, **NPZ_OPTIONS}
#: The keys of :data:`OPTIONS`, in order.
RESOLVE_OPTIONS: tuple[str, ...] = tuple(OPTIONS)


def validate_real_options(options: dict[str, Any]) -> None:
    """Check real-data options' keys and values against :data:`OPTIONS`, reading no file.

    None is accepted for every option (the loader decides). Whether the classes
    that ``positive_classes`` names exist, and whether an option applies to the
    source (``max_images`` and ``crop`` are for folders), is checked when the
    data loads.

    Raises
    ------
    DatasetError
        With ``field="dataset_options.<key>"`` for an unknown key or a bad value.
    """
    check_options(options, OPTIONS, dataset="real data", nullable=True,
                  checkers={"positive_classes": check_class_list})


def load_source(
    source: str | os.PathLike[str],
    *,
    size: int | None,
    channels: int | None,
    positive_classes: Sequence[str | int] | str | int | None,
    max_images: int | None,
    crop: int | None = None,
) -> Dataset:
    """Load an image folder or a MedMNIST ``.npz`` file, whichever ``source`` is.

    Parameters
    ----------
    source : path-like
        An image folder, or an ``.npz`` file.
    size : int or None
        Image side (None keeps an npz file's own size; a folder's default is 32).
    channels : {1, 3} or None
        As in :func:`~akp.datasets.images.load_image_folder`.
    positive_classes : sequence, str, int or None
        Folder class names, or integer labels of an npz file, that count as cancer.
    max_images, crop : int or None
        For image folders only (see :func:`~akp.datasets.images.load_image_folder`).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Neither a folder nor an ``.npz`` file, an option that does not apply, or
        whatever the loaders raise.
    """
    p = Path(source)
    if isinstance(positive_classes, (str, int)):
        positive_classes = [positive_classes]
    if p.is_dir():
        return load_image_folder(
            p,
            size=32 if size is None else size,
            channels=channels,
            positive_classes=None if positive_classes is None else [str(c) for c in positive_classes],
            max_images=max_images,
            crop=crop,
        )
    if p.suffix.lower() == ".npz" and p.is_file():
        for opt, value in (("max_images", max_images), ("crop", crop)):
            if value is not None:
                raise DatasetError(f"{p}: {opt} applies to image folders only", field=option_field(opt))
        pos = None
        if positive_classes is not None:
            try:
                pos = [int(c) for c in positive_classes]
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{p}: positive_classes of an .npz file must be integer labels, got {positive_classes!r}",
                    field=option_field("positive_classes"),
                ) from None
        return load_medmnist_npz(p, positive_labels=pos, size=size, channels=channels)
    problem = "not a dataset" if p.exists() else "no such folder or file"
    raise DatasetError(
        f"{source}: {problem}; expected an image folder, an .npz file or a registered id 'ds-<16 hex>'",
        field=DATASET_FIELD,
    )
