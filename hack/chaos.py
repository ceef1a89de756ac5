#!/usr/bin/env python3
"""Kills replicas at random while a rollout runs, and checks that nothing was lost.

Started by hack/chaos.sh (which installs and builds what it needs). One run, one seed:
a throwaway PostgreSQL server, three `flotilla serve` replicas on it behind HAProxy, `flotilla sim`
devices talking to the load balancer, a fleet repository served by git daemon, and a version bump
rolled out in waves. Meanwhile a replica chosen by the seed is killed with SIGKILL at a moment
chosen by the seed, and restarted after a while, again and again; at least one of the kills is
of the leader. Afterwards:

- every device runs what the head commit wants (the status any replica serves says converged);
- no device was sent the same release twice (one execution per device and digest);
- no execution is lost or stuck (none left queued, assigned or running);
- every heartbeat the server acknowledged is in the database.

Prints what it does and a last line `chaos: seed N passed` or the violations; exits 1 on any.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(text):
    print(f"chaos: {text}", flush=True)


class Run:
    def __init__(self, args):
        self.args = args
        self.random = random.Random(args.seed)
        self.work = tempfile.mkdtemp(prefix="flotilla-chaos-")
        self.postgres = tempfile.mkdtemp(prefix="flotilla-chaos-postgres-")
        self.processes = []
        self.replicas = {}
        self.flotilla = args.flotilla

    # --- processes -------------------------------------------------------------------------

    def start(self, argv, log, env=None):
        handle = open(os.path.join(self.work, log), "ab")
        # A session of its own, so stopping it stops what it started too (`git daemon` runs
        # git-daemon as a child, which outlived a kill of `git` alone).
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop_all(self):
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run([os.path.join(ROOT, "hack/postgres.sh"), "stop", self.postgres], check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    def wait_http(self, url, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2)
                return True
            except Exception:
                time.sleep(0.1)
        return False

    # --- the fleet ---------------------------------------------------------------------------

    def git(self, *argv, cwd=None):
        subprocess.run(["git", "-c", "user.name=Operator", "-c", "user.email=ops@acme.example", *argv], cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def repository(self):
        bare, clone = os.path.join(self.work, "fleet.git"), os.path.join(self.work, "clone")
        self.git("init", "--quiet", "--bare", bare)
        self.git("clone", "--quiet", bare, clone)
        shutil.copytree(os.path.join(ROOT, "fleet-repo-template"), clone, dirs_exist_ok=True)
        # Waves of a quarter of the fleet (the template updates 10 devices at a time at most, and
        # gateways one by one).
        for name, old, new in [("fleet.yaml", "maxUnavailable: 10 ", "maxUnavailable: 25%"), ("apps/telemetry.yaml", "batchSize: 1\n", "batchSize: 25%\n"),
                                ("apps/telemetry.yaml", "maxUnavailable: 1\n", "maxUnavailable: 25%\n")]:
            path = os.path.join(clone, name)
            text = open(path).read()
            if old not in text:
                raise SystemExit(f"chaos: {name} no longer holds '{old.strip()}'; update hack/chaos.py")
            open(path, "w").write(text.replace(old, new))
        self.git("add", "--all", cwd=clone)
        self.git("commit", "--quiet", "-m", "Our fleet", cwd=clone)
        self.git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
        port = free_port()
        self.start(["git", "daemon", "--reuseaddr", f"--base-path={self.work}", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port}",
                    self.work], "git-daemon.log")
        self.repo, self.clone = f"git://127.0.0.1:{port}/fleet.git", clone
        deadline = time.time() + 10
        while subprocess.run(["git", "ls-remote", self.repo], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("chaos: git daemon did not start")
            time.sleep(0.1)

    def head(self):
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.clone, capture_output=True, text=True, check=True).stdout.strip()

    def database(self):
        admin = subprocess.run([os.path.join(ROOT, "hack/postgres.sh"), "start", self.postgres], capture_output=True, text=True,
                               check=True).stdout.strip()
        subprocess.run(["psql", "--quiet", admin, "-c", "CREATE DATABASE flotilla"], check=True, stdout=subprocess.DEVNULL)
        self.admin = admin.rsplit("/", 1)[0] + "/flotilla"
        self.url = self.admin + "?sslmode=disable"

    def token(self, *extra):
        return subprocess.run([self.flotilla, "token", "create", "--project", "acme-climate", "--data", os.path.join(self.work, "r1"),
                               "--database", self.url, *extra], capture_output=True, text=True, check=True).stdout.strip()

    def start_replica(self, name):
        port = self.replicas.setdefault(name, {"port": free_port()})["port"]
        keys = os.path.join(self.work, "keys")
        os.makedirs(keys, exist_ok=True)
        process = self.start([self.flotilla, "serve", "--data", os.path.join(self.work, name), "--database", self.url,
                              "--replica-name", name, "--listen", f"127.0.0.1:{port}",
                              "--signing-key-file", os.path.join(keys, "device-signing-key.pem"),
                              "--secret-key-file", os.path.join(keys, "secret-key"), "--repo", self.repo,
                              *self.intervals()], f"{name}.log")
        self.replicas[name]["process"] = process
        if not self.wait_http(f"http://127.0.0.1:{port}/healthz"):
            raise SystemExit(f"{self.name}: replica {name} did not start; see its log")

    name = "chaos"

    def intervals(self):
        """How often the replicas want heartbeats and poll and reconcile the repository."""
        return ["--heartbeat-interval", "5", "--poll-interval", "1", "--reconcile-interval", "1"]

    def balancer(self):
        self.lb_port = free_port()
        env = dict(os.environ, LB_PORT=str(self.lb_port), **{f"R{i}_PORT": str(self.replicas[f"r{i}"]["port"]) for i in (1, 2, 3)})
        self.start(["haproxy", "-f", os.path.join(ROOT, "hack/replicas/haproxy.cfg"), "-db"], "haproxy.log", env=env)
        self.lb = f"http://127.0.0.1:{self.lb_port}"
        if not self.wait_http(self.lb + "/healthz"):
            raise SystemExit("chaos: haproxy did not start")

    # --- reading the fleet ---------------------------------------------------------------------

    def api(self, path):
        request = urllib.request.Request(self.lb + path, headers={"Authorization": "Bearer " + self.operator})
        return json.load(urllib.request.urlopen(request, timeout=30))

    def leader(self):
        for name, replica in self.replicas.items():
            if replica["process"].poll() is not None:
                continue
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{replica['port']}/metrics", timeout=2).read().decode()
            except Exception:
                continue
            if f'flotilla_controller_leader{{replica="{name}"}} 1' in metrics:
                return name
        return None

    def converged(self, commit):
        try:
            status = self.api("/api/v1/status")
        except Exception:
            return False, "no status"
        total, done, parts = 0, status["commit"] == commit, []
        for app in status["apps"]:
            for target in app["targets"]:
                total += target["devices"]
                done = done and target["state"] == "converged" and target["converged"] == target["devices"]
                parts.append(f'{app["name"]}/{target["group"]} {target["converged"]}/{target["devices"]}')
        # A device may be in a target of each app (a thermostat that is a gateway too): counted
        # once per app, every device is counted at least once.
        return done and total >= self.args.devices, "  ".join(parts)

    def wait_converged(self, commit, seconds):
        deadline, last = time.time() + seconds, ""
        while time.time() < deadline:
            done, line = self.converged(commit)
            if line != last:
                say(line)
                last = line
            if done:
                return True
            time.sleep(2)
        return False

    # --- the run -------------------------------------------------------------------------------

    def run(self):
        args = self.args
        say(f"seed {args.seed}: {args.devices} devices, 3 replicas, {args.kills} kills")
        self.database()
        self.repository()
        self.enrollment, self.operator = self.token(), self.token("--operator")
        for name in ("r1", "r2", "r3"):
            self.start_replica(name)
        self.balancer()
        acknowledged = os.path.join(self.work, "acknowledged.log")
        self.start([self.flotilla, "sim", "--server", self.lb, "--token", self.enrollment, "--devices", str(args.devices),
                    "--fail-rate", "0", "--offline-rate", "0", "--step-seconds", args.step_seconds, "--seed", str(args.seed),
                    "--status-every", "10", "--acknowledged-log", acknowledged], "sim.log")
        if not self.wait_converged(self.head(), 600):
            return ["the fleet did not converge before the chaos began"]

        # The rollout: Europe's thermostats, a quarter at a time.
        path = os.path.join(self.clone, "apps/thermostat.yaml")
        text = open(path).read().replace("version: 2.4.1", "version: 2.4.2").replace("thermostat/2.4.1/", "thermostat/2.4.2/")
        open(path, "w").write(text)
        self.git("commit", "--quiet", "-am", "thermostat 2.4.2 for Europe", cwd=self.clone)
        self.git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
        commit = self.head()
        say(f"rolling out {commit[:12]}")

        leader_killed = False
        for kill in range(args.kills):
            time.sleep(self.random.uniform(1, args.kill_gap))
            leader = self.leader()
            # At least one kill is of the leader: the first, whatever the seed says for it.
            if not leader_killed or self.random.random() < 0.5:
                victim = leader or self.random.choice(sorted(self.replicas))
            else:
                victim = self.random.choice(sorted(self.replicas))
            leader_killed = leader_killed or victim == leader
            self.replicas[victim]["process"].kill()
            self.replicas[victim]["process"].wait()
            say(f"kill {kill + 1}: SIGKILL to {victim}{' (the leader)' if victim == leader else ''}")
            time.sleep(self.random.uniform(0.5, 4))
            self.start_replica(victim)
        if not leader_killed:
            return ["no kill was of the leader (no replica led when one was due)"]

        problems = []
        if not self.wait_converged(commit, 600):
            problems.append("the fleet did not converge after the kills")
        problems += self.check(acknowledged)
        return problems

    def check(self, acknowledged):
        problems = []
        sent, unfinished = {}, []
        for deployment in self.api("/api/v1/deployments")["deployments"]:
            for execution in self.api("/api/v1/deployments/" + deployment["id"])["executions"]:
                key = (execution["deviceID"], deployment["digest"])
                sent[key] = sent.get(key, 0) + 1
                if execution["state"] in ("queued", "assigned", "running"):
                    unfinished.append(f'{execution["id"]} ({execution["state"]})')
        twice = [f"{device} got {digest[:12]} {count} times" for (device, digest), count in sent.items() if count > 1]
        problems += twice[:10]
        problems += [f"execution {item} is not finished" for item in unfinished[:10]]
        say(f"{len(sent)} device releases sent, {len(twice)} twice; {len(unfinished)} executions unfinished")

        # Every acknowledged heartbeat is stored (the simulator stopped first: nothing in flight).
        for process in self.processes:
            if process.args[:2] == [self.flotilla, "sim"]:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        acked = set(open(acknowledged).read().split())
        stored = subprocess.run(["psql", "--quiet", "--tuples-only", "--no-align", self.admin, "-c", "SELECT report_id FROM heartbeat"],
                                capture_output=True, text=True, check=True).stdout.split()
        missing = acked - set(stored)
        say(f"{len(acked)} heartbeats acknowledged, {len(missing)} of them missing from the database")
        problems += [f"acknowledged heartbeat {report} is not stored" for report in sorted(missing)[:10]]
        return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flotilla", required=True)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-gap", type=float, default=8, help="most seconds between kills")
    parser.add_argument("--step-seconds", default="1-3")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs) after the run")
    args = parser.parse_args()
    problems = run_to_the_end(Run(args), args.keep, f"flotilla-chaos-{args.seed}-logs-")
    for problem in problems:
        say(f"VIOLATION: {problem}")
    say(f"seed {args.seed} {'passed' if not problems else 'FAILED'}")
    sys.exit(1 if problems else 0)


def run_to_the_end(run, keep, prefix):
    """Runs `run`, stopping what it started however it ends (SIGTERM too); its logs are kept
    when asked or when something was wrong. Returns the problems found."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    problems = ["interrupted"]
    try:
        problems = run.run()
    finally:
        if keep or problems:
            kept = tempfile.mkdtemp(prefix=prefix)
            for name in os.listdir(run.work):
                if name.endswith(".log") and not name.startswith("acknowledged"):
                    shutil.copy(os.path.join(run.work, name), kept)
            say(f"logs kept in {kept}")
        run.stop_all()
    return problems


if __name__ == "__main__":
    main()
