#!/usr/bin/env python3
"""Times commit → first execution, by webhook and by poll (hack/bench.sh controller).

usage: controller.py CLONE HOST PORT OPERATOR_TOKEN WEBHOOK_SECRET ROUNDS
"""
import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.request

from fleet import call

clone, host, port, token, secret, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
base = f"http://{host}:{port}"


def api(path):
    return call(base, token, path)


def git(*arguments):
    return subprocess.run(["git", "-C", clone, *arguments], check=True, capture_output=True, text=True).stdout.strip()


def bump(version):
    path = f"{clone}/apps/thermostat.yaml"
    text = open(path).read()
    lines = text.split("\n")
    # The canary target's version: the first 'version:' line.
    for index, line in enumerate(lines):
        if line.strip().startswith("version:"):
            lines[index] = line[: line.index("version:")] + f"version: {version}"
            break
    open(path, "w").write("\n".join(lines))
    git("-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "--quiet", "-am", f"thermostat {version}")
    git("push", "--quiet", "origin", "HEAD:main")


def wait_for_version(version, started):
    """Seconds until a deployment of `version` exists, and until one of its executions left 'queued'."""
    created = running = None
    while time.monotonic() - started < 60:
        for deployment in api("/api/v1/deployments")["deployments"]:
            if deployment["version"] != version:
                continue
            created = created or time.monotonic() - started
            states = [e["state"] for e in api(f"/api/v1/deployments/{deployment['id']}")["executions"]]
            if any(state != "queued" for state in states):
                running = time.monotonic() - started
        if running:
            return created, running
        time.sleep(0.02)
    sys.exit(f"no execution of {version} within 60 s")


def fetch_time():
    started = time.monotonic()
    git("fetch", "--quiet", "origin")
    return time.monotonic() - started


results = {"webhook": [], "poll": [], "fetch": []}
for round_number in range(rounds):
    for mode in ("webhook", "poll"):
        version = f"2.6.{round_number}-{mode}"
        started = time.monotonic()
        bump(version)
        if mode == "webhook":
            body = json.dumps({"ref": "refs/heads/main", "after": git("rev-parse", "HEAD")}).encode()
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            request = urllib.request.Request(base + "/hooks/git", data=body, method="POST",
                                             headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"})
            urllib.request.urlopen(request, timeout=10).read()
        created, running = wait_for_version(version, started)
        results[mode].append((created, running))
        print(f"{mode:8} round {round_number + 1}: execution created after {created:.2f} s, first device running after {running:.2f} s")
    results["fetch"].append(fetch_time())

median = lambda values: sorted(values)[len(values) // 2]
fetch = median(results["fetch"])
for mode in ("webhook", "poll"):
    created = median([c for c, _ in results[mode]])
    running = median([r for _, r in results[mode]])
    print(f"commit → first execution by {mode}: median {created:.2f} s created, {running:.2f} s running on a device "
          f"({created / fetch:.1f}× one git fetch of {fetch * 1000:.0f} ms)")
