"""Models -> CRDs and the API reference. `make crds` writes crds/*.yaml, docs/api.md and docs/profiles.md.

pydantic's JSON Schema is close to what the API server wants; the differences are made
structural here: references inlined, `Optional` unwrapped, `int | str` as int-or-string,
no titles, and only scalar defaults (an empty map default would show up in every GitOps diff).
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import yaml

from kafka_usecase_operator.api import GROUP, KINDS, VERSION
from kafka_usecase_operator.api.common import Kind
from kafka_usecase_operator.api.health import argocd_config_map, health_files
from kafka_usecase_operator.render.profiles import profiles_table

LABELS = {"app.kubernetes.io/name": "kafka-usecase-operator", "app.kubernetes.io/part-of": "kafka-usecase-operator"}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema node (recursively) into a Kubernetes structural schema."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = {k: v for k, v in schema.items() if k not in ("$defs", "title")}
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        types = {v.get("type") for v in variants}
        if types == {"integer", "string"}:
            node["x-kubernetes-int-or-string"] = True
        elif len(variants) == 1:
            node = {**variants[0], **node}
        else:
            raise ValueError(f"no structural form for anyOf {variants}")
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[1]])
        rules = target.get("x-kubernetes-validations", []) + node.pop("x-kubernetes-validations", [])
        node = {**target, **node} | ({"x-kubernetes-validations": rules} if rules else {})
        node.pop("title", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if type(node.get(bound)) in (int, float):  # JSON Schema's number; OpenAPI v3.0's is a flag
            node[inclusive], node[bound] = node[bound], True
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node.pop("maxLength", None)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node = {k: v for k, v in node.items() if k in ("description", "x-kubernetes-preserve-unknown-fields")}
        node["type"] = "object"
    if "properties" in node:
        node["properties"] = {name: structural(child, defs) for name, child in node["properties"].items()}
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]  # structural schemas prune unknown fields instead
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"], defs)
    if "items" in node:
        node["items"] = structural(node["items"], defs)
    if "default" in node and (node["default"] is None or isinstance(node["default"], (dict, list))):
        del node["default"]
    if "description" in node:
        node["description"] = _one_paragraph(node["description"])
    return node


def open_api_schema(kind: Kind) -> dict[str, Any]:
    spec = structural(kind.spec.model_json_schema(by_alias=True, mode="validation"))
    status = structural(kind.status.model_json_schema(by_alias=True, mode="serialization"))
    status.pop("required", None)
    schema = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if kind.object_rules:
        schema["x-kubernetes-validations"] = [rule.schema() for rule in kind.object_rules]
    return schema


def crd(kind: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}", "labels": dict(LABELS)},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind.kind, "listKind": f"{kind.kind}List", "plural": kind.plural,
                      "singular": kind.singular, "shortNames": list(kind.short_names), "categories": ["kafka"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [_column(c) for c in kind.printer_columns],
                "schema": {"openAPIV3Schema": open_api_schema(kind)},
            }],
        },
    }


def crd_files() -> dict[str, str]:
    """File name -> YAML text, for every kind."""
    header = "# Generated from operator/kafka_usecase_operator/api by `make crds`. Do not edit.\n"
    return {f"{GROUP}_{kind.plural}.yaml": header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)
            for kind in KINDS}


def api_reference() -> str:
    """docs/api.md: every field of every kind, from the same schemas the CRDs carry."""
    lines = ["# API reference: `kafka.usecase.dev/v1alpha1`", "",
             "Generated from the models in `operator/kafka_usecase_operator/api/` by `make crds`; a test fails "
             "when it drifts. Rules marked *CEL* are enforced by the API server at admission and again by the "
             "operator, so an invalid object gets `Ready=False` with reason `InvalidSpec`.", ""]
    for kind in KINDS:
        schema = open_api_schema(kind)
        lines += [f"## {kind.kind}", "", kind.description, "",
                  f"Short names: {', '.join(f'`{n}`' for n in kind.short_names)}; category `kafka`.", "",
                  "| field | type | default | description |", "|---|---|---|---|"]
        for part in ("spec", "status"):
            lines += _rows(part, schema["properties"][part], required=part == "spec")
        for rule in schema.get("x-kubernetes-validations", []):
            lines.append(f"| *CEL* (object) | | | {_cell(rule['message'])} |")
        lines.append("")
    return "\n".join(lines)


def _rows(path: str, node: dict[str, Any], required: bool) -> list[str]:
    rows = [f"| `{path}` | {_type(node)} | {_default(node)} | {_cell(_describe(node, required))} |"]
    for child_name, child in node.get("properties", {}).items():
        rows += _rows(f"{path}.{child_name}", child, child_name in node.get("required", []))
    if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"].get("properties"):
        rows += _rows(f"{path}.<key>", node["additionalProperties"], False)
    if node.get("items", {}).get("properties"):
        rows += _rows(f"{path}[]", node["items"], False)
    return rows


def _describe(node: dict[str, Any], required: bool) -> str:
    parts = [node.get("description", "")]
    if required:
        parts.append("Required.")
    if "enum" in node:
        parts.append("One of: " + ", ".join(f"`{v}`" for v in node["enum"]) + ".")
    if node.get("items", {}).get("enum"):
        parts.append("Each one of: " + ", ".join(f"`{v}`" for v in node["items"]["enum"]) + ".")
    minimum = "more than" if node.get("exclusiveMinimum") else "min"
    bounds = [f"{label} {node[key]}" for key, label in (("minimum", minimum), ("maximum", "max"),
                                                          ("minLength", "min length"), ("maxLength", "max length"),
                                                          ("minItems", "min items"), ("maxItems", "max items"),
                                                          ("maxProperties", "max entries")) if key in node]
    if "pattern" in node:
        bounds.append(f"pattern `{node['pattern']}`")
    if bounds:
        parts.append("(" + ", ".join(bounds) + ")")
    parts += [f"*CEL*: {rule['message']}." for rule in node.get("x-kubernetes-validations", [])]
    return " ".join(p for p in parts if p)


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    if node.get("type") == "array":
        return f"[]{_type(node.get('items', {}))}"
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return node.get("type", "object")


def _default(node: dict[str, Any]) -> str:
    return f"`{node['default']}`" if "default" in node else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _one_paragraph(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _column(column) -> dict[str, Any]:
    entry = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.priority:
        entry["priority"] = column.priority
    if column.description:
        entry["description"] = column.description
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the CRDs, the API reference and the Argo CD health "
                                                 "checks from the models.")
    parser.add_argument("--crds", type=Path, action="append", help="a folder for the CRDs (repeatable)")
    parser.add_argument("--docs", type=Path, default=Path("docs/api.md"))
    parser.add_argument("--profiles", type=Path, default=Path("docs/profiles.md"))
    parser.add_argument("--health", type=Path, help="a folder for the Argo CD health checks")
    args = parser.parse_args()
    for folder in args.crds or [Path("crds")]:
        write_files(folder, crd_files())
    if args.health:
        write_files(args.health, health_files() | {"argocd-cm.yaml": argocd_config_map()})
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(api_reference())
    args.profiles.write_text(profiles_table())


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


if __name__ == "__main__":
    main()
