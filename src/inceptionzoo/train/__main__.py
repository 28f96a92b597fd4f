"""``python -m inceptionzoo.train``: see ``inceptionzoo.train.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m inceptionzoo.train"))
