"""Inception-ResNet-v1 and -v2 (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", arXiv:1602.07261).

Both networks are one model class driven by a config. Inception-ResNet-v1 follows the paper's figures 10-15.
Inception-ResNet-v2 is the network that TF-slim trained and published and that timm ports. It differs from the
paper's figures 15-19 in three places:

- its stem is Inception-v3's, ending in a 35x35 Inception module of 320 channels (``mixed_5b``), and not figure 3;
- it stacks 10, 20 and 10 residual modules instead of 5, 10 and 5, the last one without scaling or ReLU;
- it adds a final 1x1 convolution to 1536 channels.

The layer names are timm's (``conv2d_1a``, ``repeat``, ``mixed_6a``, ``block8``, ``classif``), so timm's
``inception_resnet_v2`` checkpoints load with ``strict=True``.
"""

from dataclasses import dataclass
from typing import Any

import torch
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.models import generate_default_cfgs
from torch import nn

from .._builder import build_model_with_cfg
from .._registry import InceptionPretrainedCfg, register_model, register_model_aliases
from .._validation import check_config_fields
from ..layers import ParallelBranches, conv_norm_act_factory, resolve_act_layer
from ._base import InceptionNet
from ._inception_2017_blocks import reduction_a, tf_pool_branch

__all__ = [
    "InceptionResNet",
    "InceptionResNetConfig",
    "ResidualInceptionBlock",
    "residual_inception_block",
    "residual_reduction_b",
]

STEMS = ("inception_v3", "figure_14")


class ResidualInceptionBlock(nn.Module):
    """The residual Inception module of figures 10, 11, 13 (v1) and 16, 17, 19 (v2): two or three branches
    concatenated, a linear 1x1 convolution back to the input's width, scaled (section 3.3: by 0.1-0.3, which keeps
    very wide residual networks from dying early in training) and added to the input, then ReLU."""

    def __init__(
        self,
        branch0: nn.Module,
        branch1: nn.Module,
        branch2: nn.Module | None,
        branch_chs: int,
        out_chs: int,
        scale: float,
        act_layer: Any = None,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.branch0 = branch0
        self.branch1 = branch1
        self.branch2 = branch2
        self.conv2d = nn.Conv2d(branch_chs, out_chs, kernel_size=1)
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch0(x), self.branch1(x)]
        if self.branch2 is not None:
            branches.append(self.branch2(x))
        return self.act(self.conv2d(torch.cat(branches, 1)) * self.scale + x)


