"""Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision", 1512.00567).

The blocks follow the paper's figures 5, 6, 7 and 10 with the widths of the paper's reference model file
(the network that TF-slim, torchvision and timm implement). Their submodule names equal timm's and
torchvision's, so ``inception_v3`` checkpoints from either library load with ``strict=True``.
"""

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.layers import trunc_normal_
from timm.models import generate_default_cfgs
from torch import nn
from torch.jit import Final

from .._builder import build_model_with_cfg
from .._registry import InceptionPretrainedCfg, register_model, register_model_aliases
from .._validation import check_config_fields, check_stem_strides
from ..layers import ConvNormAct, InceptionOutputs, conv_norm_act_factory, scale_width
from ..sizes import spatial_output_size
from ._base import CIFAR10_CFG, InceptionNet

__all__ = [
    "GridReduction",
    "GridReductionAsymmetric",
    "InceptionAsymmetric",
    "InceptionAux",
    "InceptionExpandedFilterBank",
    "InceptionFactorized5x5",
    "InceptionV3",
    "InceptionV3Config",
]

BRANCH_POOLS = ("avg", "avg_exclude_pad", "max")


def branch_pool_layer(kind: str) -> nn.Module:
    """The 3x3/1 pool of a module's pool branch: ``"avg"`` counts the zero padding in the average (the reference
    model, torchvision, timm), ``"avg_exclude_pad"`` averages the pixels inside the image only (TensorFlow's pool,
    which the FID graph keeps), ``"max"`` is the max pool the FID graph has in its last module."""
    if kind not in BRANCH_POOLS:
        raise ValueError(f"branch_pool must be one of {BRANCH_POOLS}, got {kind!r}")
    if kind == "max":
        return nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
    return nn.AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=kind == "avg")


