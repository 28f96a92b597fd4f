"""A CIFAR-size Inception network shaped for fast training: the layout of the fastest CIFAR-10 trainers
(Jordan 2024, airbench94: a 2x2 patch-whitening convolution, then three groups of two convolutions with a max pool
in each, a global max pool and a scaled linear head) with every convolution replaced by an Inception module.

The Inception module is GoogLeNet's (Szegedy et al. 2014, figure 2b) with the 5x5 branch factorised into two 3x3
convolutions as in Inception-v3 (Szegedy et al. 2015, figure 5): 1x1, 3x3 and 3x3-3x3 branches read the same input
and are concatenated. The pool-projection branch is left out: its max pool costs training time for almost no
multiply-adds (docs/results.md). Fewer, wider branches than GoogLeNet's keep the training step dominated by
convolutions (docs/performance.md).
"""

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from timm.models import generate_default_cfgs
from torch import nn

from .._builder import build_model_with_cfg
from .._registry import InceptionPretrainedCfg, register_model
from .._validation import check_config_fields
from ..layers import ConvNormAct, FusedConvBranches, ParallelBranches, resolve_act_layer
from ._base import CIFAR10_CFG, InceptionNet

__all__ = ["FastInception", "FastInceptionConfig", "InceptionConvGroup", "fast_inception_module"]


def fast_inception_module(
    in_chs: int,
    out_chs: int,
    fractions: tuple[float, float, float],
    norm_layer: Any,
    act_layer: Any,
    last_plain: bool = False,
    factorize_3x3: bool = False,
    reduction: float = 0.0,
    fuse_branches: bool = True,
) -> nn.Module:
    """1x1, 3x3 and factorised-5x5 (3x3 then 3x3) branches, concatenated: ``fractions`` of ``out_chs`` each (a zero
    drops a branch; ``(0, 1, 0)`` is a plain 3x3 convolution). With ``last_plain`` each branch ends in a bare
    convolution, for a group that pools before it normalises.

    ``factorize_3x3`` makes every 3x3 a 1x3 then a 3x1 convolution (figure 6 of the Inception-v3 paper at n = 3, a
    third cheaper); ``reduction`` puts a 1x1 convolution to that share of a spatial branch's width before it
    (GoogLeNet's "3x3 reduce", figure 2b). ``fuse_branches`` runs branches that are each one convolution (the 1x1
    and 3x3 ones) as one convolution, ``FusedConvBranches``: the same module, faster to train on CPUs."""
    widths = [round(out_chs * f) for f in fractions]
    widths[1] += out_chs - sum(widths)  # rounding goes to the 3x3 branch
    conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer, bias=False)
    last = partial(ConvNormAct, norm_layer=None, act_layer=None, bias=False) if last_plain else conv

    def spatial(in_width: int, width: int, layer: Any) -> nn.Module:
        if not factorize_3x3:
            return layer(in_width, width, kernel_size=3, padding=1)
        return nn.Sequential(
            conv(in_width, width, kernel_size=(1, 3), padding=(0, 1)),
            layer(width, width, kernel_size=(3, 1), padding=(1, 0)),
        )

    def branch(width: int, depth: int) -> nn.Module:
        layers, channels = [], in_chs
        if reduction > 0:
            channels = max(8, round(width * reduction))
            layers.append(conv(in_chs, channels, kernel_size=1))
        for index in range(depth):
            layers.append(spatial(channels, width, last if index == depth - 1 else conv))
            channels = width
        return layers[0] if len(layers) == 1 else nn.Sequential(*layers)

    branches: dict[str, nn.Module] = {}
    if widths[0]:
        branches["branch1x1"] = last(in_chs, widths[0], kernel_size=1)
    if widths[1]:
        branches["branch3x3"] = branch(widths[1], depth=1)
    if widths[2]:
        branches["branch5x5"] = branch(widths[2], depth=2)
    if len(branches) == 1:
        return next(iter(branches.values()))
    if fuse_branches and all(isinstance(branch, ConvNormAct) for branch in branches.values()):
        return FusedConvBranches(**branches)
    return ParallelBranches(**branches)


