"""Lets torch's weights-only loading read the checkpoints that mmengine writes.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10 calls
``torch.load`` without saying otherwise, so its own checkpoints (whose ``message_hub``
holds ``HistoryBuffer`` objects with numpy arrays) fail to load in ``init_detector``,
``load_from`` and resume. Rather than switching the check off, this allow-lists exactly
the globals such a checkpoint names. One of them is ``builtins.getattr``, which pickle
uses to reach ``HistoryBuffer``'s statistics methods; in its place a getattr is
registered that answers only those look-ups and refuses every other one.

Nothing here runs at import. :func:`mmengine_checkpoint_globals` allows the globals for
one ``with`` block (:func:`bbam_captum.load_detector` uses it); :func:`install_checkpoint_allowlist`
allows them for the rest of the process, which is what an OpenMMLab run needs since
mmengine loads checkpoints deep inside the runner: configs get it by importing
:mod:`bbam_captum.mmlab` through ``custom_imports``.
"""
from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_installed = False
# HistoryBuffer registers these on its first instance; custom ones join its class dict.
_BUILTIN_STATISTICS = frozenset({"min", "max", "current", "mean"})


def _history_buffer_getattr(obj: object, name: str) -> object:
    """``getattr`` restricted to the statistics methods of ``HistoryBuffer``."""
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f"weights-only loading refused getattr({obj!r}, {name!r}): bbam-captum allows getattr "
        f"only for HistoryBuffer's statistics methods {sorted(allowed)}")


def _numpy_globals() -> list[tuple[object, str]]:
    # numpy 2 moved numpy.core to numpy._core; a checkpoint names the module of the numpy
    # that wrote it, so both names are allowed for the same functions.
    core = getattr(np, "_core", None) or np.core
    entries: list[tuple[object, str]] = [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries += [(core.multiarray._reconstruct, f"{module}._reconstruct"),
                    (core.multiarray.scalar, f"{module}.scalar")]
    # numpy >= 1.25 may name a dtype by its class in numpy.dtypes (Float64DType, ...).
    for name, cls in vars(getattr(np, "dtypes", object)).items():
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            entries.append((cls, f"numpy.dtypes.{name}"))
    return entries


def checkpoint_globals() -> list[tuple[object, str]]:
    """The globals an mmengine checkpoint names beyond torch's own, as ``(object, name)`` pairs."""
    from mmengine.logging.history_buffer import HistoryBuffer

    return [
        (HistoryBuffer, "mmengine.logging.history_buffer.HistoryBuffer"),
        (_history_buffer_getattr, "builtins.getattr"),
        *_numpy_globals(),
    ]


@contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the block, weights-only loading reads mmengine's checkpoints; afterwards torch's
    allow-list is as it was."""
    # torch's context removes on exit whatever it was given, so it is given only the entries not
    # allowed already (by install_checkpoint_allowlist, say), which then stay allowed
    present = set(torch.serialization.get_safe_globals())
    with torch.serialization.safe_globals([g for g in checkpoint_globals() if g not in present]):
        yield


def install_checkpoint_allowlist() -> None:
    """Registers the allow-list with torch for the whole process, once; later calls do nothing."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals(checkpoint_globals())
    _installed = True
