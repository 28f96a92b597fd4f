"""What every benchmark script shares: the name of the machine a figure came from, and the CSV it writes.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and ``import common`` finds it.
"""

import csv
import os


def machine(threads: int | None = None, device: str = "cpu") -> str:
    """The CPU's model name and the flags that decide int8 and bf16 speed (AVX-512, AVX512-BF16, VNNI, AMX), and
    the threads used, or the GPU's name: a figure is only a figure for the machine it names."""
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    from inceptionzoo.precision import cpu_info

    threads = threads if threads is not None else os.cpu_count()
    return f"{cpu_info().describe()}, {threads} threads"


def write_csv(path: str, rows: list[dict], cpu: str) -> None:
    """The rows as a CSV with every column any row has, in first-seen order, and the ``cpu`` they were measured on."""
    rows = [{**row, "cpu": cpu} for row in rows]
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
