from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from proxy.config import LoadResult, Mode, check_text

REPO = Path(__file__).resolve().parents[1]

# Real servers (redis-server, postgres) started per test: fixtures in tests/servers.py.
pytest_plugins = ("servers",)

# Property-based tests: `ci` bounds the examples so the suite keeps its run time (.ci/run and
# the README use it); `thorough` searches much longer, for local runs before a release.
_PROFILE_DEFAULTS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=60, derandomize=True, **_PROFILE_DEFAULTS)
settings.register_profile("dev", max_examples=100, **_PROFILE_DEFAULTS)
settings.register_profile("thorough", max_examples=2000, **_PROFILE_DEFAULTS)
settings.load_profile("dev")


def shared_dir() -> Path:
    """../shared beside the checkout (absent in a user's clone); PLANO_SHARED_DIR overrides."""
    return Path(os.environ.get("PLANO_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the shared corpus only exists beside the dev checkout")
    return path


def check(
    yaml_text: str, env: dict | None = None, mode: Mode = Mode.VALIDATE, strict: bool = False
) -> LoadResult:
    return check_text(
        textwrap.dedent(yaml_text), file="c.yaml", env=env or {}, mode=mode, strict=strict
    )


def found(result: LoadResult, code: str) -> list[tuple[str, int | None, int | None]]:
    """(message, line, column) of each problem with this code."""
    return [(p.message, p.line, p.column) for p in result.problems if p.code == code]


@pytest.fixture(autouse=True, scope="session")
def _isolated_plano_home(tmp_path_factory):
    """Keep state.db, run files and logs of every test out of the real ~/.plano."""
    previous = os.environ.get("PLANO_HOME")
    os.environ["PLANO_HOME"] = str(tmp_path_factory.mktemp("plano_home"))
    yield
    if previous is None:
        os.environ.pop("PLANO_HOME", None)
    else:
        os.environ["PLANO_HOME"] = previous


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Local time is UTC for the test: screens and screenshots show fixed times."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
