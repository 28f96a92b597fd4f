"""A model family written the way CONTRIBUTING.md says, outside the package: a config dataclass, one model class on
``InceptionNet`` built from the shared blocks, a pretrained config and a registered builder. conftest.py imports
it before it reads the registry, so every registry-parametrised test (the whole model contract) covers it too."""

from dataclasses import dataclass
from typing import Any

import torch
from timm.models import generate_default_cfgs
from torch import nn

from inceptionzoo import register_model
from inceptionzoo._builder import build_model_with_cfg
from inceptionzoo._registry import InceptionPretrainedCfg
from inceptionzoo._validation import check_config_fields
from inceptionzoo.layers import ParallelBranches, conv_norm_act_factory
from inceptionzoo.models._base import CIFAR10_CFG, InceptionNet

__all__ = ["ToyInception", "ToyInceptionConfig", "toy_inception"]


def toy_module(in_chs: int, out_chs: int, conv_layer: Any) -> ParallelBranches:
    """Half the channels from a 1x1 branch, half from 1x1 -> 3x3: the smallest Inception module."""
    half = out_chs // 2
    return ParallelBranches(
        branch1x1=conv_layer(in_chs, half, kernel_size=1),
        branch3x3=nn.Sequential(
            conv_layer(in_chs, half, kernel_size=1), conv_layer(half, out_chs - half, kernel_size=3, padding=1)
        ),
    )


@dataclass(frozen=True)
class ToyInceptionConfig:
    """The stem's width and the two modules' widths."""

    stem_width: int = 16
    widths: tuple[int, int] = (32, 48)

    def __post_init__(self) -> None:
        check_config_fields(self)


class ToyInception(InceptionNet):
    """Stem convolution, module, 2x2 max pool, module; the base class gives the head and the whole contract."""

    config_class = ToyInceptionConfig

    def __init__(
        self,
        config: ToyInceptionConfig | None = None,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        norm_layer: str | type[nn.Module] | None = "batchnorm2d",
        norm_eps: float = 1e-3,
        act_layer: str | type[nn.Module] = "relu",
        **config_overrides: Any,
    ) -> None:
        config = self.begin_init(locals())
        conv_layer = conv_norm_act_factory(norm_layer, norm_eps, act_layer)
        first, second = config.widths
        self.stem = conv_layer(in_chans, config.stem_width, kernel_size=3, padding=1)
        self.block1 = toy_module(config.stem_width, first, conv_layer)
        self.pool = nn.MaxPool2d(2)
        self.block2 = toy_module(first, second, conv_layer)
        feature_info = [
            {"num_chs": config.stem_width, "reduction": 1, "module": "stem"},
            {"num_chs": first, "reduction": 1, "module": "block1"},
            {"num_chs": second, "reduction": 2, "module": "block2"},
        ]
        self.finish_init(second, num_classes, global_pool, drop_rate, feature_info, {})

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers(self.layer_names[0], self.layer_names[-1], x)
        return self.block2(self.pool(self.block1(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


default_cfgs = generate_default_cfgs(
    {
        "toy_inception": InceptionPretrainedCfg(
            **CIFAR10_CFG,
            pool_size=(16, 16),
            first_conv="stem.conv",
            classifier="fc",
            license="apache-2.0",
            paper_ids="arXiv:1409.4842",
            paper_name="Going Deeper with Convolutions",
            description="A toy family registered from the tests, as CONTRIBUTING.md describes.",
        )
    }
)


@register_model
def toy_inception(pretrained: bool = False, **kwargs: Any) -> ToyInception:
    """The toy family's one variant, for 32x32 images."""
    return build_model_with_cfg(ToyInception, "toy_inception", pretrained, config=ToyInceptionConfig(), **kwargs)
