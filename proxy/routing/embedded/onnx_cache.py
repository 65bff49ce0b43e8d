"""The int8 ONNX encoder, built from the model's weights on first use and cached on disk.

The cache lives in $PLANO_HOME/models/all-MiniLM-L6-v2/onnx/, one file per key. The key hashes
the weights file cheaply (its size and its first and last MiB, not all of it) with config.json
and BUILDER_VERSION, so a new weights package or a change to the graph builds a new file.
Files are written to a temporary name and renamed into place, so processes building at once
each produce a whole file and the last rename wins; readers never see a partial one. When the
directory cannot be written the model is built in memory for this process only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from proxy.routing.embedded.weights import ModelFiles, home_model_dir

log = logging.getLogger("plano.routing")

# Bump whenever onnx_graph.py's output changes for the same weights.
BUILDER_VERSION = "int8-pertoken-smooth-3"
_CHUNK = 1 << 20
PREFIX = "encoder-"
SUFFIX = ".onnx"


@dataclass(frozen=True, slots=True)
class Built:
    """Where the model came from, for logs and tests."""

    model: bytes | Path  # a cached file, or the serialized model when it could not be cached
    built: bool  # False: an existing cache file was reused
    seconds: float  # build (or lookup) time


def cache_dir() -> Path:
    return home_model_dir() / "onnx"


def cache_key(files: ModelFiles) -> str:
    digest = hashlib.sha256(BUILDER_VERSION.encode())
    with files.weights.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(str(size).encode())
        digest.update(handle.read(_CHUNK))
        if size > _CHUNK:
            handle.seek(max(size - _CHUNK, _CHUNK))
            digest.update(handle.read(_CHUNK))
    digest.update(files.config.read_bytes())
    return digest.hexdigest()[:24]


def cached_model(
    files: ModelFiles,
    build: Callable[[], bytes],
    directory: Path | None = None,
) -> Built:
    """The cached model for these files, built with build() when it is missing.

    OSError from reading the model files propagates: those are the caller's to report.
    """
    started = time.perf_counter()
    directory = directory or cache_dir()
    path = directory / f"{PREFIX}{cache_key(files)}{SUFFIX}"
    if path.is_file():
        return Built(path, False, time.perf_counter() - started)
    data = build()
    try:
        _write_atomically(path, data)
    except OSError as exc:
        log.warning(
            "embedded router: cannot cache the int8 model in %s (%s); built in memory, "
            "this process only",
            directory,
            exc,
        )
        return Built(data, True, time.perf_counter() - started)
    _remove_stale(directory, keep=path)
    return Built(path, True, time.perf_counter() - started)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".building-", suffix=SUFFIX)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; other users may share the home
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove_stale(directory: Path, keep: Path) -> None:
    """Drops models of older weights or builders: each is ~60 MB. Best effort: another
    process may still be loading one (POSIX keeps it readable), or Windows may refuse."""
    for old in directory.glob(f"{PREFIX}*{SUFFIX}"):
        if old != keep:
            with contextlib.suppress(OSError):
                old.unlink()
