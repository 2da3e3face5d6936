"""How structkd writes files without losing any: output files that are never one of the command's
inputs and appear whole or not at all, permissions from the user's umask, and the lock that keeps
two runs out of one serialization directory.

- `check_not_an_input(output, inputs, option)`: refuses an output path that names an input file.
- `atomic_text_output(path)`, `write_atomically(path, write)`, `write_json(path, content)`: files
  written under a temporary name beside `path` and renamed into place once complete; a failure
  leaves `path` as it was.
- `with_umask_permissions(path)`: gives a file made by `tempfile` (mode 600) the permissions an
  ordinary `open` would have given it.
- `RunLock(directory)`: a `.lock` file holding the pid of the run that owns the directory; a lock
  whose process is gone is stale and is removed (with a warning), as are the temporary files the
  dead run left.
"""

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "OutputError",
    "RunLock",
    "atomic_text_output",
    "check_not_an_input",
    "with_umask_permissions",
    "write_atomically",
    "write_json",
]

logger = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
"""The suffix of every temporary file or directory structkd writes before renaming it into place."""


class OutputError(ValueError):
    """An output that cannot be written without losing data: it names an input, its directory is
    missing, or another live run holds it."""


def check_not_an_input(output: str | PathLike, inputs: Iterable[str | PathLike], option: str) -> None:
    """Raises `OutputError` when `output` is (a link to) one of `inputs`."""
    output = Path(output)
    for path in inputs:
        path = Path(path)
        if output.resolve() == path.resolve() or (output.exists() and path.exists() and output.samefile(path)):
            raise OutputError(f"{option} {output} is the input file {path}: refusing to write over an input")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def with_umask_permissions(path: str | PathLike) -> None:
    """Sets the permissions of `path` to what `open` (for a file) or `mkdir` (for a directory)
    would have given it under the current umask."""
    path = Path(path)
    full = 0o777 if path.is_dir() else 0o666
    path.chmod(full & ~_umask())


@contextmanager
def atomic_text_output(path: str | PathLike) -> Iterator[TextIO]:
    """A UTF-8 text file to write `path` through: it is a temporary file in the same directory,
    renamed to `path` when the block ends without error and removed when it fails."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as output:
            yield output
        with_umask_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: str | PathLike, write: Callable[[Path], None]) -> None:
    """Calls `write(temporary_path)` and then renames the temporary file to `path`, so that `path`
    is either its old self or complete, never half-written. The temporary file lives in the same
    directory (a rename is atomic only within one file system) and is removed if `write` fails."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        write(Path(temporary))
        with_umask_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: str | PathLike, content: Any) -> None:
    """Writes `content` as indented JSON to `path`, atomically."""
    text = json.dumps(content, indent=2) + "\n"
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))



def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


class RunLock:
    """The lock of a serialization directory: `DIR/.lock`, created exclusively, holding the pid.

    `acquire()` raises `OutputError` while a live process holds the lock. A lock whose process is
    gone (a killed run) is removed with a warning, together with the temporary files and
    directories (`*.tmp`) that run left behind.
    """

    NAME = ".lock"

    def __init__(self, directory: str | PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.NAME

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._remove_if_stale()
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(f"{os.getpid()}\n")
            return

    def _remove_if_stale(self) -> None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:  # released meanwhile
            return
        pid = int(text) if text.isdigit() else None
        if pid is not None and _process_alive(pid):
            raise OutputError(
                f"{self.directory} is in use by a live run (pid {pid}, lock file {self.path}); wait for it to "
                "finish or stop it first"
            )
        self.path.unlink(missing_ok=True)
        leftovers = sorted(self.directory.rglob(f"*{TEMPORARY_SUFFIX}"))
        for leftover in leftovers:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
        logger.warning(
            "removed the stale lock of a run that is no longer alive (pid %s) from %s%s",
            pid if pid is not None else "unknown",
            self.directory,
            f", and the {len(leftovers)} temporary file(s) it left" if leftovers else "",
        )

    def release(self) -> None:
        try:
            if self.path.read_text().strip() == str(os.getpid()):
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

