"""Inception-v1: GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions", arXiv 1409.4842) in three
forms, and BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", arXiv 1502.03167).

- ``inception_v1``: the 2014 paper's network: LRN, biased convolutions, true 5x5 branches, dropout 0.4.
- ``inception_v1_bn``: BN-GoogLeNet (Table 3, row 2 of arXiv 1512.00567): BatchNorm instead of LRN.
- ``inception_v1_tv``: torchvision's ``googlenet`` exactly (3x3 where the paper has 5x5, 2x2 last pool); its
  state-dict keys are torchvision's, so its checkpoints load strictly.
- ``bn_inception``: the BN paper's network (Table 3, row 3): two 3x3 instead of each 5x5, a third 28x28 module,
  stride-2 modules with a pooling pass-through instead of the pools between stages, no dropout.
"""

import re
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
from ..layers import ConvNormAct, GoogLeNetOutputs, conv_norm_act_factory, scale_width
from ..sizes import spatial_output_size
from ._base import CIFAR10_CFG, InceptionNet

__all__ = ["GoogLeNet", "GoogLeNetAux", "GoogLeNetConfig", "InceptionModule", "caffe_bn_inception_filter"]


class InceptionModule(nn.Module):
    """Figure 2(b) of the 2014 paper, "Inception module with dimension reductions": 1x1; 1x1 -> 3x3;
    1x1 -> 5x5; 3x3 pool -> 1x1 projection, concatenated.

    ``branch3`` picks the third branch: ``"5x5"`` (the paper), ``"3x3"`` (torchvision's googlenet) or
    ``"double_3x3"`` (BN-Inception; figure 5 of arXiv 1512.00567). ``stride=2`` makes BN-Inception's grid-reducing
    module: no 1x1 branch (``ch1x1=0``), stride-2 convolutions, and the pool passed through (``pool_proj=0``).
    ``reduction_pool`` places that stride-2 pool: ``"padded"`` (padding 1, centred like the convolutions) or
    ``"caffe"`` (the Caffe BN-Inception's unpadded ceil-mode pool, one pixel right of the convolutions' windows).
    """

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        conv_layer: Any = ConvNormAct,
        branch3: str = "5x5",
        pool: str = "max",
        stride: int = 1,
        reduction_pool: str = "padded",
    ) -> None:
        super().__init__()
        if branch3 not in ("5x5", "3x3", "double_3x3"):
            raise ValueError(f"branch3 must be '5x5', '3x3' or 'double_3x3', got {branch3!r}")
        if reduction_pool not in ("padded", "caffe"):
            raise ValueError(f"reduction_pool must be 'padded' or 'caffe', got {reduction_pool!r}")
        self.branch1 = conv_layer(in_chs, ch1x1, kernel_size=1) if ch1x1 > 0 else None
        self.branch2 = nn.Sequential(
            conv_layer(in_chs, ch3x3_reduce, kernel_size=1),
            conv_layer(ch3x3_reduce, ch3x3, kernel_size=3, stride=stride, padding=1),
        )
        reduce = conv_layer(in_chs, ch5x5_reduce, kernel_size=1)
        if branch3 == "5x5":
            self.branch3 = nn.Sequential(
                reduce, conv_layer(ch5x5_reduce, ch5x5, kernel_size=5, stride=stride, padding=2)
            )
        elif branch3 == "3x3":
            self.branch3 = nn.Sequential(
                reduce, conv_layer(ch5x5_reduce, ch5x5, kernel_size=3, stride=stride, padding=1)
            )
        else:
            self.branch3 = nn.Sequential(
                reduce,
                conv_layer(ch5x5_reduce, ch5x5, kernel_size=3, padding=1),
                conv_layer(ch5x5, ch5x5, kernel_size=3, stride=stride, padding=1),
            )
        # padding 1 keeps every branch the same size at stride 2 for odd inputs too
        pool_layer = nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=stride == 1) if pool == "max" else None
        if pool == "max" and stride == 2 and reduction_pool == "caffe":
            # Caffe's unpadded 3x3/2 ceil-mode pool is this on even sizes (the -inf column is never the maximum);
            # on odd ones, where the Caffe network cannot concatenate, the extra column keeps the branches equal
            pool_layer = nn.Sequential(
                nn.ConstantPad2d((0, 1, 0, 1), float("-inf")), nn.MaxPool2d(3, stride=2, ceil_mode=True)
            )
        if pool == "avg":
            pool_layer = nn.AvgPool2d(3, stride=stride, padding=1)
        if pool_layer is None:
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        projection = [conv_layer(in_chs, pool_proj, kernel_size=1)] if pool_proj > 0 else []
        self.branch4 = nn.Sequential(pool_layer, *projection)
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + (pool_proj if pool_proj > 0 else in_chs)

    def output_size(self, size: int, dim: int) -> int:
        return min(spatial_output_size(branch, size, dim) for branch in (self.branch2, self.branch3, self.branch4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch2(x), self.branch3(x), self.branch4(x)]
        if self.branch1 is not None:
            outputs.insert(0, self.branch1(x))
        return torch.cat(outputs, 1)


class GoogLeNetAux(nn.Module):
    """The 2014 auxiliary classifier on 4a and 4d: 5x5/3 average pool (to 4x4 at 224x224), 1x1 conv to 128,
    a 1024-unit fully connected layer with ReLU, 70% dropout and a linear classifier.

    ``pool="adaptive"`` pools straight to 4x4 as torchvision does; the paper's 5x5/3 pool is followed by an
    adaptive pool to 4x4 so that inputs larger than 224x224 still fit the fully connected layer.
    """

    classifier_name = "fc2"

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        conv_layer: Any = ConvNormAct,
        pool: str = "5x5/3",
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3) if pool == "5x5/3" else nn.Identity()
        self.conv = conv_layer(in_chs, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def output_size(self, size: int, dim: int) -> int:
        return spatial_output_size(self.pool, size, dim)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(self.pool(x), (4, 4)))
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))
        return self.fc2(x)


