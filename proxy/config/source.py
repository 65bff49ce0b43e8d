"""Read a YAML config into plain data while remembering where every node came from.

PyYAML's composer gives nodes with marks; we build the Python values ourselves from
those nodes so that each key and value keeps its line and column, duplicate keys are
caught (PyYAML silently keeps the last one), and `$VAR` references are expanded per
scalar, which keeps every position exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from proxy.config.env import EnvExpander, EnvReference, is_reference_only
from proxy.config.problems import Path, Problem, Severity
from proxy.config.redact import is_secret_path

try:  # libyaml is much faster; fall back to the pure-Python loader when absent.
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


@dataclass(slots=True)
class SourceMap:
    """Positions of the nodes of one YAML document, by path."""

    file: str | None = None
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    # (start, end) of every credential scalar, so excerpts can mask exactly those spans.
    secret_spans: list[tuple[Position, Position]] = field(default_factory=list)

    def value_at(self, path: Path) -> Position:
        """The value's own position, or that of its nearest ancestor we know."""
        for end in range(len(path), -1, -1):
            pos = self.values.get(path[:end])
            if pos is not None:
                return pos
        return Position(1, 1)

    def key_at(self, path: Path) -> Position:
        """Where the key naming this node stands (the value's position for list items)."""
        return self.keys.get(path) or self.value_at(path)


@dataclass(slots=True)
class ParsedSource:
    data: object
    source_map: SourceMap
    env_refs: list[EnvReference]
    problems: list[Problem]


def parse_yaml(text: str, file: str | None, env: Mapping[str, str]) -> ParsedSource:
    """Parse one YAML document, expanding `$VAR` in values from `env`."""
    source_map = SourceMap(file=file)
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.append(
            Problem(
                Severity.ERROR,
                "yaml-syntax",
                f"YAML syntax error: {exc.problem or exc.context}",
                hint=_syntax_hint(exc, text),
                file=file,
                line=(mark.line + 1) if mark else None,
                column=(mark.column + 1) if mark else None,
            )
        )
        return ParsedSource(None, source_map, [], problems)
    except yaml.YAMLError as exc:
        problems.append(Problem(Severity.ERROR, "yaml-syntax", f"YAML error: {exc}", file=file))
        return ParsedSource(None, source_map, [], problems)
    finally:
        loader.dispose()

    if root is None:
        return ParsedSource(None, source_map, [], problems)
    builder = _Builder(loader, source_map, EnvExpander(env), problems)
    data = builder.build(root, ())
    if any(p.code == "yaml-too-large" for p in problems):
        data = None
    return ParsedSource(data, source_map, builder.expander.references, problems)


def _syntax_hint(exc: yaml.MarkedYAMLError, text: str) -> str | None:
    problem = (exc.problem or "").lower()
    mark = exc.problem_mark
    lines = text.splitlines()
    bad_line = lines[mark.line] if mark and mark.line < len(lines) else ""
    if "tab" in problem or "\t" in bad_line[: mark.column + 1 if mark else 0]:
        return "YAML indentation must use spaces, not tabs."
    if "mapping values are not allowed" in problem:
        return "A value containing ': ' must be quoted, or a key is indented wrongly."
    if "could not find expected ':'" in problem:
        return "Check the indentation of this line and the one before it."
    return None


# Guards against hostile or broken files: an alias "billion laughs" expands exponentially,
# and Python recursion ends near 1,000 levels. Real configs stay far below both.
MAX_NODES = 200_000
MAX_DEPTH = 64


class _TooLarge(Exception):
    pass


class _Builder:
    def __init__(self, loader, source_map: SourceMap, expander: EnvExpander, problems):
        self.loader = loader
        self.map = source_map
        self.expander = expander
        self.problems = problems
        self._active: set[int] = set()
        self._built = 0

    def build(self, node: yaml.Node, path: Path) -> object:
        try:
            return self._build(node, path)
        except _TooLarge as exc:
            self._error(
                node,
                (),
                "yaml-too-large",
                str(exc),
                hint="check for aliases that expand each other, or deep nesting.",
            )
            return None

    def _build(self, node: yaml.Node, path: Path) -> object:
        self._built += 1
        if self._built > MAX_NODES:
            raise _TooLarge(f"the document expands to more than {MAX_NODES:,} nodes")
        if len(path) > MAX_DEPTH:
            raise _TooLarge(f"the document nests deeper than {MAX_DEPTH} levels")
        self.map.values.setdefault(path, _start(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:  # an alias that contains itself
            self._error(node, path, "yaml-recursive", "recursive YAML alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        # Keys written here may override keys merged in with `<<: *anchor`; only keys
        # written twice in this very mapping are duplicates.
        written = {id(k) for k, _ in node.value if k.tag != _MERGE_TAG}
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self._error(
                node,
                path,
                "yaml-merge",
                f"cannot merge: {_reason(exc)}",
                hint="`<<:` takes an alias of a mapping, or a list of them.",
            )
            return {}
        out: dict = {}
        first_seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if id(key_node) in written:
                if key in first_seen:
                    self._error(
                        key_node,
                        child,
                        "duplicate-key",
                        f"duplicate key '{key}' (first defined at line {first_seen[key]})",
                        hint="YAML keeps only the last value; remove or rename one of them.",
                    )
                first_seen.setdefault(key, line)
            if id(key_node) in written or child not in self.map.keys:
                self.map.keys[child] = _start(key_node)
            out[key] = self._build(value_node, child)
        return out

    def _key(self, node: yaml.Node, path: Path) -> object:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.loader.construct_object(node)
            except Exception:  # see _scalar
                self._error(node, path, "yaml-value", f"cannot read key {node.value!r}")
                return node.value
            return (
                value
                if isinstance(value, str | int | float | bool) or value is None
                else str(value)
            )
        self._error(node, path, "yaml-key", "a key must be a plain value, not a list or mapping")
        return f"<{type(node).__name__} at line {node.start_mark.line + 1}>"

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> object:
        secret = is_secret_path(path)
        if secret and not is_reference_only(node.value):
            self.map.secret_spans.append((_start(node), _end(node)))
        if "$" in node.value and node.tag == _STR_TAG:
            expanded = self.expander.expand(node.value, path)
            if expanded != node.value:
                tag = _STR_TAG
                if node.style in (None, "") and not secret:  # libyaml says "", PyYAML None
                    # Unquoted `port: $PORT` becomes a number, as if typed in; never a
                    # bool or null, which would surprise (NAME=off, KEY=null).
                    resolved = self.loader.resolve(yaml.ScalarNode, expanded, (True, False))
                    if resolved in (_INT_TAG, _FLOAT_TAG):
                        tag = resolved
                node = yaml.ScalarNode(tag, expanded, node.start_mark, node.end_mark, node.style)
        try:
            return self.loader.construct_object(node)
        except Exception as exc:  # tagged values (!!bool maybe) raise KeyError, TypeError...
            self._error(
                node,
                path,
                "yaml-value",
                f"cannot read value as {_tag_name(node.tag)}: {_reason(exc)}",
            )
            return node.value

    def _error(self, node, path, code, message, hint=None):
        self.problems.append(
            Problem(
                Severity.ERROR,
                code,
                message,
                path=path,
                hint=hint,
                file=self.map.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        )


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def _start(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _end(node: yaml.Node) -> Position:
    return Position(node.end_mark.line + 1, node.end_mark.column + 1)


def _tag_name(tag: str) -> str:
    return tag.rsplit(":", 1)[-1]


def _reason(exc: Exception) -> str:
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]
