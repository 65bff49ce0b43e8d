"""Cold start of the `plano` CLI: `--help`, and `validate` on one file.

Usage: python bench/cli_startup.py [--runs 40] [--plano PATH]

Uses hyperfine when it is installed (apt-get install hyperfine), else a subprocess loop.
Run it against a non-editable install in a venv (`pip install .`): an editable install
or a pyenv shim adds start-up time that users of a wheel do not pay.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--plano", default=shutil.which("plano") or "plano")
    args = parser.parse_args()
    python = str(Path(args.plano).with_name("python"))
    config = str(REPO / "demos" / "llm_gateway" / "config.yaml")
    commands = {
        "python -c pass (interpreter floor)": [python, "-c", "pass"],
        "import typer, jsonschema, yaml (library floor)": [
            python,
            "-c",
            "import typer, jsonschema, yaml",
        ],
        "plano --help": [args.plano, "--help"],
        "plano validate (one file)": [args.plano, "validate", config],
    }
    for label, cmd in commands.items():
        mean, stdev, low, median = measure(cmd, args.runs)
        print(
            f"{label:48s} median {median:6.1f} ms  mean {mean:6.1f} ± {stdev:5.1f}  min {low:6.1f}"
        )


def measure(cmd: list[str], runs: int) -> tuple[float, float, float, float]:
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [
                    "hyperfine",
                    "-N",
                    "-w",
                    "5",
                    "-r",
                    str(runs),
                    "--export-json",
                    out.name,
                    subprocess.list2cmdline(cmd),
                ],
                check=True,
                capture_output=True,
            )
            times = json.loads(Path(out.name).read_text())["results"][0]["times"]
    else:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True)
            times.append(time.perf_counter() - start)
    ms = [t * 1000 for t in times]
    return statistics.mean(ms), statistics.stdev(ms), min(ms), statistics.median(ms)


if __name__ == "__main__":
    sys.exit(main())
