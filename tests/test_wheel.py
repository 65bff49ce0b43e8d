"""The wheel carries the schema: install it in a fresh venv and validate there."""

from __future__ import annotations

import json
import subprocess
import sys
import venv

import pytest
from conftest import REPO


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_validates(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
    )
    wheel = next(dist.glob("plano-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", str(wheel)], check=True)

    outside = tmp_path / "elsewhere"  # nowhere near the checkout's schemas/
    outside.mkdir()
    checked = subprocess.run(
        [bin_dir / "plano", "validate", "--format", "json", str(REPO / "demos")],
        cwd=outside,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert all(f["valid"] for f in json.loads(checked.stdout)["files"])

    schema = subprocess.run(
        [bin_dir / "plano", "schema"], cwd=outside, capture_output=True, text=True, check=True
    )
    assert json.loads(schema.stdout)["title"] == "Plano configuration"
    located = subprocess.run(
        [
            bin_dir / "python",
            "-c",
            "from proxy.config.schema_check import schema_path; print(schema_path())",
        ],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in located.stdout
    assert "_schemas" in located.stdout
