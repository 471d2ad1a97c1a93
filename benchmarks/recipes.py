"""The settings the speed benchmarks compare, kept apart so that the harnesses that only time
(``benchmarks.speed_real`` on a GPU machine) need nothing beyond the library."""
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# The original implementation's recipe: 300 Adam steps at lr 0.02, up to 100 positives, no
# early stop, the whole image (with ReferenceAdapter: weight gradients, the RPN every step)
REFERENCE = dict(steps=300, lr=0.02, max_positives=100, early_stop_patience=None, context=None)


@contextmanager
def weights_with_gradients(model: torch.nn.Module) -> Iterator[None]:
    """The original's ``frozen``: eval mode, but the weights keep requiring gradients (and get
    them); the gradients are dropped and the mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
