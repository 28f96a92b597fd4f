"""Is the data or the model the bottleneck? Images per second of the streaming pipeline (JPEG decode + the training
augmentation, in 0, 1 or 2 DataLoader workers) against the model's training step on batches of the same size.

The images are real CIFAR-10 photos from the project's JPEG copy: as they are for 32 px (``inception_v1_cifar``),
and upscaled to 500x375 and re-encoded as JPEG (quality 90, about an ImageNet photo's size) for 224 px
(``inception_v1``, GoogLeNet) and 299 px (``inception_v3``). Each figure is the median of ``--repeats`` timed
passes after a warm-up pass, in one process.

    python benchmarks/data.py --images 256 --repeats 3 --csv benchmarks/data.csv
"""

import argparse
import io
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from common import machine, write_csv
from PIL import Image

import inceptionzoo
from inceptionzoo.train.data.folder import ImageFileDataset, list_image_folder
from inceptionzoo.train.data.loaders import StreamLoader
from inceptionzoo.train.data.transforms import train_transform
from inceptionzoo.train.engine import train_one_epoch
from inceptionzoo.train.recipes import RECIPES

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
SETTINGS = {32: ("inception_v1_cifar", 128), 224: ("inception_v1", 32), 299: ("inception_v3", 16)}


def write_folder(root: Path, count: int, upscale: bool) -> Path:
    """``count`` CIFAR-10 training photos as ``train/<class>/*.jpg``, optionally upscaled to 500x375."""
    written = 0
    with tarfile.open(SHARED) as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] != "train":
                continue
            target = root / "train" / parts[-2] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            data = archive.extractfile(member).read()
            if upscale:
                with Image.open(io.BytesIO(data)) as image:
                    image.convert("RGB").resize((500, 375), Image.BICUBIC).save(target, quality=90)
            else:
                target.write_bytes(data)
            written += 1
            if written == count:
                break
    return root / "train"


def data_rate(folder: Path, model: torch.nn.Module, size: int, batch: int, workers: int, repeats: int) -> float:
    samples, classes = list_image_folder(folder)
    dataset = ImageFileDataset(samples, classes, train_transform(model, size))
    loader = StreamLoader(dataset, batch, train=True, workers=workers)
    times = []
    for epoch in range(repeats + 1):
        began = time.perf_counter()
        count = sum(len(labels) for _, labels in loader.epoch(epoch))
        if epoch:  # the first pass starts the workers
            times.append(count / (time.perf_counter() - began))
    return statistics.median(times)


def model_rate(model: torch.nn.Module, size: int, batch: int, repeats: int) -> float:
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = [(torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last),
             torch.randint(0, 10, (batch,)))]  # fmt: skip
    step = lambda: train_one_epoch(model, data, optimizer, torch.nn.CrossEntropyLoss(), RECIPES["cifar"])  # noqa: E731
    step()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        times.append(batch / (time.perf_counter() - began))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per timed pass (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per figure (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224, 299], choices=sorted(SETTINGS))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--csv", default=None, help="write the table to this CSV file")
    args = parser.parse_args()
    if not SHARED.is_file():
        sys.exit(f"data.py: the CIFAR-10 copy is not at {SHARED}")
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            name, batch = SETTINGS[size]
            folder = write_folder(Path(scratch) / str(size), args.images, upscale=size > 32)
            model = inceptionzoo.create_model(name, num_classes=10)
            step = model_rate(model, size, batch, args.repeats)
            for workers in args.workers:
                rate = data_rate(folder, model, size, batch, workers, args.repeats)
                rows.append({"size": size, "model": name, "batch": batch, "workers": workers,
                             "data_images_per_s": round(rate, 1), "train_step_images_per_s": round(step, 1),
                             "data_over_step": round(rate / step, 2)})  # fmt: skip
                print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    if args.csv:
        write_csv(args.csv, rows, machine(args.threads))


if __name__ == "__main__":
    main()
