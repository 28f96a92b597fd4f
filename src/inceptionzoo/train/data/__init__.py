"""Training data. ``.sources`` turns ``--data`` into the loaders of a run: folders of images
(``.folder``) and tar shards (``.shards``) streamed through DataLoader workers (``.loaders``) with the
transforms of ``.transforms``, or CIFAR-style splits held in memory as ``uint8`` tensors (``.in_memory``, whose
names are re-exported here)."""

from .in_memory import (
    CIFAR10_CLASSES,
    ImageTensors,
    batches,
    load_dataset,
    load_image_folder,
    load_torchvision_cifar10,
    split_validation,
    subset,
)

__all__ = [
    "CIFAR10_CLASSES",
    "ImageTensors",
    "batches",
    "load_dataset",
    "load_image_folder",
    "load_torchvision_cifar10",
    "split_validation",
    "subset",
]
