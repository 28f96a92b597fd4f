"""Blocks shared by the 2017 families (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning", arXiv:1602.07261): Inception-v4 (``inception_v4.py``) and Inception-ResNet-v1 /
-v2 (``inception_resnet.py``) both build them, so they live here rather than in one family's file (as timm keeps
``_efficientnet_blocks.py`` beside its EfficientNet families).
"""

from typing import Any

from torch import nn

from ..layers import ParallelBranches

__all__ = ["reduction_a", "tf_pool_branch"]


def tf_pool_branch(in_chs: int, out_chs: int, conv_layer: Any) -> nn.Sequential:
    """The pool branch of the 2017 modules as TF-slim builds them: a 3x3/1 average pool that leaves the padding out
    of the average (TensorFlow's), then a 1x1 convolution to ``out_chs``."""
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_layer(in_chs, out_chs, 1))


def reduction_a(in_chs: int, k: int, l: int, m: int, n: int, conv_layer: Any) -> ParallelBranches:  # noqa: E741
    """Figure 7, 35x35 -> 17x17: 3x3/2 (n); 1x1 (k) -> 3x3 (l) -> 3x3/2 (m); 3x3/2 max pool. Table 1 gives k, l, m,
    n per network (Inception-v4: 192, 224, 256, 384)."""
    return ParallelBranches(
        branch0=conv_layer(in_chs, n, kernel_size=3, stride=2),
        branch1=nn.Sequential(
            conv_layer(in_chs, k, kernel_size=1),
            conv_layer(k, l, kernel_size=3, padding=1),
            conv_layer(l, m, kernel_size=3, stride=2),
        ),
        branch2=nn.MaxPool2d(3, stride=2),
    )
