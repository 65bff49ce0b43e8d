"""The docs and the schema stay in step with the code."""

from __future__ import annotations

from conftest import REPO
from jsonschema import Draft7Validator

from proxy.config.reference import render_reference
from proxy.config.schema_check import load_schema
from proxy.providers.catalog import INTERFACES


def test_schema_is_valid_draft7():
    Draft7Validator.check_schema(load_schema())


def test_every_schema_field_is_described():
    undocumented = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, child in node.get("properties", {}).items():
                if "description" not in child:
                    undocumented.append(f"{where}.{key}")
            for key, child in node.items():
                if key not in ("if", "then"):  # conditions restate fields described above
                    walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{where}[{i}]")

    walk(load_schema(), "")
    assert undocumented == []


def test_config_reference_is_generated_from_the_schema():
    on_disk = (REPO / "docs" / "config.md").read_text()
    assert on_disk == render_reference(), "run: plano schema --format markdown > docs/config.md"


def test_provider_interfaces_match_the_catalog():
    schema = load_schema()
    enum = schema["definitions"]["model_provider"]["properties"]["provider_interface"]["enum"]
    assert set(enum) == set(INTERFACES)
