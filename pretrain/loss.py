"""Symmetric InfoNCE against frozen teacher embeddings, over the batch of all processes.

Every process gathers the student embeddings of all ranks (its own shard keeps its autograd graph,
the others are constants) and the teacher embeddings, and computes the loss of the GLOBAL batch.
The gradient of that loss with respect to the local shard is exact; DDP then averages the
gradients of the ranks, i.e. divides their sum (= the full gradient) by the world size, so the
trainer backpropagates ``loss * world_size`` to match a single process with the same global batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor, with_grad: bool = False) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0 (equal shapes). With ``with_grad`` the local
    shard stays differentiable (the other shards are constants)."""
    rank, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.detach().contiguous())
    if with_grad:
        parts[rank] = x
    return torch.cat(parts)


def info_nce(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
             labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Symmetric InfoNCE between L2-normalised ``student`` [N, D] and ``teacher`` [N, D].

    labels: None = row i's only positive is teacher i. Otherwise [N] ints; every pair with equal
        labels is a positive (negative labels count as unique): multi-positive InfoNCE that averages
        the log-likelihood over the positives of each row (SupCon's L_out), in both directions.
    Returns (loss, stats) with stats["acc"] = fraction of rows whose top teacher is a positive.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student embeddings {tuple(student.shape)} and teacher embeddings "
                         f"{tuple(teacher.shape)} differ in shape")
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    logits = s @ t.T / temperature
    n = logits.shape[0]
    if labels is None:
        target = torch.arange(n, device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        positive = torch.eye(n, dtype=torch.bool, device=logits.device)
    else:
        labels = labels.to(logits.device).long()
        unique = -1 - torch.arange(n, device=logits.device)  # unknown labels: own row only
        labels = torch.where(labels < 0, unique, labels)
        positive = labels[:, None] == labels[None, :]
        pos = positive.float()
        row = -(F.log_softmax(logits, dim=1) * pos).sum(1) / pos.sum(1)
        col = -(F.log_softmax(logits, dim=0) * pos).sum(0) / pos.sum(0)
        loss = 0.5 * (row.mean() + col.mean())
    with torch.no_grad():
        acc = positive[torch.arange(n, device=logits.device), logits.argmax(1)].float().mean()
    return loss, {"acc": acc}
