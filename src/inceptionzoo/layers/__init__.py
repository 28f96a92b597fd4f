"""Blocks shared by every Inception family, one file per kind: ``conv`` (the conv-norm-activation unit and the
norm / activation layers resolved from timm's names), ``branches`` (parallel branches concatenated) and ``outputs``
(the tuples models with auxiliary heads return)."""

from .branches import FusedConvBranches, ParallelBranches, branches_one_by_one
from .conv import ConvNormAct, LayerSpec, conv_norm_act_factory, resolve_act_layer, resolve_norm_layer, scale_width
from .outputs import GoogLeNetOutputs, InceptionOutputs

__all__ = [
    "ConvNormAct",
    "FusedConvBranches",
    "GoogLeNetOutputs",
    "InceptionOutputs",
    "LayerSpec",
    "ParallelBranches",
    "branches_one_by_one",
    "conv_norm_act_factory",
    "resolve_act_layer",
    "resolve_norm_layer",
    "scale_width",
]
