"""Inception-v4 (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning", arXiv:1602.07261).

The blocks follow the paper's figures 3 (stem), 4-6 (Inception-A, -B, -C), 7 and 8 (Reduction-A, -B) and the
widths of its Table 1. The layers sit in one ``features`` sequence and the classifier is ``last_linear``, the names of
timm's ``inception_v4`` (ported from TF-slim), so timm's checkpoints load with ``strict=True``.
"""

from dataclasses import dataclass
from typing import Any

import torch
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.models import generate_default_cfgs
from torch import nn

from .._builder import build_model_with_cfg
from .._registry import InceptionPretrainedCfg, register_model
from .._validation import check_config_fields
from ..layers import ParallelBranches, conv_norm_act_factory
from ._base import InceptionNet
from ._inception_2017_blocks import reduction_a, tf_pool_branch

__all__ = [
    "InceptionV4",
    "InceptionV4Config",
    "InceptionV4ExpandedC",
    "inception_v4_a",
    "inception_v4_b",
    "reduction_b",
    "stem_pool_and_conv",
    "stem_split_7x1",
]


def stem_pool_and_conv(in_chs: int, out_chs: int, conv_layer: Any, pool_first: bool) -> ParallelBranches:
    """Figure 3's grid reductions in the stem: a 3x3/2 max pool beside a 3x3/2 convolution (pool first at 147x147,
    convolution first at 71x71, as the figure draws them)."""
    pool, conv = nn.MaxPool2d(3, stride=2), conv_layer(in_chs, out_chs, kernel_size=3, stride=2)
    return ParallelBranches(maxpool=pool, conv=conv) if pool_first else ParallelBranches(conv=conv, maxpool=pool)


def stem_split_7x1(in_chs: int, conv_layer: Any) -> ParallelBranches:
    """Figure 3's middle split: 1x1 -> 3x3 beside 1x1 -> 7x1 -> 1x7 -> 3x3 (timm's order: 1x7 first), both unpadded."""
    return ParallelBranches(
        branch0=nn.Sequential(conv_layer(in_chs, 64, kernel_size=1), conv_layer(64, 96, kernel_size=3)),
        branch1=nn.Sequential(
            conv_layer(in_chs, 64, kernel_size=1),
            conv_layer(64, 64, kernel_size=(1, 7), padding=(0, 3)),
            conv_layer(64, 64, kernel_size=(7, 1), padding=(3, 0)),
            conv_layer(64, 96, kernel_size=3),
        ),
    )


def inception_v4_a(in_chs: int, conv_layer: Any) -> ParallelBranches:
    """Figure 4, the 35x35 module: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3; average pool -> 1x1 (96 channels each)."""
    return ParallelBranches(
        branch0=conv_layer(in_chs, 96, kernel_size=1),
        branch1=nn.Sequential(conv_layer(in_chs, 64, kernel_size=1), conv_layer(64, 96, kernel_size=3, padding=1)),
        branch2=nn.Sequential(
            conv_layer(in_chs, 64, kernel_size=1),
            conv_layer(64, 96, kernel_size=3, padding=1),
            conv_layer(96, 96, kernel_size=3, padding=1),
        ),
        branch3=tf_pool_branch(in_chs, 96, conv_layer),
    )


def inception_v4_b(in_chs: int, conv_layer: Any) -> ParallelBranches:
    """Figure 5, the 17x17 module: 1x1 (384); 1x1 -> 1x7 -> 7x1; 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7; average pool ->
    1x1 (128)."""
    return ParallelBranches(
        branch0=conv_layer(in_chs, 384, kernel_size=1),
        branch1=nn.Sequential(
            conv_layer(in_chs, 192, kernel_size=1),
            conv_layer(192, 224, kernel_size=(1, 7), padding=(0, 3)),
            conv_layer(224, 256, kernel_size=(7, 1), padding=(3, 0)),
        ),
        branch2=nn.Sequential(
            conv_layer(in_chs, 192, kernel_size=1),
            conv_layer(192, 192, kernel_size=(7, 1), padding=(3, 0)),
            conv_layer(192, 224, kernel_size=(1, 7), padding=(0, 3)),
            conv_layer(224, 224, kernel_size=(7, 1), padding=(3, 0)),
            conv_layer(224, 256, kernel_size=(1, 7), padding=(0, 3)),
        ),
        branch3=tf_pool_branch(in_chs, 128, conv_layer),
    )


def reduction_b(in_chs: int, conv_layer: Any) -> ParallelBranches:
    """Figure 8, 17x17 -> 8x8: 1x1 -> 3x3/2; 1x1 -> 1x7 -> 7x1 -> 3x3/2; 3x3/2 max pool."""
    return ParallelBranches(
        branch0=nn.Sequential(conv_layer(in_chs, 192, kernel_size=1), conv_layer(192, 192, kernel_size=3, stride=2)),
        branch1=nn.Sequential(
            conv_layer(in_chs, 256, kernel_size=1),
            conv_layer(256, 256, kernel_size=(1, 7), padding=(0, 3)),
            conv_layer(256, 320, kernel_size=(7, 1), padding=(3, 0)),
            conv_layer(320, 320, kernel_size=3, stride=2),
        ),
        branch2=nn.MaxPool2d(3, stride=2),
    )


