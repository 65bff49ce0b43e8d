"""Render the config reference (docs/config.md) from the JSON Schema's descriptions."""

from __future__ import annotations

from collections.abc import Iterator

from proxy.config.schema_check import load_schema
from proxy.config.served import TABLE, Status

HEADER = """# Config reference

<!-- Generated from schemas/plano_config.schema.json by `plano schema --format markdown`.
     Edit the schema's descriptions, then regenerate; a test keeps the two in step. -->

A Plano config is one YAML file. `$VAR`, `${VAR}` and `${VAR:-default}` in values expand
from the environment, then from a `.env` file beside the config; `$$` is a literal `$`.
Check a file with `plano validate FILE`; print this schema with `plano schema`.

"""


def render_reference() -> str:
    schema = load_schema()
    required = set(schema.get("required", ()))
    out = [HEADER]
    for key, prop in schema["properties"].items():
        flag = " (required)" if key in required else ""
        description = _text(prop.get("description", "")) + _served(f"/{key}")
        out.append(f"## `{key}`{flag}\n\n{description}\n\n")
        out.append(f"Type: {_type(prop, schema)}.{_enum(prop)}\n\n")
        rows = list(_rows(prop, key, schema, f"/{key}"))
        if rows:
            out.append("| Field | Type | Required | Description |\n|---|---|---|---|\n")
            out.extend(
                f"| `{path}` | {kind} | {'yes' if req else ''} | {desc} |\n"
                for path, kind, req, desc in rows
            )
            out.append("\n")
    return "".join(out).rstrip() + "\n"


def _rows(node: dict, path: str, root: dict, pointer: str) -> Iterator[tuple[str, str, bool, str]]:
    """(path, type, required, description) of each field below `node`; `pointer` is its
    key path in proxy.config.served's table, which says what `plano up` does not serve."""
    node = _deref(node, root)
    if "if" in node and "then" in node and "else" in node:  # listeners: list or legacy object
        yield from _rows(node["then"], path, root, pointer)
        yield from _rows(node["else"], path, root, pointer)
        return
    items = node.get("items")
    if isinstance(items, dict) and _deref(items, root).get("type") == "object":
        yield from _rows(items, f"{path}[]", root, f"{pointer}/*")
        return
    properties = node.get("properties", {})
    required = set(node.get("required", ()))
    for key, child in properties.items():
        resolved = _deref(child, root)
        description = child.get("description") or resolved.get("description", "")
        child_path, child_pointer = f"{path}.{key}", f"{pointer}/{key}"
        yield (
            child_path,
            _type(child, root),
            key in required,
            _text(description) + _enum(resolved) + _served(child_pointer),
        )
        yield from _rows(child, child_path, root, child_pointer)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and _deref(extra, root).get("type") == "object":
        yield from _rows(extra, f"{path}.<name>", root, f"{pointer}/*")


def _served(pointer: str) -> str:
    entry = TABLE.get(pointer)
    if entry is None or entry.status is not Status.NOT_SERVED:
        return ""
    which = "" if entry.reason is None else f" for {entry.note}"
    return f" **Not served yet**{which}: `plano up` refuses it (see docs/up.md)."


def _deref(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _type(node: dict, root: dict) -> str:
    node = _deref(node, root)
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds and isinstance(node.get("items"), dict):
        inner = _deref(node["items"], root).get("type", "any")
        kinds = [f"list of {inner}" if k == "array" else k for k in kinds]
    if "object" in kinds and isinstance(node.get("additionalProperties"), dict):
        kinds = ["map" if k == "object" else k for k in kinds]
    return " or ".join(kinds)


def _enum(node: dict) -> str:
    values = node.get("enum")
    return f" One of: {', '.join(f'`{v}`' for v in values)}." if values else ""


def _text(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
