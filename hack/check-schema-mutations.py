#!/usr/bin/env python3
"""Random edits of the template, judged by `flotilla validate` and by the JSON Schema.

usage: check-schema-mutations.py FLOTILLA TEMPLATE [--count N] [--seed S]

Each mutation changes one thing in one file of the template (a value replaced, a key removed,
added or misspelt, a list emptied) and writes the file back. Both judges must then agree on
whether the repository is valid, except where JSON Schema cannot say the rule: references
between files and documents (an app's flow, a target's group, a parameter typed by its flow),
the grammar of a selector or a health check beyond its shape, and unique names. Those are named
below, and a case counts as explained only when every error the validator gives is one of them.

YAML is read as YAML 1.2's core schema, as yaml-language-server (the editor the schema is for)
reads it: `yes` is text, `0042` is the number 42, `2026-12-04` is text.
The same seed gives the same mutations; a failure prints the seed and the case to replay.
"""
import argparse
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml


class Core12Loader(yaml.SafeLoader):
    """PyYAML resolves YAML 1.1 (yes/no/on/off, sexagesimals, dates); this resolves 1.2's core schema."""


Core12Loader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    Core12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern), list(first))


def core12_int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


Core12Loader.add_constructor("tag:yaml.org,2002:int", core12_int)


class Core12Dumper(yaml.SafeDumper):
    pass


def represent_text(dumper, text):
    # Quote any text a YAML 1.2 reader would take for something else.
    resolved = Core12Loader.resolve(Core12Loader, yaml.ScalarNode, text, (True, False))
    style = '"' if resolved != "tag:yaml.org,2002:str" else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


Core12Dumper.add_representer(str, represent_text)

# What the validator checks and JSON Schema cannot: references between files or documents,
# selector and health-check grammar past their shape, uniqueness, and rules between fields.
BEYOND_SCHEMA = [
    # references between files and documents
    r"is not declared in (devices/|flows/)", r"^unknown group '", r"^duplicate ",
    r"names a target listed after this one", r"names no target of app '[^']*' listed before this one",
    r"^group '[^']*' is already targeted at line \d+",
    # parameters, typed and required by the flow an app names
    r"^required parameter '[^']*' of flow '[^']*' has no value",
    r"sets parameter '[^']*', which flow '[^']*' does not declare",
    r"uses '\$\{[^}]*\}', which is neither a declared parameter",
    r"^parameter '[^']*' \((string|int|bool|url|sha256|enum)\): ",
    r"^default '[^']*' of parameter '[^']*' is not a valid enum",
    # download URLs against fleet.yaml's allowlist, once parameters are filled in
    r"is outside the artifact allowlist", r"^download URL '[^']*' of step '[^']*' for group '[^']*' is invalid",
    # grammars past their shape
    r"^invalid selector: ", r"invalid (host|port) in URL", r"path segments are not allowed in URL",
    # a probe's durations within their range and the timeout below the interval; no secret in its command
    r"^the probe's '(timeout|interval)' must be from ", r"^the probe's timeout must be shorter than its interval",
    r"uses secret parameter '[^']*'; a probe runs",
    # a whole number written as a float (1000.0): JSON Schema's integer takes it, a count does not
    r"^expected a count such as 5 or a percentage such as 10% for '[^']*', found '-?[0-9]+\.0'$",
]


def beyond_schema(message):
    return any(re.search(pattern, message) for pattern in BEYOND_SCHEMA)


