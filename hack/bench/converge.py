#!/usr/bin/env python3
"""A fleet of simulated devices converging on a new version through the controller
(hack/bench.sh converge), against one deployment of a flow as long to every device at once.

usage: converge.py CLONE HOST PORT OPERATOR_TOKEN WEBHOOK_SECRET DEVICES TIMEOUT [SERVER_PID]

With SERVER_PID, the server's resident memory is read every second and summed up per phase.
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from fleet import call, deploy_all

clone, host, port, token, secret = sys.argv[1:6]
devices, timeout = int(sys.argv[6]), float(sys.argv[7])
server_pid = int(sys.argv[8]) if len(sys.argv) > 8 else None
base = f"http://{host}:{port}"


class Resident(threading.Thread):
    """The server's resident memory (VmRSS), read every second and kept under the phase set."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.phase, self.samples = pid, None, {}

    def run(self):
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as status:
                    kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            if self.phase:
                self.samples.setdefault(self.phase, []).append(kilobytes / 1024)
            time.sleep(1)

    def summary(self, phase):
        values = sorted(self.samples.get(phase, []))
        if not values:
            return "not read"
        return (f"median {values[len(values) // 2]:.0f} MB, 90th percentile {values[int(len(values) * 0.9)]:.0f} MB, "
                f"most {values[-1]:.0f} MB ({len(values)} readings)")


resident = Resident(server_pid) if server_pid and os.path.exists(f"/proc/{server_pid}/status") else None
if resident:
    resident.start()


def phase(name):
    if resident:
        resident.phase = name


def api(path, body=None):
    return call(base, token, path, body)


def git(*arguments):
    return subprocess.run(["git", "-C", clone, *arguments], check=True, capture_output=True, text=True).stdout.strip()


def controller_metrics():
    """The controller's pass count and seconds from /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=60) as response:
        lines = response.read().decode().split("\n")
    value = lambda name: float(next(line.split()[1] for line in lines if line.startswith(name + " ")))
    return value("flotilla_controller_passes_total"), value("flotilla_controller_pass_seconds_total")


def thermostat(status):
    return next(app for app in status["apps"] if app["name"] == "thermostat")


def wait_converged(commit, started, label):
    """Until the controller reports `commit` with every thermostat device at its target's version."""
    last = 0
    while time.monotonic() - started < timeout:
        try:
            status = api("/api/v1/status")
        except urllib.error.HTTPError:
            time.sleep(1)
            continue
        app = thermostat(status)
        total = sum(target["devices"] for target in app["targets"])
        converged = sum(target["converged"] for target in app["targets"])
        updating = sum(target["updating"] for target in app["targets"])
        if status["commit"] == commit and total == devices and converged == devices:
            return time.monotonic() - started
        if time.monotonic() - last >= 15:
            last = time.monotonic()
            print(f"    {label}: {converged}/{total} converged, {updating} updating after {time.monotonic() - started:.0f} s", flush=True)
        time.sleep(1)
    sys.exit(f"{label}: not converged after {timeout:.0f} s")


def main():
    head = git("rev-parse", "HEAD")
    started = time.monotonic()
    seconds = wait_converged(head, started, "first commit")
    print(f"first commit converged:    {seconds:.1f} s after every device was online (installing from nothing)", flush=True)

    # The baseline: one deployment of a flow with as many steps, to every device at once, no waves.
    flow = 4
    phase("baseline")
    baseline, states = deploy_all(base, token, "baseline", "1.0.0", [f"step {n + 1}" for n in range(flow)], timeout, poll=1)
    print(f"baseline:                  {baseline:.1f} s for one deployment of {flow} steps to all {sum(states.values())} devices at once "
          f"({states.get('succeeded', 0)} succeeded)", flush=True)
    phase(None)

    # A user's version bump of every thermostat target, pushed, with the forge's webhook.
    path = f"{clone}/apps/thermostat.yaml"
    text = open(path).read()
    for old, new in (("version: 2.5.0", "version: 2.6.0"), ("version: 2.4.1", "version: 2.5.0"), ("version: 2.3.9", "version: 2.4.1")):
        text = text.replace(old, new)
    open(path, "w").write(text)
    git("-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "--quiet", "-am", "thermostat: every ring one release on")
    before = {d["id"] for d in api("/api/v1/deployments")["deployments"]}
    passes0, pass_seconds0 = controller_metrics()
    started = time.monotonic()
    phase("bump")
    git("push", "--quiet", "origin", "HEAD:main")
    bump = git("rev-parse", "HEAD")
    body = json.dumps({"ref": "refs/heads/main", "after": bump}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    urllib.request.urlopen(urllib.request.Request(base + "/hooks/git", data=body, method="POST",
                                                  headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"}),
                           timeout=10).read()
    seconds = wait_converged(bump, started, "version bump")
    phase(None)
    waves = [d for d in api("/api/v1/deployments")["deployments"] if d["id"] not in before and d["createdBy"] == "controller"]
    print(f"version bump converged:    {seconds:.1f} s from push to every device reporting its new version, "
          f"{len(waves)} waves over 3 targets", flush=True)
    passes, pass_seconds = controller_metrics()
    passes, pass_seconds = passes - passes0, pass_seconds - pass_seconds0
    print(f"controller passes:         {passes:.0f} during the rollout, {pass_seconds / max(passes, 1) * 1000:.0f} ms of wall time each "
          f"on average, {pass_seconds / seconds * 100:.0f}% of the rollout (one pass every {seconds / max(passes, 1):.1f} s)")
    print(f"ratio bump / baseline:     {seconds / baseline:.2f}×  (waves of 20% run one after another by policy)")
    if resident:
        print(f"server resident, baseline: {resident.summary('baseline')}")
        print(f"server resident, bump:     {resident.summary('bump')}")


main()