# (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj, pool, stride): Table 1 of the 2014 paper
GOOGLENET_MODULES = (
    ("inception3a", 64, 96, 128, 16, 32, 32, "max", 1),
    ("inception3b", 128, 128, 192, 32, 96, 64, "max", 1),
    ("inception4a", 192, 96, 208, 16, 48, 64, "max", 1),
    ("inception4b", 160, 112, 224, 24, 64, 64, "max", 1),
    ("inception4c", 128, 128, 256, 24, 64, 64, "max", 1),
    ("inception4d", 112, 144, 288, 32, 64, 64, "max", 1),
    ("inception4e", 256, 160, 320, 32, 128, 128, "max", 1),
    ("inception5a", 256, 160, 320, 32, 128, 128, "max", 1),
    ("inception5b", 384, 192, 384, 48, 128, 128, "max", 1),
)

# Figure 5 of the BN paper (arXiv 1502.03167); the 5x5 columns are its "double 3x3" ones
BN_INCEPTION_MODULES = (
    ("inception3a", 64, 64, 64, 64, 96, 32, "avg", 1),
    ("inception3b", 64, 64, 96, 64, 96, 64, "avg", 1),
    ("inception3c", 0, 128, 160, 64, 96, 0, "max", 2),
    ("inception4a", 224, 64, 96, 96, 128, 128, "avg", 1),
    ("inception4b", 192, 96, 128, 96, 128, 128, "avg", 1),
    ("inception4c", 160, 128, 160, 128, 160, 128, "avg", 1),
    ("inception4d", 96, 128, 192, 160, 192, 128, "avg", 1),
    ("inception4e", 0, 128, 192, 192, 256, 0, "max", 2),
    ("inception5a", 352, 192, 320, 160, 224, 128, "avg", 1),
    ("inception5b", 352, 192, 320, 192, 224, 128, "max", 1),
)


