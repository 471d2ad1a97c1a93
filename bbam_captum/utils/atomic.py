"""Writing files so that a crash never leaves a half-written file under the final name."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Opens ``path + ".tmp"`` for writing and renames it to ``path`` once the block succeeds.

    The temporary name keeps ``path``'s name as a prefix and ends in ``.tmp``, so globs on
    the final suffix (``*.npz``, ``*.png``) never match it. On an error the temporary file
    is removed and the error propagates.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, payload: object, indent: int | None = None) -> None:
    """JSON to ``path`` through :func:`atomic_open`."""
    with atomic_open(path, "w") as f:
        json.dump(payload, f, indent=indent)
