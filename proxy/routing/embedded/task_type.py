"""A kind of request the built-in library knows: a task type (library.py) or a domain
(library_domains.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TaskType:
    """A kind of request: how route descriptions name it, and prompts that ask for it."""

    name: str
    signatures: tuple[str, ...]  # phrases a route description about this type would use
    examples: tuple[str, ...]