class InceptionConvGroup(nn.Sequential):
    """One of airbench's convolution groups with Inception modules: module, 2x2 max pool, norm, activation, then a
    second module with its own norms and activations. Pooling before the norm does the norm on a quarter of the map."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        fractions: tuple[float, float, float],
        norm_layer: Any,
        act_layer: Any,
        **module_options: Any,
    ) -> None:
        super().__init__()
        module = partial(fast_inception_module, fractions=fractions, norm_layer=norm_layer, act_layer=act_layer,
                         **module_options)  # fmt: skip
        self.module_a = module(in_chs, out_chs, last_plain=True)
        self.pool = nn.MaxPool2d(2)
        self.bn = norm_layer(out_chs)
        self.act = act_layer()
        self.module_b = module(out_chs, out_chs)


@dataclass(frozen=True)
class FastInceptionConfig:
    """The widths of the three groups, the share of each module's channels per branch (1x1, 3x3, 3x3-3x3), the
    whitening convolution's kernel (its width is twice the patch's dimension), BatchNorm's momentum, the factor on the
    logits, whether convolutions start as identities (Dirac) in their first channels, two Inception design
    choices for ablations: every 3x3 as 1x3 then 3x1 (``factorize_3x3``) and a 1x1 reduction before each 3x3
    branch to ``reduction`` of its width (0: none), and whether modules whose branches are single convolutions run
    them as one (``fuse_branches``: the same function and weights, computed faster)."""

    widths: tuple[int, int, int] = (64, 256, 256)
    branch_fractions: tuple[float, float, float] = (0.25, 0.5, 0.25)
    whitening_kernel: int = 2
    norm_momentum: float = 0.4
    logit_scale: float = 1 / 9
    identity_init: bool = True
    factorize_3x3: bool = False
    reduction: float = 0.0
    fuse_branches: bool = True

    def __post_init__(self) -> None:
        check_config_fields(self)
        if len(self.widths) != 3 or min(self.widths) < 8:
            raise ValueError(f"widths gives the three groups' channels (each 8 or more), got {self.widths}")
        fractions = self.branch_fractions
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(
                f"branch_fractions gives the 1x1, 3x3 and 3x3-3x3 shares, non-negative and summing to 1, got "
                f"{self.branch_fractions}"
            )
        if not 0 <= self.reduction <= 1:
            raise ValueError(f"reduction is a share of a branch's width, from 0 (none) to 1, got {self.reduction}")
        if self.whitening_kernel < 1:
            raise ValueError(f"whitening_kernel must be 1 or more, got {self.whitening_kernel}")


class FastInception(InceptionNet):
    """The whitening convolution (``features.0``, set from the training images' patches by the training option
    ``whiten_stem``), its activation, three ``InceptionConvGroup``s, a global max pool and the scaled classifier."""

    layer_container = "features"
    config_class = FastInceptionConfig

    def __init__(
        self,
        config: FastInceptionConfig | None = None,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "max",
        norm_layer: str | type[nn.Module] | None = "batchnorm2d",
        norm_eps: float = 1e-5,
        act_layer: str | type[nn.Module] = "gelu",
        **config_overrides: Any,
    ) -> None:
        config = self.begin_init(locals())
        if norm_layer == "batchnorm2d":
            norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=config.norm_momentum)
        elif norm_layer is None:
            norm = nn.Identity
        else:
            from ..layers import resolve_norm_layer

            norm = resolve_norm_layer(norm_layer, norm_eps)
        act = resolve_act_layer(act_layer)
        whitening_width = 2 * in_chans * config.whitening_kernel**2
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, whitening_width, config.whitening_kernel),
            act(),
        ]
        channels = whitening_width
        for width in config.widths:
            options = {"factorize_3x3": config.factorize_3x3, "reduction": config.reduction,
                       "fuse_branches": config.fuse_branches}  # fmt: skip
            layers.append(InceptionConvGroup(channels, width, config.branch_fractions, norm, act, **options))
            channels = width
        self.features = nn.Sequential(*layers)
        feature_info = [
            {"num_chs": width, "reduction": 2 ** (i + 1), "module": f"features.{i + 2}"}
            for i, width in enumerate(config.widths)
        ]
        self.finish_init(channels, num_classes, global_pool, drop_rate, feature_info, {})
        self.logit_scale = config.logit_scale
        if config.identity_init:
            for module in self.features[2:].modules():
                if isinstance(module, nn.Conv2d):
                    identity_init_(module.weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Any:
        """The whitening convolution and its activation, then one group per ``InceptionConvGroup`` (each is one grid
        and one feature tap, so ``coarse`` gives the same groups); the classifier last."""
        return self._stem_then_layer_groups(2, coarse)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled final map, ``(batch, widths[2], 3, 3)`` at 32x32."""
        self.check_input(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return self.run_layers(self.layer_names[0], self.layer_names[-1], x)
        return self.features(x)

    def forward_classifier(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits scaled by ``logit_scale`` (airbench's 1/9), which sets how fast the classifier's
        outputs grow under the high learning rates of short schedules. Without a classifier (``num_classes=0``) the
        pooled features come out unscaled, as in every other model."""
        return self.fc(x) * self.logit_scale if self.num_classes else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@torch.no_grad()
def identity_init_(weight: torch.Tensor) -> None:
    """Make the first ``in_channels`` filters identities (torch's ``dirac_``) so each module starts by passing its
    input through, as airbench initialises its convolutions; the other filters keep their random values."""
    out_chs, in_chs = weight.shape[:2]
    nn.init.dirac_(weight[: min(out_chs, in_chs)])


def _cfg(**kwargs: Any) -> InceptionPretrainedCfg:
    return InceptionPretrainedCfg(
        **{
            **CIFAR10_CFG,
            "pool_size": (3, 3),
            "interpolation": "bilinear",
            "first_conv": "features.0",
            "classifier": "fc",
            "license": "apache-2.0",
            "paper_ids": "arXiv:1409.4842",
            "paper_name": "Going Deeper with Convolutions",
            **kwargs,
        }
    )


default_cfgs = generate_default_cfgs(
    {
        "inception_fast_cifar": _cfg(
            paper_row="CIFAR-size Inception for fast training (airbench94's layout)",
            description="Inception modules in airbench94's layout: the zoo's fastest-training CIFAR-10 network.",
        ),
    }
)


@register_model
def inception_fast_cifar(pretrained: bool = False, **kwargs: Any) -> FastInception:
    """Inception modules (1x1, 3x3, 3x3-3x3) in airbench94's layout for 32x32 images."""
    config = FastInceptionConfig()
    return build_model_with_cfg(FastInception, "inception_fast_cifar", pretrained, config=config, **kwargs)
