"""dtype="auto": what it picks on each kind of machine (the CPU's flags and the bf16 probe mocked, since this
machine is one kind only), that it says what and why, and that the probe runs once per CPU."""

import logging

import pytest
import torch

import inceptionzoo
from inceptionzoo import deploy, precision
from inceptionzoo.deploy import optimize_for_inference
from inceptionzoo.precision import CpuInfo, choose_precision

AMX = CpuInfo("Intel Xeon with AMX", ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"))
BF16_NO_AMX = CpuInfo("AMD EPYC or a VM hiding AMX", ("avx512f", "avx512_bf16", "avx512_vnni"))
NO_BF16 = CpuInfo("an older CPU", ("avx512f",))


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Set the CPU kind and the probe's answer; returns the list of probe calls."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[float] = []

    def set_machine(cpu: CpuInfo, speedup: float = 1.0) -> list[float]:
        monkeypatch.setattr(precision, "cpu_info", lambda: cpu)
        monkeypatch.setattr(precision.torch.cpu, "_is_amx_tile_supported", lambda: cpu.has("amx_bf16"), raising=False)

        def probe() -> float:
            calls.append(speedup)
            return speedup

        monkeypatch.setattr(precision, "probe_bf16_speedup", probe)
        return calls

    return set_machine


def test_auto_picks_fp32_where_bf16_measured_slower_and_bf16_where_faster(machine, monkeypatch):
    calls = machine(BF16_NO_AMX, speedup=0.74)  # the VM that hides AMX, measured in issue 19
    choice = choose_precision("cpu")
    assert choice.dtype == torch.float32 and "0.74x" in choice.reason and "not faster" in choice.reason
    assert choose_precision("cpu").dtype == torch.float32 and len(calls) == 1  # cached on disk, not re-probed
    calls = machine(CpuInfo("AMD EPYC Zen 5", BF16_NO_AMX.flags), speedup=2.0)  # another CPU: probed again
    assert choose_precision("cpu").dtype == torch.bfloat16 and len(calls) == 2


def test_auto_needs_no_probe_where_the_flags_decide(machine):
    calls = machine(AMX)
    assert choose_precision("cpu").dtype == torch.bfloat16
    calls = machine(NO_BF16)
    choice = choose_precision("cpu")
    assert choice.dtype == torch.float32 and "no bf16 instructions" in choice.reason
    assert calls == []


def test_auto_on_a_gpu_is_bf16_or_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert choose_precision("cuda").dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert choose_precision("cuda").dtype == torch.float16


def test_training_amp_auto_follows_the_same_rule(machine, monkeypatch):
    from inceptionzoo.train.engine import autocast_dtype

    cpu = torch.device("cpu")
    machine(AMX)
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    machine(NO_BF16)
    assert autocast_dtype("auto", cpu) is None  # fp32: no autocast
    machine(BF16_NO_AMX, speedup=0.74)
    assert autocast_dtype("auto", cpu) is None
    machine(CpuInfo("AMD EPYC Zen 5", BF16_NO_AMX.flags), speedup=2.0)
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert autocast_dtype("auto", torch.device("cuda")) == torch.float16
    # an explicit --amp is kept as given
    assert autocast_dtype("bf16", cpu) == torch.bfloat16 and autocast_dtype("none", cpu) is None
    with pytest.raises(ValueError, match="needs a CUDA device"):
        autocast_dtype("fp16", cpu)


def test_the_fast_model_says_what_was_chosen_and_why(machine, caplog):
    machine(BF16_NO_AMX, speedup=0.74)
    model = inceptionzoo.create_model("inception_v1_cifar").eval()
    with caplog.at_level(logging.INFO, logger="inceptionzoo"):
        fast = optimize_for_inference(model)
    assert fast.precision == "float32" and "0.74x" in fast.precision_reason
    assert any("float32" in record.getMessage() and "0.74x" in record.getMessage() for record in caplog.records)
    explicit = optimize_for_inference(model, dtype=torch.bfloat16)  # an explicit dtype is always respected
    assert explicit.precision == "bfloat16" and explicit.precision_reason == "asked for bfloat16"
    with torch.no_grad():
        assert fast(torch.randn(1, 3, 32, 32)).dtype == torch.float32


def test_the_gpu_compile_uses_max_autotune_and_cuda_graphs(monkeypatch):
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda module, options=None: seen.setdefault("options", options) and module)
    deploy._compile(torch.nn.Identity(), torch.device("cuda"))
    assert seen["options"] == {"freezing": True, "max_autotune": True, "triton.cudagraphs": True}
    seen.clear()
    deploy._compile(torch.nn.Identity(), torch.device("cpu"))
    assert seen["options"] == {"freezing": True}


def test_the_probe_times_real_convolutions():
    speedup = precision.probe_bf16_speedup()
    assert 0.01 < speedup < 100  # a ratio of two measured times; its value depends on the CPU
    info = precision.cpu_info()
    assert info.model and set(info.flags) <= set(precision._FLAGS)


def test_the_probe_takes_the_best_of_interleaved_runs(monkeypatch):
    """Other work on a shared machine only adds time: a run slowed by it does not decide (a probe on a busy machine
    once cached bf16 as slower than fp32 on a CPU where it is faster)."""
    clock = iter(range(1000))
    monkeypatch.setattr(precision.time, "perf_counter", lambda: next(clock))
    calls = []

    def fast():
        calls.append("fast")

    def interrupted():  # every other run of it loses 5 ticks to another process
        calls.append("slow")
        if calls.count("slow") % 2:
            for _ in range(5):
                next(clock)

    assert precision._best_times([fast, interrupted], repeats=4) == [1, 1]
    assert calls[2:6] == ["fast", "slow", "fast", "slow"]  # the two take turns after their warm-ups
