#!/usr/bin/env python3
"""Helpers for hack/bench.sh sim: wait for devices, deploy to all of them, wait for convergence.

usage: fleet.py wait-online  HOST PORT OPERATOR_TOKEN COUNT TIMEOUT
       fleet.py deploy-all   HOST PORT OPERATOR_TOKEN VERSION TIMEOUT
"""
import json
import sys
import time
import urllib.request


def call(base, token, path, body=None):
    request = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main():
    command, host, port, token = sys.argv[1:5]
    base = f"http://{host}:{port}"
    started = time.monotonic()
    if command == "wait-online":
        count, timeout = int(sys.argv[5]), float(sys.argv[6])
        while time.monotonic() - started < timeout:
            online = len(call(base, token, "/api/v1/devices?online=true")["devices"])
            if online >= count:
                print(f"{online} devices online after {time.monotonic() - started:.1f} s")
                return
            time.sleep(2)
        sys.exit(f"only {online} of {count} devices online after {timeout} s")
    if command == "deploy-all":
        version, timeout = sys.argv[5], float(sys.argv[6])
        elapsed, states = deploy_all(base, token, "thermostat", version, ["fetch", "switch"], timeout, poll=2)
        print(f"all {sum(states.values())} executions final after {elapsed:.1f} s: {states}")
        print(f"converged_seconds={elapsed:.1f}")


def deploy_all(base, token, app, version, steps, timeout, poll):
    """One deployment of `steps` (each `true`) to every device; seconds until every execution is
    final, and how many ended in each state."""
    started = time.monotonic()
    devices = [device["id"] for device in call(base, token, "/api/v1/devices")["devices"]]
    step = {"kind": "run", "command": "true", "timeoutSeconds": 60, "retries": 0, "onFailure": "rollback", "idempotent": False}
    created = call(base, token, "/api/v1/deployments", {
        "app": app, "version": version, "flow": "bench", "devices": devices,
        "steps": [dict(step, name=name) for name in steps]})
    deployment = created["deployment"]["id"]
    print(f"deployment of {app} {version} to {len(devices)} devices created in {time.monotonic() - started:.1f} s", flush=True)
    states = {}
    while time.monotonic() - started < timeout:
        time.sleep(poll)
        states = {}
        for execution in call(base, token, f"/api/v1/deployments/{deployment}")["executions"]:
            states[execution["state"]] = states.get(execution["state"], 0) + 1
        done = sum(count for state, count in states.items() if state in ("succeeded", "failed", "timedOut", "cancelled"))
        if done == len(devices):
            return time.monotonic() - started, states
    sys.exit(f"not converged after {timeout} s: {states}")


if __name__ == "__main__":
    main()
