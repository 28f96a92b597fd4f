"""Model families; importing this package registers every model."""

from ._inception_2017_blocks import *  # noqa: F403
from .inception_fast import *  # noqa: F403
from .inception_resnet import *  # noqa: F403
from .inception_v1 import *  # noqa: F403
from .inception_v2 import *  # noqa: F403
from .inception_v3 import *  # noqa: F403
from .inception_v3_fid import *  # noqa: F403
from .inception_v4 import *  # noqa: F403
