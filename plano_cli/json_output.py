"""JSON for scripts: one plain document on stdout, never wrapped or colored by rich."""

from __future__ import annotations

import json
import sys


def print_json_line(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()
