"""Inception-v2: the rows of Table 3 before Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture
for Computer Vision", 1512.00567), as configs of Inception-v3's network and blocks (``inception_v3.py``).

Rows 4-6 are one network (a 7x7/2 first convolution, an aux head whose "fully connected" layer has no BatchNorm)
trained three ways; row 7 factorizes the 7x7 into three 3x3 convolutions. Row 8, BN-auxiliary, is ``inception_v3``.
"""

from typing import Any

from timm.models import generate_default_cfgs

from .._registry import register_model
from .inception_v3 import InceptionV3, InceptionV3Config, _cfg, _create

__all__: list[str] = []  # the builders add themselves

_STEM_7X7 = {"first_conv": "Conv2d_1a_7x7.conv"}
default_cfgs = generate_default_cfgs(
    {
        "inception_v2": _cfg(
            **_STEM_7X7,
            paper_row="Table 3, row 4: Inception-v2",
            description="Inception-v2 (Table 3, row 4): v3 graph, 7x7 stem, aux head without BN.",
        ),
        "inception_v2_rmsprop": _cfg(
            **_STEM_7X7,
            paper_row="Table 3, row 5: Inception-v2 RMSProp",
            description="Table 3, row 5: Inception-v2 trained with RMSProp.",
        ),
        "inception_v2_ls": _cfg(
            **_STEM_7X7,
            paper_row="Table 3, row 6: Inception-v2 Label Smoothing",
            description="Table 3, row 6: Inception-v2, RMSProp and label smoothing.",
        ),
        "inception_v2_f7x7": _cfg(
            paper_row="Table 3, row 7: Inception-v2 Factorized 7x7",
            description="Table 3, row 7: Inception-v2 with the 7x7 stem factorized into 3x3s.",
        ),
    }
)

_V2 = {"stem": "conv_7x7", "aux_fc_norm": False}


@register_model
def inception_v2(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Inception-v2 (Table 3, row 4): the v3 graph with an unfactorized 7x7/2 first convolution and an aux head
    whose "fully connected" layer has no BatchNorm; trained with momentum SGD."""
    config = InceptionV3Config(**_V2)
    return _create("inception_v2", pretrained, config=config, **kwargs)


@register_model
def inception_v2_rmsprop(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Table 3, row 5: Inception-v2's network; its recipe switches to RMSProp (decay 0.9, epsilon 1.0)."""
    config = InceptionV3Config(**_V2)
    return _create("inception_v2_rmsprop", pretrained, config=config, **kwargs)


@register_model
def inception_v2_ls(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Table 3, row 6: Inception-v2's network; its recipe adds label smoothing (epsilon 0.1) to RMSProp."""
    config = InceptionV3Config(**_V2)
    return _create("inception_v2_ls", pretrained, config=config, **kwargs)


@register_model
def inception_v2_f7x7(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """Table 3, row 7: the first 7x7 convolution factorized into three 3x3 convolutions (aux head still without BN)."""
    config = InceptionV3Config(aux_fc_norm=False)
    return _create("inception_v2_f7x7", pretrained, config=config, **kwargs)
