"""The processes of a run: rank, device and process group (torchrun), each epoch's seed, DDP, and what the ranks
share (sums, BatchNorm statistics, the check that replicas agree)."""

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "Distributed",
    "all_ranks_sum",
    "average_batchnorm_statistics",
    "default_workers",
    "epoch_seed",
    "replicas_identical",
    "wrap_ddp",
]


class Distributed:
    """Rank, world size and device of this process; sets up the process group when launched by torchrun."""

    def __init__(self, device: str) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
        self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        self.owns_group = False
        self._last_barrier: Any = None
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self.owns_group = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            # the work is kept until the next barrier or the group's end: before torch 2.8, gloo's destructor joins
            # its worker threads holding the GIL, and a worker that dropped the last reference to a finished
            # collective (a barrier holds the ones it waited for) would wait for the GIL forever (pytorch#154976)
            self._last_barrier = dist.barrier(async_op=True)
            self._last_barrier.wait()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
        self._last_barrier = None  # freed here, on this thread, after gloo's workers have stopped


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's epoch: a resumed run draws the same numbers as one that was never interrupted."""
    return seed * 1_000_003 + epoch * 1_009 + rank


def wrap_ddp(model: nn.Module, env: Distributed) -> nn.Module:
    """``model`` in DistributedDataParallel when the run has several processes, else ``model`` itself."""
    if env.world_size == 1:
        return model
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def average_batchnorm_statistics(modules: list[nn.Module | None], world_size: int) -> None:
    """Average the BatchNorm running statistics of ``modules`` over the ranks: each rank's saw only its own batches."""
    if world_size > 1:
        from timm.utils import distribute_bn

        for module in modules:
            if module is not None:
                distribute_bn(module, world_size, reduce=True)


def all_ranks_sum(count: int, env: Distributed) -> int:
    """``count`` summed over every rank."""
    if env.world_size == 1:
        return count
    total = torch.tensor([count], dtype=torch.int64, device=env.device)
    dist.all_reduce(total)
    return int(total.item())


def default_workers(world_size: int) -> int:
    """DataLoader workers per process for streamed data: the cores this process has, less one for training."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores // world_size - 1))


def replicas_identical(model: nn.Module) -> bool:
    """True when every rank holds exactly rank 0's weights and buffers."""
    same = torch.ones(1)
    for tensor in model.state_dict().values():
        reference = tensor.detach().clone()
        dist.broadcast(reference, src=0)
        if not torch.equal(reference, tensor):
            same.zero_()
    same = same.to(next(model.parameters()).device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())
