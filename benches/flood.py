#!/usr/bin/env python3
"""Bounded unique-name flood against `cutoff serve`, for the cache's memory
figures in docs/performance.md.

    python3 benches/flood.py BINARY NAMES [YAML]
    python3 benches/flood.py BINARY 600s [YAML]

Starts BINARY on loopback with its own upstream (a child process that
answers every query with one A record, TTL 3600), sends NAMES unique names
(uN.flood.test), or unique names for that many seconds (`600s`, at most
100,000,000 names), with at most 128 in flight, samples the server's VmRSS
and prints the cache gauges from /metrics. YAML is appended to the config.
Loopback only; every child is stopped at the end.
"""
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

WINDOW = 128


def upstream(ports):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    ports.put(s.getsockname()[1])
    while True:
        q, addr = s.recvfrom(4096)
        if len(q) < 17:
            continue
        i = 12
        while i < len(q) and q[i] != 0:
            i += 1 + q[i]
        qend = i + 5
        header = q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        record = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">I", 3600) + b"\x00\x04\xc0\x00\x02\x01"
        s.sendto(header + q[12:qend] + record, addr)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def query(i, name):
    return struct.pack(">H", i & 0xFFFF) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"


def wire(labels):
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\x00"


def main():
    binary, arg = sys.argv[1], sys.argv[2]
    seconds = float(arg[:-1]) if arg.endswith("s") else None
    names = 100_000_000 if seconds is not None else int(arg)
    extra = sys.argv[3] if len(sys.argv) > 3 else ""
    ports = multiprocessing.Queue()
    up = multiprocessing.Process(target=upstream, args=(ports,), daemon=True)
    up.start()
    uport = ports.get()
    dns, admin = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    config = os.path.join(tempfile.mkdtemp(), "cutoff.yaml")
    with open(config, "w") as f:
        f.write(f'listen: ["127.0.0.1:{dns}"]\nupstreams: ["udp://127.0.0.1:{uport}"]\n')
        f.write(f'http: "127.0.0.1:{admin}"\n{extra}\n')
    server = subprocess.Popen([binary, "serve", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.5)
        for _ in range(50):
            time.sleep(0.1)
            try:
                c.sendto(query(0, wire([b"warm", b"test"])), ("127.0.0.1", dns))
                c.recvfrom(4096)
                break
            except OSError:
                pass
        start = peak = rss_kib(server.pid)
        sent = answered = out = 0
        began = time.time()
        c.settimeout(1.0)
        while sent < names and (seconds is None or time.time() - began < seconds):
            while out < WINDOW and sent < names:
                name = wire([b"u%d" % sent, b"flood", b"test"])
                c.sendto(query(sent, name), ("127.0.0.1", dns))
                sent += 1
                out += 1
            try:
                c.recvfrom(4096)
                answered += 1
                out -= 1
            except socket.timeout:
                out = 0
            if sent % 20000 == 0:
                peak = max(peak, rss_kib(server.pid))
        while out > 0:
            try:
                c.recvfrom(4096)
                answered += 1
                out -= 1
            except socket.timeout:
                break
        took = time.time() - began
        time.sleep(6)  # the gauges are refreshed every few seconds
        end = rss_kib(server.pid)
        peak = max(peak, end)
        body = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
        gauges = [l for l in body.splitlines() if l.startswith(("cutoff_cache_bytes", "cutoff_cache_entries"))]
        print(" ".join(gauges))
        print(f"names={sent} answered={answered} secs={took:.1f} "
              f"rss_start={start / 1024:.1f}MiB rss_peak={peak / 1024:.1f}MiB rss_end={end / 1024:.1f}MiB")
    finally:
        server.terminate()
        server.wait(timeout=10)
        up.terminate()


main()
