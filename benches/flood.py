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
import socket
import sys
import time

from loadlib import Server, query, rss_kib, wire

WINDOW = 128


def main():
    binary, arg = sys.argv[1], sys.argv[2]
    seconds = float(arg[:-1]) if arg.endswith("s") else None
    names = 100_000_000 if seconds is not None else int(arg)
    extra = sys.argv[3] if len(sys.argv) > 3 else ""
    srv = Server(binary, extra)
    dns, server = srv.dns, srv.proc
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
        gauges = srv.metrics("cutoff_cache_bytes", "cutoff_cache_entries")
        print(" ".join(gauges))
        print(f"names={sent} answered={answered} secs={took:.1f} "
              f"rss_start={start / 1024:.1f}MiB rss_peak={peak / 1024:.1f}MiB rss_end={end / 1024:.1f}MiB")
    finally:
        srv.stop()


main()
