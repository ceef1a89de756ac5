#!/usr/bin/env python3
"""A soak at fleet scale: many simulated devices against three replicas on one PostgreSQL for a
while, with a rollout in the middle, measuring what a long run would show.

Started by hack/soak.sh (which installs and builds what it needs). A throwaway PostgreSQL server,
three `flotilla serve` replicas on it with the controller elected among them, a fleet repository
from the template served by git daemon, and one `flotilla sim` per replica with a third of the
devices (devices talk to their replica directly: fifty thousand connections through one balancer
port would run loopback out of ephemeral ports). Once every device is enrolled and the first
commit has converged, the soak runs for --minutes; half way through, a version bump is pushed.
It reports:

- each replica's resident memory every 30 s, and its growth from the first minute to the end
  against the heartbeats it took meanwhile (flat: no growth per heartbeat);
- heartbeats acknowledged and stored (every acknowledged one must be in the database);
- heartbeat round-trip latency as the devices saw it (p50, p99, max), before, during and after
  the rollout;
- the rollout: push to converged, and the leader's controller pass time.

Exits 1 when an acknowledged heartbeat is missing or the rollout did not converge.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import Run, run_to_the_end  # noqa: E402  (same directory)


def say(text):
    print(f"soak: {text}", flush=True)


def resident_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Soak(Run):
    name = "soak"

    def intervals(self):
        # Every device enrolls within the first minute: more than an enrollment token's burst.
        return ["--heartbeat-interval", str(self.args.heartbeat), "--poll-interval", "5", "--enrollment-rate", "0"]

    def api(self, path):
        # Any replica answers for the whole fleet; the first that is up.
        for replica in self.replicas.values():
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{replica['port']}{path}",
                                                 headers={"Authorization": "Bearer " + self.operator})
                import json
                return json.load(urllib.request.urlopen(request, timeout=60))
            except Exception:
                continue
        raise RuntimeError("no replica answers")

    def metric(self, name, pattern):
        for replica_name, replica in self.replicas.items():
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{replica['port']}/metrics", timeout=5).read().decode()
            except Exception:
                continue
            for line in text.splitlines():
                if line.startswith(name) and re.search(pattern.replace("NAME", replica_name), line):
                    return replica_name, float(line.split()[-1])
        return None, None

    def heartbeats_total(self, name):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.replicas[name]['port']}/metrics", timeout=5).read().decode()
        except Exception:
            return None
        for line in text.splitlines():
            if line.startswith("flotilla_heartbeats_total "):
                return float(line.split()[-1])
        return None

    def sample_memory(self, stop):
        self.samples = []
        started = time.time()
        while not stop.is_set():
            row = {"t": time.time() - started}
            for name, replica in self.replicas.items():
                row[name] = resident_mb(replica["process"].pid)
                row[name + "_heartbeats"] = self.heartbeats_total(name)
            self.samples.append(row)
            stop.wait(30)

    def sim_lines(self, index):
        path = os.path.join(self.work, f"sim{index}.log")
        return open(path).read().splitlines() if os.path.exists(path) else []

    def run(self):
        args = self.args
        per = [args.devices // 3 + (1 if i < args.devices % 3 else 0) for i in range(3)]
        say(f"{args.devices} devices ({per[0]}, {per[1]}, {per[2]}) against 3 replicas, heartbeat every {args.heartbeat} s, "
            f"{args.minutes} minutes with a rollout half way")
        self.database()
        self.repository()
        self.enrollment, self.operator = self.token(), self.token("--operator")
        for name in ("r1", "r2", "r3"):
            self.start_replica(name)
        self.acknowledged = []
        self.sims = []
        for index, name in enumerate(("r1", "r2", "r3")):
            log = os.path.join(self.work, f"acknowledged{index}.log")
            self.acknowledged.append(log)
            self.sims.append(self.start([self.flotilla, "sim", "--server", f"http://127.0.0.1:{self.replicas[name]['port']}",
                                         "--token", self.enrollment, "--devices", str(per[index]), "--fail-rate", "0",
                                         "--offline-rate", "0", "--step-seconds", "1-3", "--seed", str(args.seed + index),
                                         "--status-every", "30", "--enroll-concurrency", "16", "--acknowledged-log", log],
                                        f"sim{index}.log"))
        started = time.time()
        if not self.wait_converged(self.head(), args.setup_minutes * 60):
            return ["the first commit did not converge in time"]
        say(f"enrolled and converged on the first commit after {time.time() - started:.0f} s")

        stop = threading.Event()
        sampler = threading.Thread(target=self.sample_memory, args=(stop,))
        sampler.start()
        soak_started = time.time()
        lines_before = [len(self.sim_lines(i)) for i in range(3)]
        time.sleep(args.minutes * 30)

        # The rollout: Europe's thermostats, a quarter at a time.
        path = os.path.join(self.clone, "apps/thermostat.yaml")
        text = open(path).read().replace("version: 2.4.1", "version: 2.4.2").replace("thermostat/2.4.1/", "thermostat/2.4.2/")
        open(path, "w").write(text)
        self.git("commit", "--quiet", "-am", "thermostat 2.4.2 for Europe", cwd=self.clone)
        self.git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
        commit, pushed = self.head(), time.time()
        lines_at_push = [len(self.sim_lines(i)) for i in range(3)]
        say(f"pushed {commit[:12]} after {pushed - soak_started:.0f} s of the soak")
        problems = []
        remaining = args.minutes * 60 - (time.time() - soak_started)
        converged = self.wait_converged(commit, max(remaining, 60))
        rollout_seconds = time.time() - pushed
        lines_at_converged = [len(self.sim_lines(i)) for i in range(3)]
        if not converged:
            problems.append("the rollout did not converge")
        leader, pass_seconds = self.metric("flotilla_controller_last_pass_seconds", "")
        time.sleep(max(0, args.minutes * 60 - (time.time() - soak_started)))
        stop.set()
        sampler.join()

        # Stopped first, so nothing is in flight when the database is read.
        for sim in self.sims:
            sim.send_signal(signal.SIGTERM)
        for sim in self.sims:
            sim.wait(timeout=120)
        acked = set()
        for log in self.acknowledged:
            acked.update(open(log).read().split())
        stored = set(subprocess.run(["psql", "--quiet", "--tuples-only", "--no-align", self.admin, "-c", "SELECT report_id FROM heartbeat"],
                                    capture_output=True, text=True, check=True).stdout.split())
        missing = acked - stored
        problems += [f"acknowledged heartbeat {report} is not stored" for report in sorted(missing)[:10]]

        say("resident memory (MB) every 30 s:")
        say("      t   " + "  ".join(f"{name:>7}" for name in ("r1", "r2", "r3")))
        for row in self.samples:
            say(f"  {row['t']:5.0f} s " + "  ".join(f"{row[name]:7.0f}" if row[name] else "      -" for name in ("r1", "r2", "r3")))
        if len(self.samples) >= 3:
            first, last = self.samples[1], self.samples[-1]
            for name in ("r1", "r2", "r3"):
                heard = (last[name + "_heartbeats"] or 0) - (first[name + "_heartbeats"] or 0)
                growth = last[name] - first[name]
                per_heartbeat = growth * 1024 * 1024 / heard if heard > 0 else float("nan")
                say(f"{name}: {first[name]:.0f} MB at {first['t']:.0f} s, {last[name]:.0f} MB at {last['t']:.0f} s: "
                    f"{growth:+.0f} MB over {heard:.0f} heartbeats ({per_heartbeat:+.1f} bytes per heartbeat)")

        def latency(start, end):
            histogram = {}
            count = 0
            for index in range(3):
                for line in self.sim_lines(index)[start[index]:end[index]]:
                    found = re.search(r"heartbeat latency since the last line: p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms over (\d+)", line)
                    if found:
                        p50, p99, top, n = float(found[1]), float(found[2]), float(found[3]), int(found[4])
                        histogram.setdefault("p99", []).append(p99)
                        histogram.setdefault("p50", []).append(p50)
                        histogram.setdefault("max", []).append(top)
                        count += n
            if not histogram:
                return "no heartbeats"
            return (f"p50 {max(histogram['p50']):.1f} ms, p99 {max(histogram['p99']):.1f} ms, max {max(histogram['max']):.0f} ms "
                    f"(worst 30 s window of each sim; {count} heartbeats)")

        ends = [len(self.sim_lines(i)) for i in range(3)]
        say(f"heartbeat latency before the push:   {latency(lines_before, lines_at_push)}")
        say(f"heartbeat latency during the rollout: {latency(lines_at_push, lines_at_converged)}")
        say(f"heartbeat latency after it:           {latency(lines_at_converged, ends)}")
        for index in range(3):
            total = [line for line in self.sim_lines(index) if "latency over the run" in line]
            if total:
                say(f"sim {index + 1} over the whole run: {total[-1].split(': ', 1)[1]}")
        say(f"heartbeats: {len(acked)} acknowledged, {len(missing)} of them missing from the database ({len(stored)} stored)")
        say(f"rollout: converged {rollout_seconds:.0f} s after the push" if converged else "rollout: did not converge")
        if leader:
            say(f"leader {leader}: last controller pass {pass_seconds:.2f} s")
        return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flotilla", required=True)
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--heartbeat", type=int, default=30, help="the servers' heartbeat interval, seconds")
    parser.add_argument("--setup-minutes", type=float, default=30, help="most minutes for enrolling and the first commit")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the logs after the run")
    args = parser.parse_args()
    problems = run_to_the_end(Soak(args), args.keep, "flotilla-soak-logs-")
    for problem in problems:
        say(f"PROBLEM: {problem}")
    say("passed" if not problems else "FAILED")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
