"""Train or fine-tune any inceptionzoo model on CIFAR-10 (the training loop of ``inceptionzoo train`` with CIFAR-10
defaults). See examples/README.md for the commands and docs/results.md for the measured figures.

    python examples/finetune_cifar10.py --subset 2000 --epochs 2                      # a quick look
    python examples/finetune_cifar10.py --val-size 0 --eval-test                      # the docs/results.md run
    python examples/finetune_cifar10.py --model inception_v3.tv_in1k --pretrained     # ImageNet weights, 299x299
"""

import sys
from pathlib import Path

from inceptionzoo.train.command import main
from inceptionzoo.train.config import TrainConfig

# the project's offline copy of CIFAR-10 (JPEG, ImageFolder layout), beside the repository
SHARED_COPY = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()

# the zoo's fastest-training CIFAR network, with its recipe (cifar_fast: 22 epochs at batch 1024)
DEFAULTS = TrainConfig(model="inception_fast_cifar", data=str(SHARED_COPY))

TIME_NOTE = (
    "How long a run takes depends on the CPU's bf16 support: 2 cores with AMX (recent Intel Xeons) train it fastest, "
    "CPUs with AVX-512-BF16 but no AMX (such as AMD EPYC) markedly slower, CPUs without bf16 instructions in fp32, "
    "slower again. docs/results.md gives the minutes of the 2-epoch and 22-epoch runs on both bf16 kinds."
)


def run(argv: list[str]) -> int:
    asks_for_help = "-h" in argv or "--help" in argv
    if not SHARED_COPY.is_file() and not asks_for_help and not any(a.split("=")[0] == "--data" for a in argv):
        # offline and without the shared copy there is nothing to train on: say so instead of failing deep inside
        print(
            f"finetune_cifar10.py: no CIFAR-10 copy at {SHARED_COPY}; nothing to train. Pass --data DIR (an "
            "ImageFolder with train/ and test/) or --data torchvision:ROOT --download where the network allows.",
            file=sys.stderr,
        )
        return 2
    return main(argv, defaults=DEFAULTS, prog="finetune_cifar10.py", epilog=TIME_NOTE)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