def residual_inception_block(
    in_chs: int,
    branch_widths: tuple[tuple[int, ...], ...],
    kernels: tuple[tuple[int, int], ...],
    scale: float,
    conv_layer: Any,
    act_layer: Any,
) -> ResidualInceptionBlock:
    """A residual module from its branches' widths: each branch opens with a 1x1 convolution and goes on with
    ``kernels`` in turn (3x3, 3x3 at 35x35; 1x7, 7x1 at 17x17; 1x3, 3x1 at 8x8)."""
    branches = []
    for widths in branch_widths:
        layers, chs = [conv_layer(in_chs, widths[0], kernel_size=1)], widths[0]
        for width, (kh, kw) in zip(widths[1:], kernels, strict=False):
            layers.append(conv_layer(chs, width, kernel_size=(kh, kw), padding=(kh // 2, kw // 2)))
            chs = width
        branches.append(layers[0] if len(layers) == 1 else nn.Sequential(*layers))
    branch2 = branches[2] if len(branches) == 3 else None
    return ResidualInceptionBlock(
        branches[0], branches[1], branch2, sum(w[-1] for w in branch_widths), in_chs, scale, act_layer
    )


def residual_reduction_b(in_chs: int, widths: tuple[int, int, int, int], conv_layer: Any) -> ParallelBranches:
    """Figures 12 (v1) and 18 (v2), 17x17 -> 8x8: 1x1 -> 3x3/2; 1x1 -> 3x3/2; 1x1 -> 3x3 -> 3x3/2; 3x3/2 max pool.
    ``widths`` are the three stride-2 outputs and the middle 3x3 of the third branch, as (first, second, third's
    middle, third); every 1x1 has 256 channels."""
    first, second, middle, third = widths
    return ParallelBranches(
        branch0=nn.Sequential(conv_layer(in_chs, 256, kernel_size=1), conv_layer(256, first, kernel_size=3, stride=2)),
        branch1=nn.Sequential(conv_layer(in_chs, 256, kernel_size=1), conv_layer(256, second, kernel_size=3, stride=2)),
        branch2=nn.Sequential(
            conv_layer(in_chs, 256, kernel_size=1),
            conv_layer(256, middle, kernel_size=3, padding=1),
            conv_layer(middle, third, kernel_size=3, stride=2),
        ),
        branch3=nn.MaxPool2d(3, stride=2),
    )


def stem_inception_module(in_chs: int, conv_layer: Any) -> ParallelBranches:
    """Inception-ResNet-v2's ``mixed_5b`` (TF-slim): Inception-v3's 35x35 module (figure 5 of that paper) with 96,
    48 -> 64 (5x5), 64 -> 96 -> 96 and a padding-excluding average pool -> 64: 320 channels."""
    return ParallelBranches(
        branch0=conv_layer(in_chs, 96, kernel_size=1),
        branch1=nn.Sequential(conv_layer(in_chs, 48, kernel_size=1), conv_layer(48, 64, kernel_size=5, padding=2)),
        branch2=nn.Sequential(
            conv_layer(in_chs, 64, kernel_size=1),
            conv_layer(64, 96, kernel_size=3, padding=1),
            conv_layer(96, 96, kernel_size=3, padding=1),
        ),
        branch3=tf_pool_branch(in_chs, 64, conv_layer),
    )


@dataclass(frozen=True)
class InceptionResNetConfig:
    """One Inception-ResNet network: its stem, how many residual modules each grid stacks, the branch widths of
    each kind of module, Reduction-A's k, l, m, n (Table 1), Reduction-B's widths, the residual scaling factors
    of the three grids (one number scales all three), and the TF-slim head (a last linear module and a 1x1 conv).

    The defaults are Inception-ResNet-v1 (figures 10-15)."""

    stem: str = "figure_14"
    blocks: tuple[int, int, int] = (5, 10, 5)
    block_a_widths: tuple[tuple[int, ...], ...] = ((32,), (32, 32), (32, 32, 32))
    block_b_widths: tuple[tuple[int, ...], ...] = ((128,), (128, 128, 128))
    block_c_widths: tuple[tuple[int, ...], ...] = ((192,), (192, 192, 192))
    reduction_a_widths: tuple[int, int, int, int] = (192, 192, 256, 384)
    reduction_b_widths: tuple[int, int, int, int] = (384, 256, 256, 256)
    residual_scale: float | tuple[float, float, float] = (0.17, 0.10, 0.20)
    final_linear_block: bool = False
    head_chs: int = 0

    def __post_init__(self) -> None:
        check_config_fields(self)
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if len(self.blocks) != 3 or min(self.blocks) < 1:
            raise ValueError(f"blocks gives how many modules each grid stacks (each 1 or more), got {self.blocks}")
        scales = self.scales
        if len(scales) != 3 or not all(0.0 < s <= 1.0 for s in scales):
            raise ValueError(
                f"residual_scale is a factor in (0, 1] (the paper uses 0.1-0.3), or one per grid; got "
                f"{self.residual_scale}"
            )
        for name in ("block_a_widths", "block_b_widths", "block_c_widths"):
            if len(getattr(self, name)) not in (2, 3):
                raise ValueError(f"{name} gives the widths of 2 or 3 branches, got {getattr(self, name)}")

    @property
    def scales(self) -> tuple[float, ...]:
        """The scaling factor of the 35x35, 17x17 and 8x8 modules."""
        scale = self.residual_scale
        return (float(scale),) * 3 if isinstance(scale, int | float) else tuple(scale)


INCEPTION_RESNET_V2 = InceptionResNetConfig(
    stem="inception_v3",
    blocks=(10, 20, 10),
    block_a_widths=((32,), (32, 32), (32, 48, 64)),
    block_b_widths=((192,), (128, 160, 192)),
    block_c_widths=((192,), (192, 224, 256)),
    reduction_a_widths=(256, 256, 384, 384),
    reduction_b_widths=(384, 288, 288, 320),
    final_linear_block=True,
    head_chs=1536,
)


class InceptionResNet(InceptionNet):
    """Inception-ResNet (figure 15): stem, residual 35x35 modules, Reduction-A, residual 17x17 modules,
    Reduction-B, residual 8x8 modules, average pool, dropout and the classifier."""

    classifier_name = "classif"
    config_class = InceptionResNetConfig

    def __init__(
        self,
        config: InceptionResNetConfig | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        norm_layer: str | type[nn.Module] | None = "batchnorm2d",
        norm_eps: float = 1e-3,
        act_layer: str | type[nn.Module] = "relu",
        **config_overrides: Any,
    ) -> None:
        config = self.begin_init(locals())
        conv = conv_norm_act_factory(norm_layer, norm_eps, act_layer)
        residual_act = resolve_act_layer(act_layer)
        scale_a, scale_b, scale_c = config.scales
        # the stem of both versions opens as Inception-v3's (figure 14 / TF-slim)
        self.conv2d_1a = conv(in_chans, 32, kernel_size=3, stride=2)
        self.conv2d_2a = conv(32, 32, kernel_size=3)
        self.conv2d_2b = conv(32, 64, kernel_size=3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = conv(64, 80, kernel_size=1)
        self.conv2d_4a = conv(80, 192, kernel_size=3)
        self.conv2d_4b = self.maxpool_5a = self.mixed_5b = None
        if config.stem == "figure_14":  # a 3x3/2 convolution to 256 channels
            self.conv2d_4b = conv(192, 256, kernel_size=3, stride=2)
            grid35 = 256
        else:  # a max pool and Inception-v3's 35x35 module
            self.maxpool_5a = nn.MaxPool2d(3, stride=2)
            self.mixed_5b = stem_inception_module(192, conv)
            grid35 = 320
        count_a, count_b, count_c = config.blocks
        kernels_a, kernels_b, kernels_c = ((3, 3), (3, 3)), ((1, 7), (7, 1)), ((1, 3), (3, 1))

        def stage(count: int, chs: int, widths: Any, kernels: Any, scale: float) -> nn.Sequential:
            return nn.Sequential(
                *(residual_inception_block(chs, widths, kernels, scale, conv, residual_act) for _ in range(count))
            )

        self.repeat = stage(count_a, grid35, config.block_a_widths, kernels_a, scale_a)
        k, l, m, n = config.reduction_a_widths  # noqa: E741
        self.mixed_6a = reduction_a(grid35, k, l, m, n, conv)
        grid17 = grid35 + m + n
        self.repeat_1 = stage(count_b, grid17, config.block_b_widths, kernels_b, scale_b)
        self.mixed_7a = residual_reduction_b(grid17, config.reduction_b_widths, conv)
        first, second, _, third = config.reduction_b_widths
        grid8 = grid17 + first + second + third
        # TF-slim's v2 ends on a module without scaling or activation, then a 1x1 convolution
        self.repeat_2 = stage(
            count_c - int(config.final_linear_block), grid8, config.block_c_widths, kernels_c, scale_c
        )
        self.block8 = self.conv2d_7b = None
        if config.final_linear_block:
            self.block8 = residual_inception_block(grid8, config.block_c_widths, kernels_c, 1.0, conv, None)
        num_features = grid8
        if config.head_chs:
            self.conv2d_7b = conv(grid8, config.head_chs, kernel_size=1)
            num_features = config.head_chs
        last = "conv2d_7b" if config.head_chs else "block8" if config.final_linear_block else "repeat_2"
        feature_info = [
            {"num_chs": 64, "reduction": 2, "module": "conv2d_2b"},
            {"num_chs": 192, "reduction": 4, "module": "conv2d_4a"},
            {"num_chs": grid35, "reduction": 8, "module": "repeat"},
            {"num_chs": grid17, "reduction": 16, "module": "repeat_1"},
            {"num_chs": num_features, "reduction": 32, "module": last},
        ]
        self.finish_init(num_features, num_classes, global_pool, drop_rate, feature_info, {})

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Any:
        """timm's groups: the stem's layers first, then each residual module and reduction in turn (each grid with
        ``coarse=True``: the reductions open the 17x17 and 8x8 grids); the classifier last."""
        stem = self.layer_names[: self.layer_names.index("repeat")]
        groups: dict[str, int] = {}
        grid = 1
        for name in self.layer_names[len(stem) :]:
            grid += name in ("mixed_6a", "mixed_7a")
            layer = self.get_submodule(name)
            for member in [f"{name}.{i}" for i in range(len(layer))] if name.startswith("repeat") else [name]:
                groups[member] = grid if coarse else len(groups) + 1

        def matcher(name: str) -> float:
            parts = name.split(".")
            if parts[0] in stem:
                return 0
            return groups.get(".".join(parts[:2]), groups.get(parts[0], float("inf")))

        return matcher

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled final map, ``(batch, num_features, 8, 8)`` at 299x299."""
        self.check_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers(self.layer_names[0], self.layer_names[-1], x)
        x = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))))
        if self.conv2d_4b is not None:
            x = self.conv2d_4b(x)
        if self.maxpool_5a is not None and self.mixed_5b is not None:
            x = self.mixed_5b(self.maxpool_5a(x))
        x = self.repeat_2(self.mixed_7a(self.repeat_1(self.mixed_6a(self.repeat(x)))))
        if self.block8 is not None:
            x = self.block8(x)
        if self.conv2d_7b is not None:
            x = self.conv2d_7b(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs: Any) -> InceptionPretrainedCfg:
    return InceptionPretrainedCfg(
        **{
            "num_classes": 1000,
            "input_size": (3, 299, 299),
            "pool_size": (8, 8),
            "crop_pct": 0.8975,
            "interpolation": "bicubic",
            "mean": IMAGENET_INCEPTION_MEAN,
            "std": IMAGENET_INCEPTION_STD,
            "first_conv": "conv2d_1a.conv",
            "classifier": "classif",
            "license": "apache-2.0",
            "paper_ids": "arXiv:1602.07261",
            "paper_name": "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
            **kwargs,
        }
    )


default_cfgs = generate_default_cfgs(
    {
        "inception_resnet_v1": _cfg(
            paper_row="Inception-ResNet-v1 (2017 paper, figure 15)",
            description="Inception-ResNet-v1 from the paper's figures 10-15; no published ImageNet weights.",
        ),
        "inception_resnet_v2.tf_in1k": _cfg(
            paper_row="Inception-ResNet-v2 (2017 paper, figure 15)",
            hf_hub_id="timm/inception_resnet_v2.tf_in1k",
            top1=80.434,
            top5=95.312,
            origin_url="https://github.com/tensorflow/models/tree/master/research/slim",
            description="Inception-ResNet-v2 with TF-slim's ImageNet weights, as timm publishes them.",
        ),
        "inception_resnet_v2.tf_ens_adv_in1k": _cfg(
            paper_row="Inception-ResNet-v2 (2017 paper, figure 15)",
            hf_hub_id="timm/inception_resnet_v2.tf_ens_adv_in1k",
            top1=79.998,
            top5=94.940,
            origin_url="https://github.com/tensorflow/models/tree/master/research/adv_imagenet_models",
            paper_ids="arXiv:1705.07204",
            description="Inception-ResNet-v2, TensorFlow's ensemble-adversarially trained ImageNet weights.",
        ),
    }
)


@register_model
def inception_resnet_v1(
    pretrained: bool = False, residual_scale: float | tuple[float, float, float] | None = None, **kwargs: Any
) -> InceptionResNet:
    """Inception-ResNet-v1 (figures 10-15): 5, 10 and 5 residual modules on the figure-14 stem, 1792 features.
    ``residual_scale`` scales every residual branch (the paper: 0.1-0.3), or each grid's with three numbers."""
    if residual_scale is not None:
        kwargs["residual_scale"] = residual_scale
    return build_model_with_cfg(
        InceptionResNet, "inception_resnet_v1", pretrained, config=InceptionResNetConfig(), **kwargs
    )


@register_model
def inception_resnet_v2(
    pretrained: bool = False, residual_scale: float | tuple[float, float, float] | None = None, **kwargs: Any
) -> InceptionResNet:
    """Inception-ResNet-v2 as TF-slim trained it: 55.8M parameters, 13.2 G multiply-adds at 299x299; keys equal
    timm's. ``residual_scale`` replaces TF-slim's factors (0.17, 0.10, 0.20) with one or three numbers."""
    if residual_scale is not None:
        kwargs["residual_scale"] = residual_scale
    return build_model_with_cfg(
        InceptionResNet, "inception_resnet_v2", pretrained, config=INCEPTION_RESNET_V2, **kwargs
    )


register_model_aliases({"ens_adv_inception_resnet_v2": "inception_resnet_v2.tf_ens_adv_in1k"}, deprecated=True)
