"""The settings the speed benchmarks compare, kept apart so that the harnesses that only time
(``benchmarks.speed_real`` on a GPU machine) need nothing beyond the library."""

# The original implementation's recipe: 300 Adam steps at lr 0.02, up to 100 positives, no
# early stop, the whole image (with ReferenceAdapter: weight gradients, the RPN every step)
REFERENCE = dict(steps=300, lr=0.02, max_positives=100, early_stop_patience=None, context=None)