@dataclass(frozen=True)
class GoogLeNetConfig:
    """The choices that separate GoogLeNet's forms and BN-Inception.

    Attributes:
        norm: ``"lrn"`` (the 2014 paper: biased convolutions, LRN after the first pool and after conv3) or
            ``"batchnorm"`` (BatchNorm after every convolution, no LRN).
        branch3: the third branch of every module (see ``InceptionModule``).
        modules: the modules' widths, Table 1 of the 2014 paper or figure 5 of the BN paper.
        stage_pools: max pools between the 28/14/7 grids (GoogLeNet); BN-Inception reduces with stride-2 modules.
        stem: ``"imagenet"`` (7x7/2 convolution and two max pools: 224 -> 28) or ``"cifar"`` (3x3 convolutions at
            stride 1 and one 2x max pool, so a 32x32 input reaches 3a/3b at 16x16, 4a-4e at 8x8, 5a/5b at 4x4).
        stem_stride: stride of the ``"imagenet"`` stem's 7x7 convolution ``conv1`` (1 as in Section 9 of
            arXiv 1512.00567 for low-resolution inputs); ``InceptionV3Config.stem_stride``'s meaning.
        stem_pool: the ``"imagenet"`` stem's max pool after ``conv1`` (``maxpool1``); ``InceptionV3Config.stem_pool``'s
            meaning. The ``"cifar"`` stem has its own strides: it refuses values other than the defaults of both.
        width_multiplier: scales every width (rounded to multiples of 8).
        last_pool_kernel: the pool before 5a: 3 in the paper, 2 in torchvision.
        aux_pool: ``"5x5/3"`` (the paper) or ``"adaptive"`` (torchvision) pooling in the auxiliary heads.
        reduction_pool: the max pool of the stride-2 modules 3c and 4e, ``"padded"`` or ``"caffe"`` (see
            ``InceptionModule``; the Caffe model whose weights ``bn_inception_caffe`` loads).
    """

    norm: str = "lrn"
    branch3: str = "5x5"
    modules: tuple[tuple[Any, ...], ...] = GOOGLENET_MODULES
    stage_pools: bool = True
    stem: str = "imagenet"
    stem_stride: int = 2
    stem_pool: bool = True
    width_multiplier: float = 1.0
    last_pool_kernel: int = 3
    aux_pool: str = "5x5/3"
    reduction_pool: str = "padded"

    def __post_init__(self) -> None:
        check_config_fields(self)
        if self.norm not in ("lrn", "batchnorm"):
            raise ValueError(f"norm must be 'lrn' or 'batchnorm', got {self.norm!r}")
        if self.stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")
        check_stem_strides(self)
        if self.aux_pool not in ("5x5/3", "adaptive"):
            raise ValueError(f"aux_pool must be '5x5/3' or 'adaptive', got {self.aux_pool!r}")
        if self.reduction_pool not in ("padded", "caffe"):
            raise ValueError(f"reduction_pool must be 'padded' or 'caffe', got {self.reduction_pool!r}")