def main():
    arguments = argparse.ArgumentParser()
    arguments.add_argument("binary")
    arguments.add_argument("template")
    arguments.add_argument("--count", type=int, default=300)
    arguments.add_argument("--seed", type=int, default=1)
    arguments.add_argument("--verbose", action="store_true")
    arguments.add_argument("--explained", action="store_true", help="print the cases the validator refuses for a rule beyond JSON Schema")
    options = arguments.parse_args()

    schema = json.loads(subprocess.run([options.binary, "schema"], check=True, capture_output=True, text=True).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    template = options.template
    # The files check-schema.py reads: fleet.yaml and the YAML of groups/, devices/, flows/, apps/, alerts/.
    files = sorted(["fleet.yaml"] + [os.path.relpath(path, template) for path in glob.glob(f"{template}/*/*.yaml")])
    documents = {}
    for path in files:
        with open(os.path.join(template, path)) as handle:
            documents[path] = [document for document in yaml.load_all(handle, Loader=Core12Loader) if document is not None]

    keys = sorted(set(collect_keys(schema)) | {"unknownKey", "selectr", "versions"})
    rng = random.Random(options.seed)
    outcomes = {"valid": 0, "invalid": 0, "explained": 0}
    disagreements = []
    with tempfile.TemporaryDirectory() as scratch:
        work = os.path.join(scratch, "fleet")
        shutil.copytree(template, work, ignore=shutil.ignore_patterns(".git"))
        for number in range(options.count):
            path = rng.choice(files)
            mutated = json.loads(json.dumps(documents[path]))
            description = mutate(rng, mutated, keys, VALUES)
            text = yaml.dump_all(mutated, Dumper=Core12Dumper, sort_keys=False, allow_unicode=True)
            with open(os.path.join(work, path), "w") as handle:
                handle.write(text)
            run = subprocess.run([options.binary, "validate", work, "--format", "json"], capture_output=True, text=True)
            try:
                report = json.loads(run.stdout)
            except json.JSONDecodeError:
                disagreements.append(f"case {number}: {path}: {description}: validate printed no JSON (exit {run.returncode}): "
                                     f"{run.stderr.strip()[:300]}")
                continue
            by_validator = report["valid"]
            messages = [error["message"] for error in report.get("errors", [])]
            reread = [document for document in yaml.load_all(text, Loader=Core12Loader) if document is not None]
            schema_errors = [f"{error.json_path}: {error.message}" for document in reread for error in validator.iter_errors(document)]
            by_schema = not schema_errors
            if options.verbose:
                print(f"{number}: {path}: {description}: validate={by_validator} schema={by_schema} {messages[:2]}")
            if by_validator and by_schema:
                outcomes["valid"] += 1
            elif not by_validator and not by_schema:
                outcomes["invalid"] += 1
            elif not by_validator and all(beyond_schema(message) for message in messages):
                outcomes["explained"] += 1
                if options.explained:
                    print(f"explained {number}: {path}: {description}: {messages}")
            else:
                judged = (f"flotilla validate: {'valid' if by_validator else '; '.join(messages[:3])} | "
                          f"schema: {'valid' if by_schema else '; '.join(schema_errors[:3])}")
                disagreements.append(f"case {number}: {path}: {description}: {judged}")
            # The next case starts from the template again.
            shutil.copyfile(os.path.join(template, path), os.path.join(work, path))

    for disagreement in disagreements:
        print(disagreement, file=sys.stderr)
    total = options.count
    print(f"schema mutations (seed {options.seed}): {total} random edits; both valid {outcomes['valid']}, both invalid "
          f"{outcomes['invalid']}, refused by the validator for a rule JSON Schema cannot state {outcomes['explained']}, "
          f"disagreements {len(disagreements)}")
    # Not vacuous: a fair share of edits must be judged each way by both.
    if outcomes["valid"] < total // 20 or outcomes["invalid"] < total // 5:
        print("schema mutations: too few edits judged valid or invalid by both; the mutations do not exercise the rules",
              file=sys.stderr)
        return 1
    return 1 if disagreements else 0


def collect_keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value.keys()
            yield from collect_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from collect_keys(item)


VALUES = [
    "", " ", "0", 0, 1, 3, -1, 2.5, 1e3, True, False, None, "true", "yes", "ten", "5%", "0%", "150%", "12.5%", "+5",
    "30s", "0s", "1m30s", "-5s", "10m", "canary", "europe", "gateways", "thermostats", "nosuch", "Bad Name", "a" * 70,
    "site=berlin", "site in (berlin,", "x>1", "!ring", "ring in (canary)", "https://artifacts.acme.example/releases/x.tar",
    "http://evil.example/", "ab" * 32, "2026-12-04T10:00:00Z", "2026-12-04", "Mon-Fri 07:00-19:00", "Europe/Berlin", "up",
    "required", "none", "rollback", "continue", "abort", "int", "bool", "string", "sha256", "enum", "2.6.0", "${version}",
    "memory < 95%", "cpu <= baseline + 20%", "rpi4", "thermo-lab-01", "/opt/app", "up", "down",
    [], ["canary"], [1, 2], {}, {"a": "b"}, {"name": "x", "run": "true"},
]


def paths(node, prefix=()):
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


def mutate(rng, documents, keys, values):
    index = rng.randrange(len(documents))
    document = documents[index]
    places = list(paths(document))
    containers = [(place, node) for place, node in places if isinstance(node, (dict, list)) and node]
    operation = rng.choice(["replace", "replace", "replace", "remove", "add", "rename", "empty", "retype"])
    place, node = rng.choice(places[1:] or places)
    parent = document
    for step in place[:-1]:
        parent = parent[step]
    where = "/".join(str(step) for step in place) or "(document)"
    if operation == "replace" or (operation == "retype" and isinstance(node, (dict, list))):
        value = rng.choice(values)
        parent[place[-1]] = json.loads(json.dumps(value))
        return f"doc {index}: {where} = {value!r}"
    if operation == "retype":
        # The same text as a string or as what YAML would read it as: "5" <-> 5, "true" <-> true.
        if isinstance(node, str):
            loaded = yaml.load(node or "''", Loader=Core12Loader)
            parent[place[-1]] = loaded
        else:
            parent[place[-1]] = json.dumps(node)
        return f"doc {index}: {where} retyped {node!r} -> {parent[place[-1]]!r}"
    if operation == "remove":
        if isinstance(parent, dict):
            del parent[place[-1]]
        else:
            parent.pop(place[-1])
        return f"doc {index}: {where} removed"
    if operation == "empty":
        target_place, target = rng.choice(containers)
        target.clear()
        return f"doc {index}: {'/'.join(map(str, target_place)) or '(document)'} emptied"
    maps = [(place, node) for place, node in places if isinstance(node, dict)]
    map_place, mapping = rng.choice(maps)
    map_where = "/".join(map(str, map_place)) or "(document)"
    if operation == "add":
        key, value = rng.choice(keys), rng.choice(values)
        mapping[key] = json.loads(json.dumps(value))
        return f"doc {index}: {map_where} + {key}: {value!r}"
    if not mapping:
        return f"doc {index}: nothing to rename"
    old = rng.choice(list(mapping))
    new = rng.choice(keys)
    mapping[new] = mapping.pop(old)
    return f"doc {index}: {map_where}: key {old} renamed {new}"


if __name__ == "__main__":
    sys.exit(main())
