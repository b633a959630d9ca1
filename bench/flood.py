"""Token-exchange flood: authenticated reads while bad API keys pour in (bench/load.sh flood).

Usage: python3 bench/flood.py URL SERVER_PID
Needs TOKEN_COMPLIANCE in the environment (bench/load.sh exports it) and wrk.

1. Reads alone: wrk, 1 thread, 4 connections, 10 s of `GET /v1/audit?limit=50` (an audited read).
2. The same reads while 200 connections send bad keys to `POST /v1/auth/token` without pause,
   from 50 loopback addresses (127.0.0.11-60), each connection anew per attempt.
3. Ten seconds after the flood stops: the server's memory again.
Prints the read latency of 1 and 2, the flood's answers by status, and the server's resident
memory before, at its peak and after.
"""

import collections
import http.client
import json
import os
import subprocess
import sys
import threading
import time

url, pid = sys.argv[1], sys.argv[2]
host, port = url.removeprefix("http://").split(":")
port = int(port)


def memory(field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return 0


def reads(label):
    out = subprocess.run(
        ["wrk", "-t1", "-c4", "-d10s", "--latency", "-s", "bench/api.lua", url],
        env={**os.environ, "OP": "audit", "RUN": label},
        capture_output=True, text=True, check=True,
    ).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields


stop = threading.Event()
answers = collections.Counter()
lock = threading.Lock()


def flooder(n):
    source = (f"127.0.0.{11 + n % 50}", 0)
    body = json.dumps({"api_key": f"ck_{n:016x}_" + "0" * 64})
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection(host, port, timeout=30,
                                                    source_address=source)
            connection.request("POST", "/v1/auth/token", body,
                               {"Content-Type": "application/json"})
            status = connection.getresponse().status
            connection.close()
        except OSError as error:
            status = type(error).__name__
        with lock:
            answers[status] += 1


before = memory("VmRSS")
alone = reads("flood-alone")
threads = [threading.Thread(target=flooder, args=(n,), daemon=True) for n in range(200)]
for thread in threads:
    thread.start()
time.sleep(2)
during = reads("flood-during")
stop.set()
for thread in threads:
    thread.join()
peak = memory("VmHWM")
time.sleep(10)
after = memory("VmRSS")

print("| reads (GET /v1/audit, 4 connections) | requests/s | p50 | p99 | answers not 2xx |")
print("|---|---|---|---|---|")
for label, fields in (("alone", alone), ("during 200 bad-key exchanges", during)):
    errors = fields["requests"].split("errors: ")[1].split(" ")[0]
    print(f"| {label} | {fields['throughput'].split()[0]} | {fields['p50']} | {fields['p99']} | {errors} |")
print()
print("flood answers by status:", dict(sorted(answers.items(), key=str)))
print(f"server memory: {before} MiB before, peak {peak} MiB, {after} MiB 10 s after the flood")
