"""Training data: CIFAR-style splits held in memory as ``uint8`` tensors (:mod:`.in_memory`)."""

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
