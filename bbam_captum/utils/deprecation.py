"""Arguments renamed with their old name kept for a while."""
from __future__ import annotations

import warnings
from typing import Any


def renamed_argument(value: Any, old_value: Any, name: str, old_name: str, where: str, stacklevel: int) -> Any:
    """``value``, or ``old_value`` where the caller used the argument's old name (None: not given),
    with a ``DeprecationWarning``; ``stacklevel`` as for :func:`warnings.warn`, counted from here.

    Raises:
        TypeError: both names given.
    """
    if old_value is None:
        return value
    if value is not None:
        raise TypeError(f"{where}: give {name} only ({old_name} is its deprecated name), not both")
    warnings.warn(f"{where}'s {old_name} is deprecated; use {name} (Captum's name)", DeprecationWarning,
                  stacklevel=stacklevel)
    return old_value
