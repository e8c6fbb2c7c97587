"""Drawing from a generator network: eval mode for the call, and checked class labels.

Shared by `Trainer.sample` (during training) and `Generator.sample` (a loaded generator, no trainer).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from .errors import GanError


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run `module` in eval mode (batch-norm running statistics, no dropout), then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def checked_labels(labels: Optional[Tensor | int], n: int, num_classes: int, class_names: Sequence[str],
                   device: torch.device) -> Optional[Tensor]:
    """`labels` (an int for all n, or n ints) as a long tensor on `device`, checked against the classes.

    None stays None (the caller picks random classes); labels for an unconditional run are refused."""
    if not num_classes:
        if labels is not None:
            raise GanError("this run is not conditional: it cannot draw a chosen class")
        return None
    if labels is None:
        return None
    if isinstance(labels, int):
        labels = torch.full((n,), labels, dtype=torch.long)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise GanError(f"label must be in [0, {num_classes - 1}] ({', '.join(class_names)})")
    return labels.to(device)
