"""Validate JSON bodies against Microsoft's 2025-08-01 Site Recovery OpenAPI (swagger 2.0) document.

Uses jsonschema (Draft 4, which swagger 2.0 schemas follow) with a ``referencing`` registry that resolves
the external ARM common-types ``$ref``s to the copy in ``spec/common-types``. Swagger's polymorphism
(``discriminator: instanceType`` on a base, ``x-ms-discriminator-value`` on subtypes that ``allOf`` the base)
is handled by a ``discriminator`` keyword that validates the instance against the matching subtype, and
fails on an unknown ``instanceType``. A strict mode also rejects properties the definition doesn't declare
(swagger leaves ``additionalProperties`` open, which would hide typos).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from urllib.parse import urljoin

import jsonschema
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_DIR = Path(__file__).parent / "spec"
# service.json lives six folders below specification/ upstream: this URI keeps its relative refs valid.
SERVICE_URI = "https://specs.local/rs/rm/ns/sr/stable/2025-08-01/service.json"
COMMON_URI = "https://specs.local/common-types/resource-management/v5/types.json"
# The compute excerpt (see spec/SOURCE.md) sits six folders below specification/ upstream too; its
# common-types v3 refs resolve to the v5 copy here (TrackedResource and ErrorResponse have the same shape).
COMPUTE_URI = "https://specs.local/compute/rm/ms/c/stable/2026-04-01/ComputeRP.json"
COMMON_V3_URI = "https://specs.local/common-types/resource-management/v3/types.json"


class SpecValidator:
    def __init__(self, spec_dir: Path = SPEC_DIR, document: str = "service.json", uri: str = SERVICE_URI):
        self.doc = json.loads((spec_dir / document).read_text())
        self.common = json.loads((spec_dir / "common-types/resource-management/v5/types.json").read_text())
        self.defs: dict = self.doc["definitions"]
        self.uri = uri
        self.registry = Registry().with_resources(
            [
                (uri, Resource(contents=self.doc, specification=DRAFT4)),
                (COMMON_URI, Resource(contents=self.common, specification=DRAFT4)),
                (COMMON_V3_URI, Resource(contents=self.common, specification=DRAFT4)),
            ]
        )
        # base definition name -> {discriminator value -> subtype name}
        self.subtypes: dict[str, dict[str, str]] = {}
        for name, d in self.defs.items():
            value = d.get("x-ms-discriminator-value")
            for part in d.get("allOf", []):
                ref = part.get("$ref", "")
                if ref.startswith("#/definitions/") and value:
                    self.subtypes.setdefault(ref.split("/")[-1], {})[value] = name
        self._base_by_id = {id(d): n for n, d in self.defs.items() if "discriminator" in d}
        self._active: set[int] = set()
        self._cache: dict[tuple[str, str], tuple[dict, str]] = {}
        self.validator_cls = jsonschema.validators.extend(
            Draft4Validator, {"discriminator": self._discriminator}
        )

    # -- polymorphism ----------------------------------------------------------------------------------------
    def _discriminator(self, validator, field, instance, schema):
        if not isinstance(instance, dict) or id(instance) in self._active:
            return
        base = self._base_by_id.get(id(schema))
        if base is None:
            return
        value = instance.get(field)
        sub = self.subtypes.get(base, {}).get(value)
        if sub is None:
            if self.defs[base].get("x-ms-discriminator-value") == value:
                return
            known = sorted(self.subtypes.get(base, {}))
            yield ValidationError(f"{field} {value!r} is not a known subtype of {base} (known: {known})")
            return
        self._active.add(id(instance))
        try:
            yield from validator.descend(instance, {"$ref": f"{self.uri}#/definitions/{sub}"})
        finally:
            self._active.discard(id(instance))

    # -- public ----------------------------------------------------------------------------------------------
    def errors(self, definition: str, body, *, strict: bool = True) -> list[str]:
        """Every problem of ``body`` against ``#/definitions/{definition}`` (or ``common:Name``)."""
        if definition.startswith("common:"):
            ref = f"{COMMON_URI}#/definitions/{definition[7:]}"
        else:
            if definition not in self.defs:
                raise KeyError(f"no definition {definition!r} in service.json")
            ref = f"{self.uri}#/definitions/{definition}"
        v = self.validator_cls({"$ref": ref}, registry=self.registry, format_checker=FormatChecker())
        out = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(body)]
        if strict:
            out += self.unknown_properties(ref, body)
        return out

    def validate(self, definition: str, body, *, strict: bool = True) -> None:
        problems = self.errors(definition, body, strict=strict)
        assert not problems, f"{definition}: " + "; ".join(problems[:20])

    # -- strict: undeclared properties -----------------------------------------------------------------------
    def _resolve(self, ref: str, base: str) -> tuple[dict, str]:
        key = (ref, base)
        if key not in self._cache:
            self._cache[key] = self._lookup(ref, base)
        return self._cache[key]

    def _lookup(self, ref: str, base: str) -> tuple[dict, str]:
        resolved = self.registry.resolver(base_uri=base).lookup(ref)
        uri = urljoin(base, ref.split("#", 1)[0]) if not ref.startswith("#") else base
        return resolved.contents, uri

    def _merged(self, schema: dict, base: str, instance, seen: frozenset = frozenset()):
        """(properties, additionalProperties, base uri) of ``schema`` with refs, allOf and subtypes merged."""
        if "$ref" in schema:
            target, uri = self._resolve(schema["$ref"], base)
            return self._merged(target, uri, instance, seen)
        seen = seen | {id(schema)}
        props: dict = {}
        extra = schema.get("additionalProperties")
        for part in schema.get("allOf", []):
            p, e, _ = self._merged(part, base, instance, seen)
            props.update(p)
            extra = extra or e
        props.update({k: (v, base) for k, v in schema.get("properties", {}).items()})
        if "discriminator" in schema and isinstance(instance, dict) and base == self.uri:
            name = self._base_by_id.get(id(schema))
            sub = self.subtypes.get(name or "", {}).get(instance.get(schema["discriminator"]))
            if sub and id(self.defs[sub]) not in seen:
                p, e, _ = self._merged(self.defs[sub], self.uri, instance, seen)
                props.update(p)
        return props, extra, base

    def unknown_properties(self, ref: str, body, path: str = "") -> list[str]:
        return self._walk({"$ref": ref}, self.uri, body, path)

    def _walk(self, schema: dict, base: str, inst, path: str) -> list[str]:
        out: list[str] = []
        if isinstance(inst, dict):
            props, extra, base2 = self._merged(schema, base, inst)
            for k, v in inst.items():
                if k in props:
                    sub, u = props[k]
                    out += self._walk(sub, u, v, f"{path}/{k}")
                elif extra is None or extra is False:
                    if not props and schema.get("type") == "object" and "properties" not in schema:
                        continue  # a free-form object
                    out.append(f"{path or '(root)'}: property {k!r} is not declared by the spec")
                elif isinstance(extra, dict):
                    out += self._walk(extra, base2, v, f"{path}/{k}")
        elif isinstance(inst, list):
            if "$ref" in schema:
                schema, base = self._resolve(schema["$ref"], base)
            items = schema.get("items")
            if isinstance(items, dict):
                for i, v in enumerate(inst):
                    out += self._walk(items, base, v, f"{path}/{i}")
        return out

    # -- operation lookups -----------------------------------------------------------------------------------
    @cached_property
    def operations(self) -> dict[str, dict]:
        ops = {}
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and "operationId" in op:
                    ops[op["operationId"]] = {"path": path, "method": method.upper(), **op}
        return ops

    def response_definition(self, operation_id: str, status: int = 200) -> str:
        op = self.operations[operation_id]
        resp = op["responses"].get(str(status)) or op["responses"]["default"]
        ref = resp["schema"]["$ref"]
        return ref.split("/")[-1] if ref.startswith("#/") else "common:" + ref.split("/")[-1]

    def request_definition(self, operation_id: str) -> str | None:
        for p in self.operations[operation_id].get("parameters", []):
            if p.get("in") == "body":
                return p["schema"]["$ref"].split("/")[-1]
        return None


def compute_validator() -> SpecValidator:
    """The compute API's ``VirtualMachine`` (2026-04-01 excerpt) for the instance view served."""
    return SpecValidator(document="compute/virtualMachine-excerpt.json", uri=COMPUTE_URI)
