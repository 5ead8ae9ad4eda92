"""The lab's data layer: ``build_data(name, ...)`` returns a `DataBundle` of loaders (INTERFACES.md s. 3).

Images reach the model as float32 in [0, 1]; normalisation is the model's first layer. Every batch is
``(x, y, idx)`` on the requested device, and its content depends only on ``(seed, epoch, rank)``.
"""

from vicinal.experiments.data.base import DataBundle, InMemoryLoader, Loader, TensorSplits
from vicinal.experiments.data.registry import DATASETS, DataRequest, build_data, check_dataset_name, register_dataset

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataRequest",
    "InMemoryLoader",
    "Loader",
    "TensorSplits",
    "build_data",
    "check_dataset_name",
    "register_dataset",
]