class InceptionFactorized5x5(nn.Module):
    """Figure 5: the 35x35-grid module in which a 5x5 convolution is replaced by two stacked 3x3 convolutions.

    Branches: 1x1; 1x1 -> 5x5 (kept by the reference model); 1x1 -> 3x3 -> 3x3; 3x3 average pool -> 1x1.
    ``factorize_5x5=False`` gives figure 4's module instead: the double 3x3 branch becomes 1x1 -> 5x5
    (``branch5x5b_*``).
    """

    def __init__(
        self,
        in_chs: int,
        pool_features: int,
        out_1x1: int = 64,
        reduce_5x5: int = 48,
        out_5x5: int = 64,
        reduce_3x3: int = 64,
        out_3x3: int = 96,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        factorize_5x5: bool = True,
        branch_pool: str = "avg",
    ) -> None:
        super().__init__()
        self.branch1x1 = conv_layer(in_chs, out_1x1, kernel_size=1)
        self.branch5x5_1 = conv_layer(in_chs, reduce_5x5, kernel_size=1)
        self.branch5x5_2 = conv_layer(reduce_5x5, out_5x5, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = self.branch3x3dbl_2 = self.branch3x3dbl_3 = None
        self.branch5x5b_1 = self.branch5x5b_2 = None
        if factorize_5x5:
            self.branch3x3dbl_1 = conv_layer(in_chs, reduce_3x3, kernel_size=1)
            self.branch3x3dbl_2 = conv_layer(reduce_3x3, out_3x3, kernel_size=3, padding=1)
            self.branch3x3dbl_3 = conv_layer(out_3x3, out_3x3, kernel_size=3, padding=1)
        else:
            self.branch5x5b_1 = conv_layer(in_chs, reduce_3x3, kernel_size=1)
            self.branch5x5b_2 = conv_layer(reduce_3x3, out_3x3, kernel_size=5, padding=2)
        self.pool = branch_pool_layer(branch_pool)
        self.branch_pool = conv_layer(in_chs, pool_features, kernel_size=1)
        self.out_chs = out_1x1 + out_5x5 + out_3x3 + pool_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        if self.branch3x3dbl_1 is not None:
            assert self.branch3x3dbl_2 is not None and self.branch3x3dbl_3 is not None
            second = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        else:
            assert self.branch5x5b_1 is not None and self.branch5x5b_2 is not None
            second = self.branch5x5b_2(self.branch5x5b_1(x))
        branch_pool = self.branch_pool(self.pool(x))
        return torch.cat([branch1x1, branch5x5, second, branch_pool], 1)


GRID_REDUCTIONS = ("parallel", "pool_first", "conv_first")


class _Reduction(nn.Module):
    """Where a grid reduction's pool goes (figures 9 and 10): ``"parallel"`` runs stride-2 convolutions beside
    a stride-2 pool (figure 10); ``"pool_first"`` pools, then runs the module at stride 1 (figure 9 left, a
    representational bottleneck); ``"conv_first"`` runs the module at stride 1, then pools (figure 9 right, 3x
    the cost). All three give the same output size and channels."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in GRID_REDUCTIONS:
            raise ValueError(f"grid reduction must be one of {GRID_REDUCTIONS}, got {kind!r}")
        self.kind = kind
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        # the stride and padding of the convolutions that reduce the grid themselves in figure 10
        self.stride, self.padding = (2, 0) if kind == "parallel" else (1, 1)

    def output_size(self, size: int, dim: int) -> int:
        return spatial_output_size(self.pool, size, dim)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError  # each reduction defines its branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "pool_first":
            x = self.pool(x)
        outputs = self.branches(x)
        if self.kind == "conv_first":
            outputs.append(x)
            return self.pool(torch.cat(outputs, 1))
        outputs.append(x if self.kind == "pool_first" else self.pool(x))
        return torch.cat(outputs, 1)


class GridReduction(_Reduction):
    """Figure 10: reduce the grid 35x35 -> 17x17 with parallel stride-2 convolution and pooling branches.

    Concatenating a stride-2 pool with stride-2 convolutions avoids both the representational bottleneck of
    pooling first and the cost of convolving first (figure 9); ``kind`` builds those two for comparison.
    """

    def __init__(
        self,
        in_chs: int,
        out_3x3: int = 384,
        reduce_3x3dbl: int = 64,
        out_3x3dbl: int = 96,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        kind: str = "parallel",
    ) -> None:
        super().__init__(kind)
        conv = partial(conv_layer, kernel_size=3, stride=self.stride, padding=self.padding)
        self.branch3x3 = conv(in_chs, out_3x3)
        self.branch3x3dbl_1 = conv_layer(in_chs, reduce_3x3dbl, kernel_size=1)
        self.branch3x3dbl_2 = conv_layer(reduce_3x3dbl, out_3x3dbl, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv(out_3x3dbl, out_3x3dbl)
        self.out_chs = out_3x3 + out_3x3dbl + in_chs

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))]


def _n_by_n(conv_layer: Any, in_chs: int, out_chs: int, n: int, factorize: bool, vertical_first: bool) -> list[Any]:
    """An n x n convolution, or figure 6's factorization of it into 1 x n and n x 1 (in the given order);
    unfactorized, the second slot is ``None``."""
    if not factorize:
        return [conv_layer(in_chs, out_chs, kernel_size=n, padding=n // 2), None]
    horizontal = {"kernel_size": (1, n), "padding": (0, n // 2)}
    vertical = {"kernel_size": (n, 1), "padding": (n // 2, 0)}
    first, second = (vertical, horizontal) if vertical_first else (horizontal, vertical)
    return [conv_layer(in_chs, in_chs, **first), conv_layer(in_chs, out_chs, **second)]


class InceptionAsymmetric(nn.Module):
    """Figure 6: the 17x17-grid module with each n x n convolution factorized into 1 x n and n x 1 (n = 7).

    Branches: 1x1; 1x1 -> 1xn -> nx1; 1x1 -> nx1 -> 1xn -> nx1 -> 1xn; 3x3 average pool -> 1x1.
    ``factorize=False`` keeps each n x n whole (in the first slot of its pair) to measure what figure 6 saves.
    """

    def __init__(
        self,
        in_chs: int,
        channels_7x7: int,
        out_chs_per_branch: int = 192,
        n: int = 7,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        factorize: bool = True,
        branch_pool: str = "avg",
    ) -> None:
        super().__init__()
        c7, out = channels_7x7, out_chs_per_branch
        self.branch1x1 = conv_layer(in_chs, out, kernel_size=1)
        self.branch7x7_1 = conv_layer(in_chs, c7, kernel_size=1)
        self.branch7x7_2, self.branch7x7_3 = _n_by_n(conv_layer, c7, out, n, factorize, vertical_first=False)
        self.branch7x7dbl_1 = conv_layer(in_chs, c7, kernel_size=1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = _n_by_n(conv_layer, c7, c7, n, factorize, vertical_first=True)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = _n_by_n(conv_layer, c7, out, n, factorize, vertical_first=True)
        self.pool = branch_pool_layer(branch_pool)
        self.branch_pool = conv_layer(in_chs, out, kernel_size=1)
        self.out_chs = 4 * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_2(self.branch7x7_1(x))
        if self.branch7x7_3 is not None:
            branch7x7 = self.branch7x7_3(branch7x7)
        branch7x7dbl = self.branch7x7dbl_2(self.branch7x7dbl_1(x))
        if self.branch7x7dbl_3 is not None:
            branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
        branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
        if self.branch7x7dbl_5 is not None:
            branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)
        branch_pool = self.branch_pool(self.pool(x))
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class GridReductionAsymmetric(_Reduction):
    """Figure 10 on the 17x17 grid: reduce 17x17 -> 8x8 with a 3x3/2 branch, a 1x7 -> 7x1 -> 3x3/2 branch and
    a parallel stride-2 max pool (``kind`` as in ``GridReduction``)."""

    def __init__(
        self,
        in_chs: int,
        reduce_3x3: int = 192,
        out_3x3: int = 320,
        channels_7x7: int = 192,
        n: int = 7,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        kind: str = "parallel",
        factorize: bool = True,
    ) -> None:
        super().__init__(kind)
        conv = partial(conv_layer, kernel_size=3, stride=self.stride, padding=self.padding)
        self.branch3x3_1 = conv_layer(in_chs, reduce_3x3, kernel_size=1)
        self.branch3x3_2 = conv(reduce_3x3, out_3x3)
        self.branch7x7x3_1 = conv_layer(in_chs, channels_7x7, kernel_size=1)
        self.branch7x7x3_2, self.branch7x7x3_3 = _n_by_n(
            conv_layer, channels_7x7, channels_7x7, n, factorize, vertical_first=False
        )
        self.branch7x7x3_4 = conv(channels_7x7, channels_7x7)
        self.out_chs = out_3x3 + channels_7x7 + in_chs

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        if self.branch7x7x3_3 is not None:
            branch7x7x3 = self.branch7x7x3_3(branch7x7x3)
        return [branch3x3, self.branch7x7x3_4(branch7x7x3)]


class InceptionExpandedFilterBank(nn.Module):
    """Figure 7: the 8x8-grid module with expanded filter-bank outputs (parallel 1x3 and 3x1 convolutions)
    that promotes high-dimensional representations on the coarsest grid.

    ``expanded=False`` replaces each parallel 1x3 / 3x1 pair with one 3x3 (in the ``_2a`` / ``_3a`` slots).
    """

    def __init__(
        self,
        in_chs: int,
        out_1x1: int = 320,
        channels_3x3: int = 384,
        reduce_3x3dbl: int = 448,
        pool_proj: int = 192,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        expanded: bool = True,
        branch_pool: str = "avg",
    ) -> None:
        super().__init__()
        c3 = channels_3x3

        def pair() -> list[Any]:
            if not expanded:
                return [conv_layer(c3, c3, kernel_size=3, padding=1), None]
            return [
                conv_layer(c3, c3, kernel_size=(1, 3), padding=(0, 1)),
                conv_layer(c3, c3, kernel_size=(3, 1), padding=(1, 0)),
            ]

        self.branch1x1 = conv_layer(in_chs, out_1x1, kernel_size=1)
        self.branch3x3_1 = conv_layer(in_chs, c3, kernel_size=1)
        self.branch3x3_2a, self.branch3x3_2b = pair()
        self.branch3x3dbl_1 = conv_layer(in_chs, reduce_3x3dbl, kernel_size=1)
        self.branch3x3dbl_2 = conv_layer(reduce_3x3dbl, c3, kernel_size=3, padding=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = pair()
        self.pool = branch_pool_layer(branch_pool)
        self.branch_pool = conv_layer(in_chs, pool_proj, kernel_size=1)
        self.out_chs = out_1x1 + (4 if expanded else 2) * c3 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each 1x3 / 3x1 pair is one branch, concatenated on its own as in figure 7 (and torchvision's quantizable
        # model, whose int8 checkpoints keep a requantization scale per pair)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = (
            self.branch3x3_2a(branch3x3)
            if self.branch3x3_2b is None
            else torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        )
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = (
            self.branch3x3dbl_3a(branch3x3dbl)
            if self.branch3x3dbl_3b is None
            else torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        )
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(self.pool(x))], 1)


class InceptionAux(nn.Module):
    """The auxiliary classifier on the last 17x17 layer (section 4): 5x5/3 average pool, 1x1 conv to 128,
    a 5x5 conv to 768 acting as the "fully connected" layer, and a linear classifier.

    ``fc_norm=True`` batch-normalizes that "fully connected" layer (Table 3's "BN-auxiliary", +0.4% top-1).
    ``pool="adaptive"`` pools any grid to the 5x5 map that layer covers at 299x299 (a 17x17 grid's 5x5/3 pool),
    for low-resolution input whose grid is too small for the 5x5/3 pool.
    """

    classifier_name = "fc"

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        conv_layer: type[ConvNormAct] | partial = ConvNormAct,
        fc_norm: bool = True,
        mid_chs: int = 128,
        fc_chs: int = 768,
        pool: str = "5x5/3",
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3) if pool == "5x5/3" else nn.AdaptiveAvgPool2d(5)
        self.conv0 = conv_layer(in_chs, mid_chs, kernel_size=1)
        self.conv1 = conv_layer(mid_chs, fc_chs, kernel_size=5, **({} if fc_norm else {"norm_layer": None}))
        self.conv1.conv.stddev = 0.01
        self.fc = nn.Linear(fc_chs, num_classes) if num_classes > 0 else nn.Identity()
        self.fc.stddev = 0.001
        self.fc_chs = fc_chs

    def output_size(self, size: int, dim: int) -> int:
        for layer in (self.pool, self.conv0, self.conv1):
            size = spatial_output_size(layer, size, dim)
        return size

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.fc_chs, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


STEMS = ("factorized_7x7", "conv_7x7", "cifar")
FEATURE_TAPS = ("stages", "fid")


@dataclass(frozen=True)
class InceptionV3Config:
    """The choices that define one member of the Inception-v2/v3 family (the rows of Table 3, Section 9's nets,
    the CIFAR net) and the paper's design choices as switches.

    The defaults are Inception-v3 as in the paper's reference model file.

    Attributes:
        stem: ``"factorized_7x7"`` (three 3x3 convolutions, Table 3 row 7 on), ``"conv_7x7"`` (one 7x7/2
            convolution, Inception-v2 of rows 4-6) or ``"cifar"`` (the 3x3 stem at stride 1, padded, and only its
            second pool, so a 32x32 input reaches the 35x35-grid modules at 15x15, then 7x7 and 3x3).
        stem_stride: stride of the first convolution (1 for Section 9's low-resolution networks).
        stem_pool: max-pool after the first convolutions (False for the 79x79 receptive-field network). The
            ``"cifar"`` stem has its own strides: it refuses values other than the defaults of both.
        stem_widths: output channels of Conv2d_1a, 2a, 2b (the 7x7 stem uses the third), 3b and 4a.
        factorize_5x5: figure 5's two 3x3 convolutions (True) or figure 4's 5x5 in the 35x35 modules.
        factorize_nxn: figure 6's 1 x n and n x 1 pairs (True) or whole n x n convolutions on the 17x17 grid.
        nxn: the n of figure 6 (7 in the paper, which finds it works on grids of 12 to 20).
        expanded_filter_bank: figure 7's parallel 1x3 / 3x1 outputs on the 8x8 grid (True) or 3x3 convolutions.
        grid_reduction: ``"parallel"`` (figure 10), ``"pool_first"`` or ``"conv_first"`` (figure 9).
        width_multiplier: scales every width (rounded to multiples of 8).
        aux_fc_norm: batch-normalize the aux head's "fully connected" layer (Table 3's "BN-auxiliary").
        aux_pool: the aux head's pool: ``"5x5/3"`` (the paper) or ``"adaptive"`` (to the 5x5 map the paper's pool
            gives at 299x299, from any grid: the aux head at low resolution; ``GoogLeNetConfig.aux_pool`` alike).
        branch_pool: the pool of every 35x35, 17x17 and 8x8 module's pool branch (``BRANCH_POOLS``): ``"avg"``
            as in the reference model, ``"avg_exclude_pad"`` as in TensorFlow's graph that FID uses.
        final_branch_pool: the last module's (``Mixed_7c``) pool, where it differs (``"max"`` in the FID graph).
        feature_taps: ``"stages"`` (the end of each grid size) or ``"fid"`` (pytorch-fid's blocks: after each stem
            max pool, ``Mixed_6e`` and ``Mixed_7c``, giving 64, 192, 768 and 2048 channels).
    """

    stem: str = "factorized_7x7"
    stem_stride: int = 2
    stem_pool: bool = True
    stem_widths: tuple[int, ...] = (32, 32, 64, 80, 192)
    grid35_pool_features: tuple[int, ...] = (32, 64, 64)
    grid17_channels_7x7: tuple[int, ...] = (128, 160, 160, 192)
    factorize_5x5: bool = True
    factorize_nxn: bool = True
    nxn: int = 7
    expanded_filter_bank: bool = True
    grid_reduction: str = "parallel"
    width_multiplier: float = 1.0
    aux_fc_norm: bool = True
    aux_pool: str = "5x5/3"
    branch_pool: str = "avg"
    final_branch_pool: str | None = None
    feature_taps: str = "stages"

    def __post_init__(self) -> None:
        check_config_fields(self)
        for pool in (self.branch_pool, self.final_branch_pool or self.branch_pool):
            if pool not in BRANCH_POOLS:
                raise ValueError(f"branch pools must be one of {BRANCH_POOLS}, got {pool!r}")
        if self.feature_taps not in FEATURE_TAPS:
            raise ValueError(f"feature_taps must be one of {FEATURE_TAPS}, got {self.feature_taps!r}")
        if self.feature_taps == "fid" and (self.stem == "cifar" or not self.stem_pool):
            raise ValueError("feature_taps='fid' taps the two stem max pools: it needs stem_pool and a non-CIFAR stem")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        check_stem_strides(self)
        if self.grid_reduction not in GRID_REDUCTIONS:
            raise ValueError(f"grid_reduction must be one of {GRID_REDUCTIONS}, got {self.grid_reduction!r}")
        if len(self.stem_widths) != 5 or len(self.grid35_pool_features) != 3 or len(self.grid17_channels_7x7) != 4:
            raise ValueError("stem_widths has 5 widths, grid35_pool_features 3 and grid17_channels_7x7 4")
        if self.aux_pool not in ("5x5/3", "adaptive"):
            raise ValueError(f"aux_pool must be '5x5/3' or 'adaptive', got {self.aux_pool!r}")
        if self.nxn < 1 or self.nxn % 2 == 0:
            raise ValueError(f"nxn must be an odd kernel size, got {self.nxn}")


class InceptionV3(InceptionNet):
    """The Inception-v2/v3 network of the 2016 paper, built from the shared blocks above and a config.

    ``forward`` returns logits, or ``InceptionOutputs`` ``(logits, aux_logits)`` in
    both training and eval mode when built with ``aux_logits=True``. Any field of ``InceptionV3Config``
    can also be given as a keyword argument (``create_model("inception_v3", factorize_nxn=False)``).
    """

    aux_logits: Final[bool]
    block_prefix = "Mixed_"
    config_class = InceptionV3Config

    def __init__(
        self,
        config: InceptionV3Config | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        aux_logits: bool = False,
        norm_layer: str | type[nn.Module] | None = "batchnorm2d",
        norm_eps: float = 1e-3,
        act_layer: str | type[nn.Module] = "relu",
        **config_overrides: Any,
    ) -> None:
        config = self.begin_init(locals())
        conv = conv_norm_act_factory(norm_layer, norm_eps, act_layer)
        w = partial(scale_width, multiplier=config.width_multiplier)

        w1a, w2a, w2b, w3b, w4a = (w(c) for c in config.stem_widths)
        cifar = config.stem == "cifar"
        pad = 1 if cifar else 0
        # Table 3 row 7 factorizes the first 7x7 convolution into three 3x3 ones; rows 4-6 keep the 7x7.
        self.Conv2d_1a_7x7 = self.Conv2d_1a_3x3 = self.Conv2d_2a_3x3 = self.Conv2d_2b_3x3 = None
        if config.stem == "conv_7x7":
            # at stride 1 a padding of 1 gives the grid of the three 3x3 convolutions it stands for (two unpadded,
            # one padded), as the unpadded 7x7/2 does at stride 2 (147x147 from 299x299 either way)
            padding = 1 if config.stem_stride == 1 else 0
            self.Conv2d_1a_7x7 = conv(in_chans, w2b, kernel_size=7, stride=config.stem_stride, padding=padding)
        else:
            stride = 1 if cifar else config.stem_stride
            self.Conv2d_1a_3x3 = conv(in_chans, w1a, kernel_size=3, stride=stride, padding=pad)
            self.Conv2d_2a_3x3 = conv(w1a, w2a, kernel_size=3, padding=pad)
            self.Conv2d_2b_3x3 = conv(w2a, w2b, kernel_size=3, padding=1)
        self.Pool1 = nn.MaxPool2d(kernel_size=3, stride=2) if config.stem_pool and not cifar else None
        self.Conv2d_3b_1x1 = conv(w2b, w3b, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(w3b, w4a, kernel_size=3, padding=pad)
        self.Pool2 = nn.MaxPool2d(kernel_size=3, stride=2)  # the one 2x reduction the CIFAR stem keeps

        grid35 = partial(
            InceptionFactorized5x5,
            out_1x1=w(64),
            reduce_5x5=w(48),
            out_5x5=w(64),
            reduce_3x3=w(64),
            out_3x3=w(96),
            conv_layer=conv,
            factorize_5x5=config.factorize_5x5,
            branch_pool=config.branch_pool,
        )
        pool_5b, pool_5c, pool_5d = (w(c) for c in config.grid35_pool_features)
        self.Mixed_5b = grid35(w4a, pool_5b)
        self.Mixed_5c = grid35(self.Mixed_5b.out_chs, pool_5c)
        self.Mixed_5d = grid35(self.Mixed_5c.out_chs, pool_5d)
        self.Mixed_6a = GridReduction(
            self.Mixed_5d.out_chs, w(384), w(64), w(96), conv_layer=conv, kind=config.grid_reduction
        )
        grid17 = partial(
            InceptionAsymmetric,
            out_chs_per_branch=w(192),
            n=config.nxn,
            conv_layer=conv,
            factorize=config.factorize_nxn,
            branch_pool=config.branch_pool,
        )
        c7b, c7c, c7d, c7e = (w(c) for c in config.grid17_channels_7x7)
        self.Mixed_6b = grid17(self.Mixed_6a.out_chs, c7b)
        self.Mixed_6c = grid17(self.Mixed_6b.out_chs, c7c)
        self.Mixed_6d = grid17(self.Mixed_6c.out_chs, c7d)
        self.Mixed_6e = grid17(self.Mixed_6d.out_chs, c7e)
        grid17_chs = self.Mixed_6e.out_chs
        self.AuxLogits = (
            InceptionAux(
                grid17_chs,
                num_classes,
                conv_layer=conv,
                fc_norm=config.aux_fc_norm,
                mid_chs=w(128),
                fc_chs=w(768),
                pool=config.aux_pool,
            )
            if aux_logits
            else None
        )
        self.Mixed_7a = GridReductionAsymmetric(
            grid17_chs,
            w(192),
            w(320),
            w(192),
            n=config.nxn,
            conv_layer=conv,
            kind=config.grid_reduction,
            factorize=config.factorize_nxn,
        )
        grid8 = partial(
            InceptionExpandedFilterBank,
            out_1x1=w(320),
            channels_3x3=w(384),
            reduce_3x3dbl=w(448),
            pool_proj=w(192),
            conv_layer=conv,
            expanded=config.expanded_filter_bank,
        )
        self.Mixed_7b = grid8(self.Mixed_7a.out_chs, branch_pool=config.branch_pool)
        self.Mixed_7c = grid8(self.Mixed_7b.out_chs, branch_pool=config.final_branch_pool or config.branch_pool)

        stem_end = "Conv2d_1a_7x7" if config.stem == "conv_7x7" else "Conv2d_2b_3x3"
        reduction = 1 if cifar else config.stem_stride
        reductions = [reduction]
        for pool in (self.Pool1, self.Pool2, self.Mixed_6a, self.Mixed_7a):
            reduction *= 2 if pool is not None else 1
            reductions.append(reduction)
        num_features = self.Mixed_7c.out_chs
        feature_info = [
            {"num_chs": w2b, "reduction": reductions[0], "module": stem_end},
            {"num_chs": w4a, "reduction": reductions[1], "module": "Conv2d_4a_3x3"},
            {"num_chs": self.Mixed_5d.out_chs, "reduction": reductions[2], "module": "Mixed_5d"},
            {"num_chs": grid17_chs, "reduction": reductions[3], "module": "Mixed_6e"},
            {"num_chs": num_features, "reduction": reductions[4], "module": "Mixed_7c"},
        ]
        if config.feature_taps == "fid":  # pytorch-fid's blocks 0-3 (its block 3 pools the Mixed_7c map)
            feature_info = [
                {"num_chs": w2b, "reduction": reductions[1], "module": "Pool1"},
                {"num_chs": w4a, "reduction": reductions[2], "module": "Pool2"},
                *feature_info[3:],
            ]
        self.finish_init(num_features, num_classes, global_pool, drop_rate, feature_info, {"AuxLogits": "Mixed_6e"})
        self._init_weights()

    def _init_weights(self) -> None:
        # truncated normal as in the TensorFlow reference (std 0.1; 0.01 / 0.001 for the aux head's last layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                trunc_normal_(module.weight, std=getattr(module, "stddev", 0.1))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._NormBase) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _forward_to_aux(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers(self.layer_names[0], "Mixed_6e", x)
        if self.Conv2d_1a_7x7 is not None:
            x = self.Conv2d_1a_7x7(x)
        else:
            assert self.Conv2d_1a_3x3 is not None and self.Conv2d_2a_3x3 is not None and self.Conv2d_2b_3x3 is not None
            x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        if self.Pool1 is not None:
            x = self.Pool1(x)
        x = self.Pool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        return self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))

    def _forward_from_aux(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers("Mixed_7a", "Mixed_7c", x)
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled final feature map, ``(batch, num_features, H/32, W/32)`` roughly (8x8 at 299x299)."""
        self.check_input(x)
        return self._forward_from_aux(self._forward_to_aux(x))

    def forward(self, x: torch.Tensor):
        self.check_input(x, aux_heads=True)
        x = self._forward_to_aux(x)
        if self.aux_logits:
            assert self.AuxLogits is not None
            aux = self.AuxLogits(x)
            return InceptionOutputs(self.forward_head(self._forward_from_aux(x)), aux)
        return self.forward_head(self._forward_from_aux(x))


def _cfg(**kwargs: Any) -> InceptionPretrainedCfg:
    return InceptionPretrainedCfg(
        **{
            "num_classes": 1000,
            "input_size": (3, 299, 299),
            "pool_size": (8, 8),
            "crop_pct": 0.875,
            "interpolation": "bicubic",
            "mean": IMAGENET_INCEPTION_MEAN,
            "std": IMAGENET_INCEPTION_STD,
            "first_conv": "Conv2d_1a_3x3.conv",
            "classifier": "fc",
            "license": "apache-2.0",
            "paper_ids": "arXiv:1512.00567",
            "paper_name": "Rethinking the Inception Architecture for Computer Vision",
            **kwargs,
        }
    )


_ROW_8 = "Table 3, row 8: Inception-v2 BN-auxiliary (Inception-v3)"

default_cfgs = generate_default_cfgs(
    {
        # published ImageNet weights, timm's key layout (= ours), on the Hub as timm/inception_v3.<tag>
        "inception_v3.tv_in1k": _cfg(
            paper_row=_ROW_8,
            hf_hub_id="timm/inception_v3.tv_in1k",
            top1=77.472,
            top5=93.468,
            origin_url="https://github.com/pytorch/vision",
            description="Inception-v3, torchvision's ImageNet weights (ported from TensorFlow, fine-tuned).",
        ),
        # torchvision's int8 weights (eager post-training quantization of tv_in1k, fbgemm): an int8 inference model
        "inception_v3.tv_int8_in1k": _cfg(
            paper_row=_ROW_8,
            url="https://download.pytorch.org/models/quantized/inception_v3_google_fbgemm-a2837893.pth",
            quantized="fbgemm",
            quantized_keys={
                "myop": "concat",
                "myop1": "concat",
                "myop2": "concat_1",
                "myop3": "concat_2",
                "AuxLogits": None,
            },
            top1=77.176,
            top5=93.354,
            license="bsd-3-clause",
            origin_url="https://github.com/pytorch/vision",
            description="Inception-v3 in int8: torchvision's Inception_V3_QuantizedWeights.IMAGENET1K_FBGEMM_V1.",
        ),
        "inception_v3.tf_in1k": _cfg(
            paper_row=_ROW_8,
            hf_hub_id="timm/inception_v3.tf_in1k",
            top1=77.866,
            top5=93.644,
            origin_url="https://github.com/tensorflow/models/tree/master/research/slim",
            description="Inception-v3, the TF-slim ImageNet weights (inception_v3_2016_08_28).",
        ),
        "inception_v3.tf_adv_in1k": _cfg(
            paper_row=_ROW_8,
            hf_hub_id="timm/inception_v3.tf_adv_in1k",
            top1=77.598,
            top5=93.726,
            origin_url="https://github.com/tensorflow/models/tree/master/research/adv_imagenet_models",
            paper_ids="arXiv:1611.01236",
            description="Inception-v3, TensorFlow's adversarially trained ImageNet weights (adv_inception_v3).",
        ),
        "inception_v3.gluon_in1k": _cfg(
            paper_row=_ROW_8,
            hf_hub_id="timm/inception_v3.gluon_in1k",
            top1=78.806,
            top5=94.372,
            mean=IMAGENET_DEFAULT_MEAN,
            std=IMAGENET_DEFAULT_STD,
            origin_url="https://cv.gluon.ai/model_zoo/classification.html",
            description="Inception-v3, GluonCV's ImageNet weights (ImageNet mean/std preprocessing).",
        ),
        "inception_v3_rf151": _cfg(
            paper_row="Section 9: 151x151 receptive field",
            input_size=(3, 151, 151),
            description="Section 9: 151x151 receptive field (stride 1, max pool after the first layer).",
        ),
        "inception_v3_cifar": _cfg(
            paper_row="CIFAR-size Inception-v3",
            **CIFAR10_CFG,
            pool_size=(3, 3),
            description="Inception-v3 for 32x32 CIFAR images (stride-1 padded stem, one 2x pool).",
        ),
        "inception_v3_rf79": _cfg(
            paper_row="Section 9: 79x79 receptive field",
            input_size=(3, 79, 79),
            pool_size=(8, 8),
            description="Section 9: 79x79 receptive field (stride 1, no first max pool).",
        ),
    }
)


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    return build_model_with_cfg(InceptionV3, variant, pretrained, **kwargs)


@register_model
def inception_v3(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Inception-v3 (Table 3, row 8 = row 7 + BN-auxiliary): 23.8M parameters, 5.7 G multiply-adds at 299x299."""
    config = InceptionV3Config()
    return _create("inception_v3", pretrained, config=config, **kwargs)


@register_model
def inception_v3_rf151(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Section 9: Inception-v3 for 151x151 input, first convolution at stride 1, max pool after the first layers,
    so the 35x35 grid and the compute stay about those of the 299x299 network."""
    config = InceptionV3Config(stem_stride=1)
    return _create("inception_v3_rf151", pretrained, config=config, **kwargs)


@register_model
def inception_v3_rf79(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Section 9: Inception-v3 for 79x79 input, first convolution at stride 1 and no first max pool (a 36x36 grid
    at 79x79, about the compute of the 299x299 network)."""
    config = InceptionV3Config(stem_stride=1, stem_pool=False)
    return _create("inception_v3_rf79", pretrained, config=config, **kwargs)


@register_model
def inception_v3_cifar(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Inception-v3 for 32x32 inputs: the 3x3 stem at stride 1, padded, at full resolution, then one 2x pool, so
    the 35x35-grid modules see 15x15, the 17x17 ones 7x7 and the 8x8 ones 3x3; width multiplier 0.125 by default."""
    config = InceptionV3Config(stem="cifar", width_multiplier=0.125)
    kwargs.setdefault("num_classes", 10)
    return _create("inception_v3_cifar", pretrained, config=config, **kwargs)


# timm's retired names for the v3 weights: they load the same weights, with timm's warning
register_model_aliases(
    {
        "tf_inception_v3": "inception_v3.tf_in1k",
        "adv_inception_v3": "inception_v3.tf_adv_in1k",
        "gluon_inception_v3": "inception_v3.gluon_in1k",
    },
    deprecated=True,
)
