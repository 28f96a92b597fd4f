"""Which floating-point precision runs an Inception network fastest on this machine: the one rule behind
inference's ``dtype="auto"`` and training's ``--amp auto``.

On a GPU bf16 where it has it, else fp16. On a CPU bf16 with AMX, fp32 without bf16 instructions; with AVX-512-BF16
but no AMX (or AMX hidden by a virtual machine) bf16 may be faster or slower, so a short probe times both, its answer
cached per CPU, torch version and thread count.
"""

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["CpuInfo", "PrecisionChoice", "choose_precision", "cpu_info", "is_int8", "probe_bf16_speedup"]


def is_int8(dtype: object) -> bool:
    """Whether ``dtype`` asks for int8: ``"int8"`` or ``torch.qint8``, the two spellings ``optimize_for_inference``,
    its engines and FID take."""
    return dtype == "int8" or dtype is torch.qint8


_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
BF16_MIN_SPEEDUP = 1.1  # the probe's margin: below it, fp32 (the probe's own noise is a few percent)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and the flags that decide int8 and bf16 speed, as /proc/cpuinfo (or torch) reports."""

    model: str
    flags: tuple[str, ...]

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def describe(self) -> str:
        return f"{self.model} ({', '.join(self.flags) or 'no AVX-512, bf16 or AMX flags'})"


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``dtype="auto"`` picked and why, in words."""

    dtype: torch.dtype
    reason: str


def cpu_info() -> CpuInfo:
    """The model name and the relevant flags, from /proc/cpuinfo on Linux, else from torch's own checks."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    if not text:  # not Linux: torch's own instruction-set checks
        checks = {
            "avx512f": "_is_avx512_supported",
            "avx512_bf16": "_is_avx512_bf16_supported",
            "avx512_vnni": "_is_vnni_supported",
            "amx_bf16": "_is_amx_tile_supported",
        }
        flags = {name for name, check in checks.items() if getattr(torch.cpu, check, lambda: False)()}
    return CpuInfo(model or platform.processor() or "unknown CPU", tuple(f for f in _FLAGS if f in flags))


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "inceptionzoo" / "precision.json"


def _best_times(functions: list, repeats: int = 7) -> list[float]:
    """The fastest of ``repeats`` runs of each function, the functions taking turns: other work on a shared machine
    only ever adds time, so the minimum of interleaved runs compares the two precisions fairly under load too."""
    for function in functions:
        function()  # warm-up: oneDNN builds its kernels on the first call
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def probe_bf16_speedup() -> float:
    """fp32 time over bf16 time for the convolutions an Inception module runs most (3x3 and 1x1, channels_last).
    Above 1: bf16 is faster here."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 96, 35, 35, generator=generator).contiguous(memory_format=torch.channels_last)
    weights = [torch.randn(96, 96, 3, 3, generator=generator), torch.randn(192, 96, 1, 1, generator=generator)]
    weights = [w.contiguous(memory_format=torch.channels_last) for w in weights]

    def run(dtype: torch.dtype):
        inputs, kernels = x.to(dtype), [w.to(dtype) for w in weights]

        def step() -> None:
            with torch.no_grad():
                F.conv2d(inputs, kernels[0], padding=1)
                F.conv2d(inputs, kernels[1])

        return step

    fp32, bf16 = _best_times([run(torch.float32), run(torch.bfloat16)])
    return fp32 / bf16


def _cached_speedup(cpu: CpuInfo) -> float:
    """The probe's answer for this CPU, torch version and thread count, measured once and kept on disk."""
    key = f"{cpu.model}|{','.join(cpu.flags)}|torch {torch.__version__}|{torch.get_num_threads()} threads"
    path = _cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return float(cache[key])
    speedup = probe_bf16_speedup()
    cache[key] = round(speedup, 3)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
    except OSError:
        pass  # a read-only home: the probe runs again next time
    return speedup


def choose_precision(device: torch.device | str = "cpu") -> PrecisionChoice:
    """The fastest precision on ``device``, for inference and for training's autocast: see the module's docstring
    for the rule."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice(torch.bfloat16, f"{torch.cuda.get_device_name(device)} runs bf16 tensor cores")
        return PrecisionChoice(torch.float16, f"{torch.cuda.get_device_name(device)} has fp16 but not bf16")
    if device.type != "cpu":
        return PrecisionChoice(torch.float32, f"no precision rule for {device.type}: fp32")
    cpu = cpu_info()
    amx_usable = getattr(torch.cpu, "_is_amx_tile_supported", lambda: True)  # torch's own check, where it has one
    if cpu.has("amx_bf16") and amx_usable():
        return PrecisionChoice(torch.bfloat16, f"{cpu.model} has AMX, which runs bf16 convolutions")
    if not cpu.has("avx512_bf16"):
        return PrecisionChoice(torch.float32, f"{cpu.model} has no bf16 instructions (AVX-512-BF16 or AMX)")
    speedup = _cached_speedup(cpu)
    verdict = "faster" if speedup >= BF16_MIN_SPEEDUP else "not faster"
    dtype = torch.bfloat16 if speedup >= BF16_MIN_SPEEDUP else torch.float32
    return PrecisionChoice(
        dtype, f"{cpu.model} has AVX-512-BF16 without AMX; bf16 convolutions measured {speedup:.2f}x fp32 ({verdict})"
    )
