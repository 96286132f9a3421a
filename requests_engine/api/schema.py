"""What the server enforces, written into the OpenAPI schema, so a client (or a fuzzer) that keeps to the
schema is never refused and one that does not is: DRF refuses NUL characters in every text field, and
every filter given empty."""

from __future__ import annotations

from typing import Any

NO_NUL = "^[^\\u0000]*$"  # DRF's ProhibitNullCharactersValidator on every CharField


def server_rules(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    for component in result.get("components", {}).get("schemas", {}).values():
        for prop in component.get("properties", {}).values():
            _text_rule(prop)
            _text_rule(prop.get("items", {}))
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                schema = parameter.get("schema", {})
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = False
                    if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
                        schema.setdefault("minLength", 1)
                _text_rule(schema)
                _text_rule(schema.get("items", {}))
    return result


def _text_rule(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and not schema.get("format") and "enum" not in schema:
        schema.setdefault("pattern", NO_NUL)
