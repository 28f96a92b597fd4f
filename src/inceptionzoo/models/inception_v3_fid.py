"""The Inception-v3 that FID is computed with (Heusel et al. 2017, arXiv:1706.08500): TensorFlow's 2015-12-05
Inception graph as pytorch-fid and torch-fidelity build it, a config of Inception-v3's network and blocks
(``inception_v3.py``). ``inceptionzoo.fid`` computes the distance with it.
"""

from typing import Any

from timm.models import generate_default_cfgs

from .._registry import register_model
from .inception_v3 import InceptionV3, InceptionV3Config, _cfg, _create

__all__: list[str] = []  # the builder adds itself

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)

default_cfgs = generate_default_cfgs(
    {
        "inception_v3_fid.tf_2015_12_05": _cfg(
            paper_row="FID: TensorFlow's 2015-12-05 Inception graph",
            url=FID_WEIGHTS_URL,
            num_classes=1008,
            crop_pct=1.0,
            interpolation="bilinear",
            license="apache-2.0",
            origin_url="https://github.com/mseitzer/pytorch-fid",
            paper_ids="arXiv:1706.08500",
            paper_name="GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
            description="The Inception-v3 graph FID is computed with: TensorFlow's 2015-12-05 weights as pytorch-fid "
            "publishes them (1008 classes; the features are the 2048-channel pool3).",
        ),
    }
)

# the FID graph's three departures from the reference model (pytorch-fid's FIDInceptionA/C/E_1/E_2)
_FID = {"branch_pool": "avg_exclude_pad", "final_branch_pool": "max", "feature_taps": "fid"}


@register_model
def inception_v3_fid(pretrained: bool = False, **kwargs: Any) -> InceptionV3:
    """The Inception-v3 that FID is computed with (TensorFlow's 2015-12-05 graph, as pytorch-fid and torch-fidelity
    build it): 1008 classes, pool branches that average without the padding, a max pool in ``Mixed_7c``'s pool
    branch, and feature taps at pytorch-fid's blocks (64, 192, 768 and 2048 channels). ``inceptionzoo.fid`` computes
    the distance with it."""
    config = InceptionV3Config(**_FID)
    kwargs.setdefault("num_classes", 1008)
    return _create("inception_v3_fid", pretrained, config=config, **kwargs)
