"""What every benchmark shares: the run's metadata, peak memory, timed callables, markdown tables and the
synthetic val split.

Each benchmark starts with :func:`start_run` and merges :meth:`RunInfo.meta` (command line, machine,
threads, device, date, minutes) into the metadata it writes; measures memory with :func:`peak_memory`;
and writes its markdown with :func:`markdown_table` and :func:`write_markdown`.
"""
from __future__ import annotations

import ctypes
import gc
import platform
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

import torch

from bbam_captum import BBAMSettings
from bbam_captum.synth import write_dataset

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ANN = REPO / "data" / "synth" / "val" / "annotations.json"
VAL_SEED, VAL_IMAGES = 1, 300  # the bundled detector's val split (`make detector-data` draws it too)

P = ParamSpec("P")
R = TypeVar("R")


def ensure_val_split(ann: Path) -> Path:
    """``ann`` itself, or, when it is the default split and missing, the split drawn there."""
    if ann.is_file():
        return ann
    if ann != DEFAULT_ANN:
        raise SystemExit(f"annotation file not found: {ann}")
    print(f"drawing the synthetic val split ({VAL_IMAGES} images, seed {VAL_SEED}) into {ann.parent}")
    return write_dataset(ann.parent, VAL_IMAGES, VAL_SEED)


@dataclass(frozen=True)
class RunInfo:
    """One benchmark invocation, as its outputs record it.

    Attributes:
        command: the command line, ``python -m benchmarks.NAME ...``.
        machine: the CPU architecture and threads, e.g. ``x86_64, 2 CPU threads``.
        threads: torch's CPU threads.
        device: what ran the methods: ``x86_64 CPU, 2 threads`` or the GPU's name.
        date: ``YYYY-MM-DD``.
        started: ``time.perf_counter()`` at the start.
    """

    command: str
    machine: str
    threads: int
    device: str
    date: str
    started: float

    def seconds(self) -> float:
        """Wall seconds since the start."""
        return time.perf_counter() - self.started

    def meta(self) -> dict[str, Any]:
        """The fields every benchmark's metadata holds, ``minutes`` up to now."""
        return {"command": self.command, "machine": self.machine, "threads": self.threads, "device": self.device,
                "date": self.date, "minutes": round(self.seconds() / 60, 1)}


def start_run(module: str, argv: Sequence[str] | None, device: str | torch.device = "cpu",
              threads: int | None = None) -> RunInfo:
    """The :class:`RunInfo` of ``python -m MODULE ARGV`` (``sys.argv`` when None) on ``device``;
    ``threads``: the CPU threads its methods run with (default: torch's now)."""
    args = list(sys.argv[1:] if argv is None else argv)
    threads = torch.get_num_threads() if threads is None else threads
    plural = "" if threads == 1 else "s"
    device = torch.device(device)
    name = (f"{platform.machine()} CPU, {threads} thread{plural}" if device.type == "cpu"
            else torch.cuda.get_device_name(device))
    return RunInfo(command=shlex.join(["python", "-m", module, *args]),
                   machine=f"{platform.machine()}, {threads} CPU thread{plural}", threads=threads, device=name,
                   date=time.strftime("%Y-%m-%d"), started=time.perf_counter())


def changed_settings(settings: BBAMSettings) -> dict[str, Any]:
    """The fields of ``settings`` that differ from BBAM's defaults (what a row records of a recipe)."""
    default = BBAMSettings()
    return {f.name: getattr(settings, f.name) for f in fields(settings)
            if getattr(settings, f.name) != getattr(default, f.name)}


@dataclass
class PeakMemory:
    """What :func:`peak_memory` measured: ``mb``, MiB added at the peak (0 until the block ends)."""

    mb: float = 0.0


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA); nothing to wait for on CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@contextmanager
def peak_memory(device: torch.device) -> Iterator[PeakMemory]:
    """The peak memory the block adds, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` over the block minus the allocation at its start.
    CPU: the kernel's record of the process's peak resident size (``VmHWM``, reset at the start),
    minus the resident size (``VmRSS``) at a start where freed memory went back to the system; where
    the record cannot be reset, the resident size sampled every 5 ms.
    """
    result = PeakMemory()
    sync = synchronizer(device)
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        sync()
        result.mb = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    _release_freed_memory()  # otherwise memory freed by an earlier method hides this one's peak
    start = _status_bytes("VmRSS")
    if _reset_peak_rss():  # the kernel keeps the peak: exact
        yield result
        result.mb = max(0, _status_bytes("VmHWM") - start) / 2**20
        return
    peak, stop = [start], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _status_bytes("VmRSS"))
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.mb = max(0, max(peak[0], _status_bytes("VmRSS")) - start) / 2**20


def _release_freed_memory() -> None:
    """Gives memory that Python and glibc keep after frees back to the system, so that the
    process's resident size measures what is in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measure then includes retained memory
        pass


def _reset_peak_rss() -> bool:
    """Resets the kernel's record of the process's peak resident size (Linux); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (the kernel gives it in kB), in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


class Timed(Generic[P, R]):
    """``fn`` wrapped: every call's wall seconds are added up in ``seconds``, measured between two
    ``synchronize()`` calls so that queued GPU work counts where it was asked for."""

    def __init__(self, fn: Callable[P, R], synchronize: Callable[[], None] = lambda: None) -> None:
        self.fn, self.synchronize, self.seconds = fn, synchronize, 0.0

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        self.synchronize()
        start = time.perf_counter()
        result = self.fn(*args, **kwargs)
        self.synchronize()
        self.seconds += time.perf_counter() - start
        return result


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: the header, its rule and one line per row (cells as ``str`` gives them)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def write_markdown(path: Path, lines: Sequence[str]) -> str:
    """Writes ``lines`` to ``path``, one a line; returns the text."""
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text
