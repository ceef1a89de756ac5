#!/usr/bin/env python3
"""Holds one long-poll per device against a server, as agents do, for `hack/bench.sh connections`.

    hold.py HOST PORT TOKENS COUNT SECONDS [HEARTBEAT_EVERY [shared|own]]

Each of COUNT devices (tokens from the file TOKENS, one per line, reused when there are fewer)
opens its own connection, asks for its assignments once to learn their entity tag, then asks
again with `If-None-Match` and waits; every answer is followed by the next wait, as the agent
does. With HEARTBEAT_EVERY, every device also sends a heartbeat that often: over 64 kept-alive
connections (`shared`, the default: what a load balancer in front of the servers keeps), or each
over a kept-alive connection of its own (`own`: agents connected straight to the server). Prints `parked N` once every
device waits, then holds for SECONDS and prints what it saw. Talks only to HOST:PORT.
"""
import asyncio
import itertools
import json
import random
import sys
import time

host, port, tokens_file, count, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
heartbeat_every = float(sys.argv[6]) if len(sys.argv) > 6 else 0
own_connections = len(sys.argv) > 7 and sys.argv[7] == "own"
tokens = [line.strip() for line in open(tokens_file) if line.strip()]
stats = {"parked": 0, "answers": 0, "errors": 0, "heartbeats": 0, "heartbeat_errors": 0}
first_error = []


async def exchange(reader, writer, request):
    """Sends one request and reads its answer: (status, headers, body)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def assignments(token, tag=None):
    conditional = f"If-None-Match: {tag}\r\n" if tag else ""
    return (f"GET /agent/v1/assignments HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"{conditional}\r\n").encode()


async def device(index, connected):
    token = tokens[index % len(tokens)]
    parked = False
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
            status, headers, _ = await exchange(reader, writer, assignments(token))
            if status != 200:
                raise RuntimeError(f"assignments answered {status}")
            tag = headers.get("etag")
            while True:
                if not parked:
                    parked = True
                    stats["parked"] += 1
                    connected.release()
                writer.write(assignments(token, tag))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ")[1])
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                    if line.lower().startswith("etag:"):
                        tag = line.split(":", 1)[1].strip()
                if length:
                    await reader.readexactly(length)
                stats["answers"] += 1
                if status not in (200, 304):
                    raise RuntimeError(f"long-poll answered {status}")
        except Exception as error:  # a dropped connection is opened again, as the agent does
            stats["errors"] += 1
            if not first_error:
                first_error.append(repr(error))
            await asyncio.sleep(1)


async def heartbeats(lane, lanes):
    """One kept-alive connection sending the heartbeats of every `lanes`-th device."""
    counter = itertools.count()
    mine = list(range(lane, count, lanes))
    if not mine:
        return
    pause = heartbeat_every / len(mine)
    if own_connections:  # one device, its first heartbeat at a random moment of the interval
        await asyncio.sleep(random.uniform(0, heartbeat_every))
    reader = writer = None
    while True:
        for index in mine:
            started = time.monotonic()
            body = json.dumps({"reportID": f"hold-{index}-{next(counter)}-{lane}", "cpuPercent": 12.5,
                               "memory": {"usedBytes": 104857600, "totalBytes": 1073741824},
                               "apps": {"thermostat": {"version": "2.4.1"}}, "agentVersion": "0.1.0"}).encode()
            request = (f"POST /agent/v1/heartbeat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {tokens[index % len(tokens)]}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            # A kept connection the server closed while it idled is opened again, and a request
            # that fails on a reused connection is sent once more on a new one, as libcurl does.
            for attempt in range(2):
                try:
                    reused = writer is not None and not reader.at_eof()
                    if not reused:
                        if writer is not None:
                            writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                    status, _, _ = await exchange(reader, writer, request)
                    stats["heartbeats" if status in (200, 204) else "heartbeat_errors"] += 1
                    break
                except Exception:
                    writer = None
                    if not reused or attempt == 1:
                        stats["heartbeat_errors"] += 1
                        break
            await asyncio.sleep(max(0, pause - (time.monotonic() - started)))


async def main():
    connecting = asyncio.Semaphore(256)  # connections being set up at once: the accept backlog is finite
    started = time.monotonic()
    tasks = []

    async def start(index):
        await connecting.acquire()
        tasks.append(asyncio.create_task(device(index, connecting)))

    for index in range(count):
        await start(index)
    while stats["parked"] < count:
        await asyncio.sleep(0.2)
        if time.monotonic() - started > 600:
            sys.exit(f"only {stats['parked']} of {count} devices waiting after 10 minutes; first error: {first_error}")
    print(f"parked {count} in {time.monotonic() - started:.1f} s", flush=True)
    if heartbeat_every:
        lanes = count if own_connections else 64
        tasks += [asyncio.create_task(heartbeats(lane, lanes)) for lane in range(lanes)]
    await asyncio.sleep(seconds)
    print(f"held {seconds:.0f} s: {stats['answers']} answers, {stats['errors']} connection errors, "
          f"{stats['heartbeats']} heartbeats ({stats['heartbeat_errors']} failed)"
          + (f"; first error: {first_error[0]}" if first_error else ""), flush=True)


asyncio.run(main())
