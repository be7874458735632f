"""Multi-GPU training through torchrun: process group set-up and the few collectives the loop needs.

Without torchrun (no WORLD_SIZE in the environment) everything degrades to one process and the
collectives are no-ops, so the loop has one code path. CUDA processes use NCCL, CPU ones gloo
(which is how the tests run two processes on a laptop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from MTSASegmenterLib.inference.predictor import select_device


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Only the main process writes files, logs and progress."""
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The predictor's choice (auto: CUDA, then MPS, then the CPU; absent devices refused), with
    the process's own GPU under torchrun."""
    chosen = select_device(name)
    return torch.device("cuda", local_rank) if chosen.type == "cuda" else chosen


def setup(device: str) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank)
    if world_size == 1:
        return Dist(0, 1, chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), world_size, chosen)


def barrier(d: Dist) -> None:
    if d.world_size > 1:
        dist.barrier()


def all_reduce_sum(d: Dist, values: torch.Tensor) -> torch.Tensor:
    """Sum a float64 vector over processes (validation totals), on the CPU for gloo / NCCL alike."""
    if d.world_size == 1:
        return values
    buffer = values.to(d.device, torch.float64)
    dist.all_reduce(buffer)
    return buffer.cpu()


def teardown(d: Dist) -> None:
    if d.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
