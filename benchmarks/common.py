"""What every benchmark script shares: the name of the machine a figure came from, and the CSV it writes.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and ``import common`` finds it.
"""

import csv
import os
import platform

SPEED_FLAGS = {"avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def machine(threads: int | None = None) -> str:
    """The CPU's model name and the flags that decide bf16 speed (AMX or not), and the threads used: a figure is
    only a figure for the machine it names (`lscpu`'s "Model name" and "Flags")."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the platform's own name only
        pass
    features = [label for flag, label in SPEED_FLAGS.items() if flag in flags]
    threads = threads if threads is not None else os.cpu_count()
    return f"{name}" + (f" ({', '.join(features)})" if features else "") + f", {threads} threads"


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
