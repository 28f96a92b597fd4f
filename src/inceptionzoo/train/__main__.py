"""``python -m inceptionzoo.train``: see ``inceptionzoo.train.command``."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m inceptionzoo.train"))
