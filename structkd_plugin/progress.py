"""Progress of long work on stderr: a tqdm bar on a terminal, plain lines in a batch job's log.

On rank 0 of a distributed run, or the only process. Without a terminal (a batch job, `nohup`,
CI) tqdm would hide itself and the log would stay silent for an epoch; `ProgressLog` writes a
line every `PROGRESS_LOG_INTERVAL` seconds and one at the end instead.
"""

import sys
import time
from collections.abc import Iterable, Iterator

import torch.distributed as dist
from tqdm import tqdm

PROGRESS_LOG_INTERVAL = 60.0
"""Seconds between two progress lines when stderr is not a terminal."""

FINAL_LINE_AFTER = 5.0
"""Work that took at least this many seconds ends with a summary line (one line per epoch)."""


def progress(iterable: Iterable | None, description: str, total: int, unit: str = "batches") -> "tqdm | ProgressLog":
    """Iterates over `iterable` showing its progress (`total` items of `unit`), or, with
    `iterable` None, counts what `update(n)` reports; a context manager, with `update` and
    `set_postfix` as tqdm's."""
    if dist.is_initialized() and dist.get_rank() != 0:
        return tqdm(iterable, disable=True)
    if not sys.stderr.isatty():
        return ProgressLog(iterable, description, total, unit)
    return tqdm(iterable, desc=description, total=total, unit=unit[:-1] if unit.endswith("s") else unit, file=sys.stderr)


class ProgressLog:
    """What a tqdm bar shows, as plain lines on stderr: `description: done/total (rate, ETA)`
    and the latest postfix, every `interval` seconds and once at the end."""

    def __init__(self, iterable: Iterable, description: str, total: int, unit: str = "batches", interval: float = PROGRESS_LOG_INTERVAL) -> None:
        self.iterable, self.description, self.total, self.unit, self.interval = iterable, description, total, unit, interval
        self.postfix: dict[str, str] = {}
        self.done = 0
        self._started = self._last = time.monotonic()

    def __enter__(self) -> "ProgressLog":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.iterable is None and exc_info[0] is None:  # counted with `update`
            self._write_end()

    def _write_end(self) -> None:
        # Work of a few seconds (a small evaluation) gets no line: it would only clutter output.
        if time.monotonic() - self._started >= FINAL_LINE_AFTER:
            self.write()

    def __iter__(self) -> Iterator:
        self._started = self._last = time.monotonic()
        for item in self.iterable:
            yield item
            self.update(1)
        self._write_end()

    def update(self, count: int) -> None:
        """Counts `count` more items done (also for work not iterated through the bar, with
        `iterable` None), writing a line when `interval` has passed since the last."""
        self.done += count
        if time.monotonic() - self._last >= self.interval:
            self.write()
            self._last = time.monotonic()

    def set_postfix(self, values: dict[str, str], refresh: bool = False) -> None:
        self.postfix = values

    def write(self) -> None:
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(self.total - self.done) / rate:.0f}s" if rate > 0 and self.done < self.total else ""
        metrics = " ".join(f"{name}={value}" for name, value in self.postfix.items())
        line = f"{self.description}: {self.done}/{self.total} ({rate:.2f} {self.unit}/s, {elapsed:.0f}s{eta}) {metrics}"
        print(line.rstrip(), file=sys.stderr, flush=True)
