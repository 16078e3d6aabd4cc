"""A folder of images as an unlabelled dataset, and the resolution of a pool spec (a dataset name
or a folder) for analyses that need no labels (the gMAD competition)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError


def load_pool(pool: str):
    """A registered dataset spec, or a folder of images (unlabelled, every image an item)."""
    from .registry import load_dataset

    path = Path(pool).expanduser()
    if path.is_dir():
        return folder_pool(path)
    if looks_like_path(pool):
        raise DatasetError(f"{path}: no such folder; pass --pool a folder of images or a dataset name (`biqa datasets list`)")
    return load_dataset(pool)


def looks_like_path(text: str) -> bool:
    """A pool or truth spec meant as a file or folder rather than a dataset name."""
    return "/" in text or "\\" in text or text.startswith((".", "~")) or Path(text).suffix.lower() == ".csv"


def folder_pool(folder: Path):
    """A folder of images as an unlabelled dataset (item id = path relative to the folder)."""
    from ..predict import images_dataset
    from ._files import IMAGE_EXTENSIONS

    folder = Path(folder).resolve()
    try:
        dataset = images_dataset([folder], name=f"folder@{folder.name}")
    except DatasetError:
        dataset = None
    if dataset is None or len(dataset.items) < 2:
        found = 0 if dataset is None else len(dataset.items)
        raise DatasetError(f"{folder}: found {found} image(s); a gMAD pool needs many images ({sorted(IMAGE_EXTENSIONS)})")
    return dataset
