#!/usr/bin/env python3
"""Enrolls N simulated devices against a running flotilla serve and writes their device tokens,
one per line. Used by hack/bench.sh; talks only to the given loopback address."""
import http.client
import json
import sys
import threading

host, port, token, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
tokens = [None] * count
errors = []


def worker(start, step):
    connection = http.client.HTTPConnection(host, port, timeout=30)
    for index in range(start, count, step):
        body = json.dumps({"token": token, "hardwareID": f"bench-{index:07d}",
                           "deviceSecret": f"secret-{index:07d}-bench", "tags": {"site": "bench"}})
        connection.request("POST", "/agent/v1/enroll", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status not in (200, 201):
            errors.append(f"{response.status} {data[:200]!r}")
            return
        tokens[index] = json.loads(data)["deviceToken"]


threads = [threading.Thread(target=worker, args=(n, 8)) for n in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
if errors:
    sys.exit("enrollment failed: " + errors[0])
with open(out, "w") as handle:
    handle.write("\n".join(tokens) + "\n")