class GoogLeNet(InceptionNet):
    """GoogLeNet and BN-Inception from one skeleton and a ``GoogLeNetConfig``.

    ``forward`` returns logits, or ``GoogLeNetOutputs`` ``(logits, aux_logits2,
    aux_logits1)`` in both training and eval mode when built with ``aux_logits=True``.
    """

    aux_logits: Final[bool]
    block_prefix = "inception"
    config_class = GoogLeNetConfig

    def __init__(
        self,
        config: GoogLeNetConfig | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.4,
        global_pool: str = "avg",
        aux_logits: bool = False,
        aux_drop_rate: float = 0.7,
        norm_layer: str | type[nn.Module] | None = "auto",
        norm_eps: float = 1e-3,
        act_layer: str | type[nn.Module] = "relu",
        **config_overrides: Any,
    ) -> None:
        config = self.begin_init(locals())
        use_lrn = config.norm == "lrn"
        if norm_layer == "auto":  # the config's choice: BatchNorm after every convolution, or none (LRN, 2014)
            norm_layer = None if use_lrn else "batchnorm2d"
        conv = conv_norm_act_factory(norm_layer, norm_eps, act_layer)

        def lrn() -> nn.Module | None:
            # the reference Caffe model's LRN: local_size 5, alpha 1e-4, beta 0.75
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if use_lrn else None

        w = partial(scale_width, multiplier=config.width_multiplier)
        cifar = config.stem == "cifar"
        if cifar:
            self.conv1 = conv(in_chans, w(64), kernel_size=3, padding=1)
            self.maxpool1 = None
        else:
            self.conv1 = conv(in_chans, w(64), kernel_size=7, stride=config.stem_stride, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True) if config.stem_pool else None
        self.lrn1 = lrn()
        self.conv2 = conv(w(64), w(64), kernel_size=1)
        self.conv3 = conv(w(64), w(192), kernel_size=3, padding=1)
        self.lrn2 = lrn()
        # CIFAR: one 2x pool after the full-resolution stem (instead of 224 -> 28's 8x); see docs/design.md
        self.maxpool2 = nn.MaxPool2d(3, stride=2, padding=1) if cifar else nn.MaxPool2d(3, stride=2, ceil_mode=True)

        specs = {spec[0]: spec[1:] for spec in config.modules}
        expected = {n for n, *_ in GOOGLENET_MODULES} | {"inception3c"}
        if not set(specs) <= expected or len(set(specs) & {"inception3a", "inception5b"}) != 2:
            raise ValueError(f"modules must be named from {sorted(expected)}, got {sorted(specs)}")
        chs = w(192)
        self.inception3c = self.maxpool3 = self.maxpool4 = None
        for name in (
            "inception3a",
            "inception3b",
            "inception3c",
            "inception4a",
            "inception4b",
            "inception4c",
            "inception4d",
            "inception4e",
            "inception5a",
            "inception5b",
        ):
            if name == "inception4a" and config.stage_pools:
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if name == "inception5a" and config.stage_pools:
                self.maxpool4 = nn.MaxPool2d(config.last_pool_kernel, stride=2, ceil_mode=True)
            if name not in specs:
                continue
            *widths, pool, stride = specs[name]
            widths = [w(c) if c > 0 else 0 for c in widths]
            block = InceptionModule(
                chs,
                *widths,
                conv_layer=conv,
                branch3=config.branch3,
                pool=pool,
                stride=stride,
                reduction_pool=config.reduction_pool,
            )
            setattr(self, name, block)
            chs = block.out_chs
        if aux_logits:
            aux = partial(
                GoogLeNetAux, num_classes=num_classes, conv_layer=conv, pool=config.aux_pool, dropout=aux_drop_rate
            )
            self.aux1 = aux(self.inception4a.out_chs)
            self.aux2 = aux(self.inception4d.out_chs)
        else:
            self.aux1 = self.aux2 = None

        last_14 = "inception4d" if not config.stage_pools else "inception4e"
        stem_reduction = 1 if cifar else config.stem_stride
        grid_reduction = stem_reduction * (2 if self.maxpool1 is not None else 1)
        feature_info = [
            {"num_chs": w(64), "reduction": stem_reduction, "module": "conv1"},
            {"num_chs": w(192), "reduction": grid_reduction, "module": "lrn2" if use_lrn else "conv3"},
            {"num_chs": self.inception3b.out_chs, "reduction": grid_reduction * 2, "module": "inception3b"},
            {"num_chs": getattr(self, last_14).out_chs, "reduction": grid_reduction * 4, "module": last_14},
            {"num_chs": chs, "reduction": grid_reduction * 8, "module": "inception5b"},
        ]
        self.finish_init(
            chs, num_classes, global_pool, drop_rate, feature_info, {"aux1": "inception4a", "aux2": "inception4d"}
        )
        self._init_weights(use_lrn)

    def _init_weights(self, caffe_style: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                if caffe_style:  # the reference Caffe model: Xavier weights, convolution biases 0.2
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.constant_(module.bias, 0.2 if isinstance(module, nn.Conv2d) else 0.0)
                else:  # torchvision's initialisation
                    trunc_normal_(module.weight, std=0.01, a=-2, b=2)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._NormBase) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _forward_to_4a(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers("conv1", "inception4a", x)
        x = self.conv1(x)
        if self.maxpool1 is not None:
            x = self.maxpool1(x)
        if self.lrn1 is not None:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))
        if self.lrn2 is not None:
            x = self.lrn2(x)
        x = self.maxpool2(x)
        x = self.inception3b(self.inception3a(x))
        if self.inception3c is not None:
            x = self.inception3c(x)
        if self.maxpool3 is not None:
            x = self.maxpool3(x)
        return self.inception4a(x)

    def _forward_to_4d(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers("inception4b", "inception4d", x)
        return self.inception4d(self.inception4c(self.inception4b(x)))

    def _forward_from_4d(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers("inception4e", "inception5b", x)
        x = self.inception4e(x)
        if self.maxpool4 is not None:
            x = self.maxpool4(x)
        return self.inception5b(self.inception5a(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled final feature map, ``(batch, num_features, H/32, W/32)`` (7x7 at 224x224)."""
        self.check_input(x)
        return self._forward_from_4d(self._forward_to_4d(self._forward_to_4a(x)))

    def forward(self, x: torch.Tensor):
        self.check_input(x, aux_heads=True)
        x = self._forward_to_4a(x)
        if self.aux_logits:
            assert self.aux1 is not None and self.aux2 is not None
            aux1 = self.aux1(x)
            x = self._forward_to_4d(x)
            aux2 = self.aux2(x)
            return GoogLeNetOutputs(self.forward_head(self._forward_from_4d(x)), aux2, aux1)
        return self.forward_head(self._forward_from_4d(self._forward_to_4d(x)))


def _cfg(**kwargs: Any) -> InceptionPretrainedCfg:
    return InceptionPretrainedCfg(
        **{
            "num_classes": 1000,
            "input_size": (3, 224, 224),
            "pool_size": (7, 7),
            "crop_pct": 0.875,
            "interpolation": "bilinear",
            "mean": IMAGENET_DEFAULT_MEAN,
            "std": IMAGENET_DEFAULT_STD,
            "first_conv": "conv1.conv",
            "classifier": "fc",
            "license": "apache-2.0",
            "paper_ids": "arXiv:1409.4842",
            "paper_name": "Going Deeper with Convolutions",
            **kwargs,
        }
    )


BN_PAPER = {
    "paper_ids": "arXiv:1502.03167",
    "paper_name": "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
}

default_cfgs = generate_default_cfgs(
    {
        "inception_v1": _cfg(
            paper_row="Table 3, row 1: GoogLeNet",
            description="GoogLeNet as the 2014 paper describes it (Table 3, row 1).",
        ),
        "inception_v1_bn": _cfg(
            paper_row="Table 3, row 2: BN-GoogLeNet",
            description="BN-GoogLeNet (Table 3, row 2): BatchNorm instead of LRN.",
        ),
        # torchvision's ImageNet checkpoint; it was trained with transform_input=True, which maps ImageNet-normalised
        # input to (x - 0.5) / 0.5 of [0, 1] pixels: the same as mean = std = 0.5, so no flag lives in the model
        "inception_v1_tv.tv_in1k": _cfg(
            paper_row="torchvision googlenet",
            url="https://download.pytorch.org/models/googlenet-1378be20.pth",
            mean=IMAGENET_INCEPTION_MEAN,
            std=IMAGENET_INCEPTION_STD,
            top1=69.778,
            top5=89.530,
            license="bsd-3-clause",
            origin_url="https://github.com/pytorch/vision",
            description="torchvision's googlenet with its ImageNet weights (GoogLeNet_Weights.IMAGENET1K_V1).",
        ),
        # torchvision's int8 weights (eager post-training quantization of tv_in1k, fbgemm): an int8 inference model
        "inception_v1_tv.tv_int8_in1k": _cfg(
            paper_row="torchvision googlenet",
            url="https://download.pytorch.org/models/quantized/googlenet_fbgemm-c81f6644.pth",
            quantized="fbgemm",
            quantized_keys={"cat": "concat", "aux1": None, "aux2": None},
            mean=IMAGENET_INCEPTION_MEAN,
            std=IMAGENET_INCEPTION_STD,
            top1=69.826,
            top5=89.404,
            license="bsd-3-clause",
            origin_url="https://github.com/pytorch/vision",
            description="torchvision's googlenet in int8: GoogLeNet_QuantizedWeights.IMAGENET1K_FBGEMM_V1.",
        ),
        "bn_inception": _cfg(
            paper_row="Table 3, row 3: BN-Inception",
            **BN_PAPER,
            description="BN-Inception (Table 3, row 3): the BN paper's Inception network.",
        ),
        # Xiong's Caffe weights as pretrainedmodels publishes them (its README: 73.524 / 91.562, 224 px, resize 256);
        # caffe_bn_inception_filter folds the BGR order and 0-255 range into conv1, so the input is RGB in 0-1 minus
        # the Caffe mean pixel, unscaled
        "bn_inception_caffe.caffe_in1k": _cfg(
            paper_row="BN-Inception in Caffe (pretrainedmodels' bninception)",
            url="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
            mean=(128 / 255, 117 / 255, 104 / 255),
            std=(1.0, 1.0, 1.0),
            top1=73.524,
            top5=91.562,
            license="other",
            origin_url="https://github.com/Cadene/pretrained-models.pytorch",
            **BN_PAPER,
            description="BN-Inception trained in Caffe by Yuanjun Xiong, ported by Cadene's pretrainedmodels "
            "(bninception); no license stated for the weights.",
        ),
        "inception_v1_cifar": _cfg(
            **CIFAR10_CFG,
            pool_size=(4, 4),
            paper_row="CIFAR-size GoogLeNet (BN-GoogLeNet)",
            description="GoogLeNet with BatchNorm for 32x32 CIFAR images.",
        ),
    }
)


def _create(variant: str, pretrained: bool, config: GoogLeNetConfig, **kwargs: Any) -> GoogLeNet:
    return build_model_with_cfg(GoogLeNet, variant, pretrained, config=config, **kwargs)


# pretrainedmodels' BNInception layer names (those of the Caffe prototxt) -> ours
_CAFFE_STEM = {"conv1_7x7_s2": "conv1", "conv2_3x3_reduce": "conv2", "conv2_3x3": "conv3"}
_CAFFE_BRANCHES = {
    "1x1": "branch1",
    "3x3_reduce": "branch2.0",
    "3x3": "branch2.1",
    "double_3x3_reduce": "branch3.0",
    "double_3x3_1": "branch3.1",
    "double_3x3_2": "branch3.2",
    "pool_proj": "branch4.1",
}
_CAFFE_LAYER = re.compile(r"inception_(\d[a-e])_(\w+)")


def _caffe_layer_name(layer: str) -> str | None:
    """``inception_3a_double_3x3_1`` -> ``inception3a.branch3.1``; None for a name the Caffe model does not have."""
    if layer in _CAFFE_STEM:
        return _CAFFE_STEM[layer]
    match = _CAFFE_LAYER.fullmatch(layer)
    branch = _CAFFE_BRANCHES.get(match.group(2)) if match else None
    return f"inception{match.group(1)}.{branch}" if match and branch else None


def caffe_bn_inception_filter(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """pretrainedmodels' ``bninception`` weights (the Caffe model: BGR pixels in 0-255, biased convolutions before
    BatchNorm, BatchNorm tensors of shape ``(1, C)``) as ``bn_inception_caffe``'s state dict for RGB input in 0-1.

    Every step is exact: a convolution's bias moves into the running mean of the BatchNorm after it, and the first
    convolution's input channels are reversed (BGR -> RGB) and scaled by 255, so that ``x - mean`` (mean
    ``(128, 117, 104) / 255``, std 1) gives the Caffe model's ``255 * x_bgr - (104, 117, 128)``. Names the map does
    not know are passed through, so that the fit check lists them.
    """
    if "conv1_7x7_s2.weight" not in state_dict:  # already in this model's layout
        return state_dict
    converted: dict[str, torch.Tensor] = {}
    biases: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        layer, _, field = key.rpartition(".")
        is_norm = layer.endswith("_bn")
        name = "fc" if layer == "last_linear" else _caffe_layer_name(layer.removesuffix("_bn"))
        if name is None or layer == "last_linear":
            converted[f"{name}.{field}" if name else key] = value
        elif is_norm:
            converted[f"{name}.bn.{field}"] = value.reshape(-1).float()
            converted.setdefault(f"{name}.bn.num_batches_tracked", torch.tensor(0))
        elif field == "bias":
            biases[name] = value.reshape(-1).float()
        else:
            converted[f"{name}.conv.{field}"] = value.float()
    for name, bias in biases.items():
        # BN(Wx + b) with running mean m equals BN(Wx) with running mean m - b; in training the batch mean absorbs b
        key = f"{name}.bn.running_mean"
        if key in converted:
            converted[key] = converted[key] - bias
        else:  # no BatchNorm after it: left as a key the model does not have, for the fit check to name
            converted[f"{name}.conv.bias"] = bias
    first = "conv1.conv.weight"
    if first in converted:
        converted[first] = converted[first].flip(1) * 255.0
    return converted


@register_model
def inception_v1(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet (2014; Table 3, row 1): LRN, true 5x5 branches, dropout 0.4, aux heads on 4a and 4d."""
    config = GoogLeNetConfig()
    return _create("inception_v1", pretrained, config, **kwargs)


@register_model
def inception_v1_bn(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """BN-GoogLeNet (Table 3, row 2): GoogLeNet with BatchNorm after every convolution instead of LRN."""
    config = GoogLeNetConfig(norm="batchnorm")
    return _create("inception_v1_bn", pretrained, config, **kwargs)


@register_model
def inception_v1_tv(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """torchvision's ``googlenet``: BatchNorm (eps 1e-3), a 3x3 where the paper has 5x5, a 2x2 pool before 5a,
    adaptive aux pooling, dropout 0.2. Keys and logits equal torchvision's."""
    config = GoogLeNetConfig(norm="batchnorm", branch3="3x3", last_pool_kernel=2, aux_pool="adaptive")
    kwargs.setdefault("drop_rate", 0.2)
    return _create("inception_v1_tv", pretrained, config, **kwargs)


@register_model
def bn_inception(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """BN-Inception (Ioffe & Szegedy 2015; Table 3, row 3): BatchNorm, double 3x3 branches, module 3c, stride-2
    modules 3c and 4e with a max-pool pass-through, average pooling in most pool branches, no dropout."""
    config = GoogLeNetConfig(
        norm="batchnorm",
        branch3="double_3x3",
        modules=BN_INCEPTION_MODULES,
        stage_pools=False,
    )
    kwargs.setdefault("drop_rate", 0.0)
    return _create("bn_inception", pretrained, config, **kwargs)


@register_model
def bn_inception_caffe(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """BN-Inception as Xiong trained it in Caffe and pretrainedmodels ports it (its ``bninception``): ``bn_inception``
    with the Caffe pools in 3c and 4e and BatchNorm eps 1e-5; tag ``caffe_in1k`` loads those weights."""
    config = GoogLeNetConfig(
        norm="batchnorm",
        branch3="double_3x3",
        modules=BN_INCEPTION_MODULES,
        stage_pools=False,
        reduction_pool="caffe",
    )
    kwargs.setdefault("drop_rate", 0.0)
    kwargs.setdefault("norm_eps", 1e-5)
    kwargs.setdefault("pretrained_filter_fn", caffe_bn_inception_filter)
    return _create("bn_inception_caffe", pretrained, config, **kwargs)


@register_model
def inception_v1_cifar(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet with BatchNorm for 32x32 inputs: a stride-1 3x3 stem at full resolution and one 2x pool, so
    modules 3a/3b see 16x16, 4a-4e 8x8 and 5a/5b 4x4; width multiplier 0.25 by default (docs/models.md)."""
    config = GoogLeNetConfig(norm="batchnorm", stem="cifar", width_multiplier=0.25)
    kwargs.setdefault("num_classes", 10)
    kwargs.setdefault("drop_rate", 0.2)
    return _create("inception_v1_cifar", pretrained, config, **kwargs)


# the names other libraries give these networks: torchvision's googlenet, Cadene's pretrainedmodels' bninception
register_model_aliases({"googlenet": "inception_v1_tv", "bninception": "bn_inception_caffe"})
