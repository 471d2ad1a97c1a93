"""Lets torch's weights-only loading read the checkpoints that mmengine writes.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
``torch.load`` without saying otherwise, so its own checkpoints (whose ``message_hub``
holds ``HistoryBuffer`` objects with numpy arrays) fail to load in ``init_detector``,
``load_from`` and resume. Rather than switching the check off, this allow-lists exactly
the globals such a checkpoint names. One of them is ``builtins.getattr``, which pickle
uses to reach ``HistoryBuffer``'s statistics methods; in its place a getattr is
registered that answers only those look-ups and refuses every other one.

Importing :mod:`bbam_captum` installs the allow-list, so configs that name
``custom_imports=dict(imports=['bbam_captum'])`` get it inside ``mim train`` too.
"""
from __future__ import annotations

import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

_installed = False
# HistoryBuffer registers these on its first instance; custom ones join its class dict.
_BUILTIN_STATISTICS = frozenset({"min", "max", "current", "mean"})


def _history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` restricted to the statistics methods of ``HistoryBuffer``."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f"weights-only loading refused getattr({obj!r}, {name!r}): bbam-captum allows getattr "
        f"only for HistoryBuffer's statistics methods {sorted(allowed)}")


def _numpy_globals() -> list[tuple[object, str]]:
    core = np._core.multiarray
    module = core.__name__
    entries: list[tuple[object, str]] = [
        (np.dtype, "numpy.dtype"),
        (np.ndarray, "numpy.ndarray"),
        (core._reconstruct, f"{module}._reconstruct"),
        (core.scalar, f"{module}.scalar"),
    ]
    # numpy 2 may name a dtype by its class in numpy.dtypes (Float64DType, ...).
    for name, cls in vars(np.dtypes).items():
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            entries.append((cls, f"numpy.dtypes.{name}"))
    return entries


def install_checkpoint_allowlist() -> None:
    """Registers the allow-list with torch once per process; later calls do nothing."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals([
        (HistoryBuffer, "mmengine.logging.history_buffer.HistoryBuffer"),
        (_history_buffer_getattr, "builtins.getattr"),
        *_numpy_globals(),
    ])
    _installed = True
