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

# Every rule both can state, both ways: each case edits one template file, and `flotilla validate`
# and the schema must agree on whether the result is valid. (What JSON Schema cannot state —
# references between files, such as an app's parameter typed by its flow — is not here.)
import os
import shutil
import tempfile

cases = [
    # (file, text replaced, replacement, valid?)
    ("fleet.yaml", "batchSize: 20%", 'batchSize: "5"', True),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 5", True),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 0", False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 0%", False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 150%", False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 100%", True),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 12.5%", True),
    ("fleet.yaml", "batchSize: 20%", "batchSize: ten", False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: -3", False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: +5", True),
    ("fleet.yaml", "batchSize: 20%", 'batchSize: "+5"', True),
    ("fleet.yaml", "batchSize: 20%", 'batchSize: " 5 %"', False),
    ("fleet.yaml", "batchSize: 20%", "batchSize: 1e1%", False),
    ("fleet.yaml", "maxFailures: 5%", "maxFailures: 0%", True),
    ("fleet.yaml", "maxFailures: 5%", 'maxFailures: "0"', True),
    ("fleet.yaml", "maxFailures: 5%", "maxFailures: 0", True),
    ("fleet.yaml", "maxFailures: 5%", "maxFailures: 100.5%", False),
    ("flows/script-app.yaml", "timeout: 30s", "timeout: 0s", False),
    ("flows/script-app.yaml", "timeout: 30s", "timeout: 0m0s", False),
    ("flows/script-app.yaml", "timeout: 30s", "timeout: 1m30s", True),
    ("flows/compose-app.yaml", "type: int\n    default: 10", "type: int\n    default: ten", False),
    ("flows/compose-app.yaml", "type: int\n    default: 10", 'type: int\n    default: "12"', True),
    ("flows/compose-app.yaml", "type: int\n    default: 10", "type: bool\n    default: true", True),
    ("flows/compose-app.yaml", "type: int\n    default: 10", "type: bool\n    default: maybe", False),
    ("apps/thermostat.yaml", "version: 2.5.0", 'version: ""', False),
    ("apps/thermostat.yaml", "version: 2.5.0", "version: 2.6", True),
    ("groups/europe.yaml", "selector: site in (berlin,paris,madrid),hw in (rpi3,rpi4),ring!=canary,!decommissioned", "", False),
    ("groups/europe.yaml", "selector: site in (berlin,paris,madrid),hw in (rpi3,rpi4),ring!=canary,!decommissioned", 'selector: ""', False),
    ("groups/europe.yaml", "selector: site in (berlin,paris,madrid),hw in (rpi3,rpi4),ring!=canary,!decommissioned", "devices: [thermo-lab-01]", True),
    ("devices/lab.yaml", "tags: {site: berlin, hw: rpi4}", 'tags: {site: "ber lin", hw: rpi4}', False),
    ("devices/lab.yaml", "tags: {site: berlin, hw: rpi4}", 'tags: {"Bad.Prefix/site": berlin, hw: rpi4}', False),
    ("devices/lab.yaml", "tags: {site: berlin, hw: rpi4}", 'tags: {"acme.example/site": berlin, hw: rpi4}', True),
    ("devices/lab.yaml", "tags: {site: berlin, hw: rpi4}", 'tags: {site: "", hw: rpi4}', True),
]

def template_text(path):
    with open(f"{template}/{path}") as handle:
        return handle.read()

disagreements = []
with tempfile.TemporaryDirectory() as scratch:
    for path, old, new, expected in cases:
        work = f"{scratch}/fleet"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(template, work, ignore=shutil.ignore_patterns(".git"))
        text = template_text(path)
        if old not in text:
            failures.append(f"case {path}: '{old}' is not in the template")
            continue
        with open(f"{work}/{path}", "w") as handle:
            handle.write(text.replace(old, new, 1))
        validate = subprocess.run([binary, "validate", work, "--format", "json"], capture_output=True, text=True)
        by_validator = validate.returncode == 0
        with open(f"{work}/{path}") as handle:
            by_schema = all(validator.is_valid(document) for document in yaml.safe_load_all(handle) if document is not None)
        if by_validator != expected or by_schema != expected:
            disagreements.append(f"{path}: {new!r}: expected {'valid' if expected else 'invalid'}; "
                                 f"flotilla validate says {'valid' if by_validator else 'invalid'}, the schema {'valid' if by_schema else 'invalid'}")
failures += disagreements

for failure in failures:
    print(failure, file=sys.stderr)
print(f"schema: {checked} template documents valid, {len(broken)} broken ones rejected, {len(cases)} edits judged alike by "
      "flotilla validate and the schema" if not failures else "schema: FAILED")
sys.exit(1 if failures else 0)
