"""Datasets: the registry (registry.py), one module per public database, the embedded sets."""

from .registry import Dataset, DatasetInfo, load_dataset, make_dataset, register_dataset, registered

__all__ = ["Dataset", "DatasetInfo", "load_dataset", "make_dataset", "register_dataset", "registered"]
