#!/usr/bin/env python3
"""Checks the fleet repository schema with an independent JSON Schema validator.

The template's files must validate against `flotilla schema`, the schema committed in the
template must be the one the binary prints, and files with mistakes must be rejected,
so the schema is neither stale nor vacuous.
"""
import glob
import json
import subprocess
import sys

import jsonschema
import yaml

binary, template = sys.argv[1], sys.argv[2]
schema = json.loads(subprocess.run([binary, "schema"], check=True, capture_output=True, text=True).stdout)
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

failures = []
with open(f"{template}/.flotilla/schema.json") as committed:
    if json.load(committed) != schema:
        failures.append(f"{template}/.flotilla/schema.json differs from `flotilla schema`; regenerate it")

files = [f"{template}/fleet.yaml"] + sorted(glob.glob(f"{template}/*/*.yaml"))
checked = 0
for path in files:
    with open(path) as handle:
        for document in yaml.safe_load_all(handle):
            checked += 1
            for error in validator.iter_errors(document):
                failures.append(f"{path}: {error.json_path}: {error.message}")

broken = [
    {"kind": "Group", "name": "canary", "selectr": "ring=canary"},
    {"kind": "App", "name": "a", "flow": "f", "targets": [{"group": "g"}]},
    {"kind": "Fleet", "project": "p", "defaults": {"rollout": {"batchSize": "ten"}}},
    {"kind": "UpdateFlow", "name": "f", "steps": [{"name": "s", "run": "true", "script": "true"}]},
    {"kind": "Gadget"},
]
for document in broken:
    if validator.is_valid(document):
        failures.append(f"schema accepts a broken document: {document}")

for failure in failures:
    print(failure, file=sys.stderr)
print(f"schema: {checked} template documents valid, {len(broken)} broken ones rejected" if not failures else "schema: FAILED")
sys.exit(1 if failures else 0)