class InceptionV4ExpandedC(nn.Module):
    """Figure 6, the 8x8 module: 1x1 (256); 1x1 (384) split into 1x3 and 3x1; 1x1 (384) -> 3x1 -> 1x3 split into
    1x3 and 3x1; average pool -> 1x1 (256). The splits widen the coarsest grid's output as Inception-v3's figure 7."""

    def __init__(self, in_chs: int, conv_layer: Any) -> None:
        super().__init__()
        self.branch0 = conv_layer(in_chs, 256, kernel_size=1)
        self.branch1_0 = conv_layer(in_chs, 384, kernel_size=1)
        self.branch1_1a = conv_layer(384, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch1_1b = conv_layer(384, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_0 = conv_layer(in_chs, 384, kernel_size=1)
        self.branch2_1 = conv_layer(384, 448, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_2 = conv_layer(448, 512, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3a = conv_layer(512, 256, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3b = conv_layer(512, 256, kernel_size=(3, 1), padding=(1, 0))
        self.branch3 = tf_pool_branch(in_chs, 256, conv_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


@dataclass(frozen=True)
class InceptionV4Config:
    """How many of each module figure 9 stacks (4 Inception-A, 7 Inception-B, 3 Inception-C) and Reduction-A's
    widths k, l, m, n from Table 1."""

    blocks: tuple[int, int, int] = (4, 7, 3)
    reduction_a_widths: tuple[int, int, int, int] = (192, 224, 256, 384)

    def __post_init__(self) -> None:
        check_config_fields(self)
        if len(self.blocks) != 3 or min(self.blocks) < 1:
            raise ValueError(
                f"blocks gives how many Inception-A, -B and -C modules (each 1 or more), got {self.blocks}"
            )
        if len(self.reduction_a_widths) != 4:
            raise ValueError(f"reduction_a_widths is Table 1's (k, l, m, n), got {self.reduction_a_widths}")


class InceptionV4(InceptionNet):
    """Inception-v4 (figure 9): the stem of figure 3, then Inception-A, Reduction-A, Inception-B, Reduction-B and
    Inception-C modules, average pool, dropout and the classifier."""

    classifier_name = "last_linear"
    layer_container = "features"
    config_class = InceptionV4Config

    def __init__(
        self,
        config: InceptionV4Config | None = None,
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
        blocks_a, blocks_b, blocks_c = config.blocks
        layers: list[nn.Module] = [
            conv(in_chans, 32, kernel_size=3, stride=2),
            conv(32, 32, kernel_size=3),
            conv(32, 64, kernel_size=3, padding=1),
            stem_pool_and_conv(64, 96, conv, pool_first=True),  # 64 + 96 = 160 channels
            stem_split_7x1(160, conv),  # 96 + 96 = 192
            stem_pool_and_conv(192, 192, conv, pool_first=False),  # 384
        ]
        layers += [inception_v4_a(384, conv) for _ in range(blocks_a)]
        k, l, m, n = config.reduction_a_widths  # noqa: E741
        layers.append(reduction_a(384, k, l, m, n, conv))
        grid17 = 384 + m + n
        layers += [inception_v4_b(grid17 if i == 0 else 1024, conv) for i in range(blocks_b)]
        layers.append(reduction_b(1024, conv))
        layers += [InceptionV4ExpandedC(1536, conv) for _ in range(blocks_c)]
        self.features = nn.Sequential(*layers)
        ends = [2, 3, 5 + blocks_a, 6 + blocks_a + blocks_b, len(layers) - 1]
        channels, reductions = [64, 160, 384, 1024, 1536], [2, 4, 8, 16, 32]
        feature_info = [
            {"num_chs": c, "reduction": r, "module": f"features.{e}"}
            for c, r, e in zip(channels, reductions, ends, strict=True)
        ]
        self.finish_init(1536, num_classes, global_pool, drop_rate, feature_info, {})
        for module in self.modules():  # timm's initialisation: torch's defaults, BatchNorm at 1 / 0
            if isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Any:
        """timm's groups: the three stem convolutions, then each layer of ``features``; the classifier last."""
        return self._stem_then_layer_groups(3, coarse)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled final map, ``(batch, 1536, 8, 8)`` at 299x299."""
        self.check_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers(self.layer_names[0], self.layer_names[-1], x)
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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
            "first_conv": "features.0.conv",
            "classifier": "last_linear",
            "license": "apache-2.0",
            "paper_ids": "arXiv:1602.07261",
            "paper_name": "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
            **kwargs,
        }
    )


default_cfgs = generate_default_cfgs(
    {
        "inception_v4.tf_in1k": _cfg(
            paper_row="Inception-v4 (2017 paper, figure 9)",
            hf_hub_id="timm/inception_v4.tf_in1k",
            top1=80.144,
            top5=94.982,
            origin_url="https://github.com/tensorflow/models/tree/master/research/slim",
            description="Inception-v4 with TF-slim's ImageNet weights, as timm publishes them.",
        ),
    }
)


@register_model
def inception_v4(pretrained: bool = False, **kwargs: Any) -> InceptionV4:
    """Inception-v4 (figure 9): 42.7M parameters, 12.3 G multiply-adds at 299x299; keys equal timm's."""
    return build_model_with_cfg(InceptionV4, "inception_v4", pretrained, config=InceptionV4Config(), **kwargs)
