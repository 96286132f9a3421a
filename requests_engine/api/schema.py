"""What the server enforces, written into the OpenAPI schema, so a client (or a fuzzer) that keeps to the
schema is never refused and one that does not is: DRF refuses NUL characters in every text field, strips
spaces before it checks that a required text is not blank, and every filter given empty is refused.

It also links each answer to the calls it makes possible (OpenAPI links): a listed or read request's
reference to its reading and its actions, an action's answer to the identity documents it lists."""

from __future__ import annotations

from typing import Any

NO_NUL = "^[^\\u0000]*$"  # DRF's ProhibitNullCharactersValidator on every CharField
# A text that may not be blank: DRF strips surrounding whitespace first, so one other character is needed.
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"

READ = "requests_read"
ACTIONS = (
    "requests_acknowledge",
    "requests_request_information",
    "requests_extend",
    "requests_fulfil",
    "requests_no_data_held",
    "requests_partially_fulfil",
    "requests_refuse",
)
DOCUMENT = "requests_identity_document"


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
    _links(result)
    return result


def _text_rule(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and not schema.get("format") and "enum" not in schema:
        schema.setdefault("pattern", NOT_BLANK if schema.get("minLength", 0) >= 1 else NO_NUL)


def _links(result: dict[str, Any]) -> None:
    operations = {
        operation["operationId"]: operation
        for path in result.get("paths", {}).values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    if "requests_list" not in operations or READ not in operations:
        return
    listed = {"reference": "$response.body#/results/0/reference"}
    one = {"reference": "$response.body#/reference"}
    _link(operations["requests_list"], READ, listed)
    for action in ACTIONS:
        if action in operations:
            _link(operations["requests_list"], action, listed)
            _link(operations[READ], action, one)
            _link(operations[action], READ, one)
    if DOCUMENT in operations:
        document = {**one, "document_id": "$response.body#/identity_documents/0/id"}
        for source in (READ, *ACTIONS):
            if source in operations:
                _link(operations[source], DOCUMENT, document)


def _link(source: dict[str, Any], target: str, parameters: dict[str, str]) -> None:
    ok = source.get("responses", {}).get("200")
    if ok is not None:
        ok.setdefault("links", {})[target] = {"operationId": target, "parameters": parameters}
