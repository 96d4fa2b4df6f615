#!/usr/bin/env python3
"""Bounded attack runs against `cutoff serve` on loopback, for the issue 15
figures in docs/performance.md. Each starts BINARY with its own upstream
(benches/loadlib.py) and prints what it counted.

    python3 benches/attack.py BINARY stale N
        N names cached (TTL 1); the upstream silenced (SIGSTOP) and every
        name asked twice, then the upstream killed (port closed) and every
        name asked again: answered stale (NOERROR, EDE 3), SERVFAIL, or
        nothing, per round.
    python3 benches/attack.py BINARY ratelimit SECONDS [PPS]
        Client A (127.0.0.5) floods blocked names for SECONDS (as fast as
        one socket sends, or at most PPS a second) while client B
        (127.0.0.6) asks about 20 a second; B's answers, with rate_limit on
        and off.
    python3 benches/attack.py BINARY admin N
        Under `prlimit --nofile=4096`: N unique-name UDP queries and 50 TCP
        queries before, then 4,100 idle and 300 slowloris admin connections
        held open, then the same queries again (new names) while they are.

Every loop is bounded in count and time; every child is stopped at the end.
"""
import multiprocessing
import os
import resource
import socket
import struct
import sys
import time

from loadlib import Server, has_ede, query, query_edns, rcode, wire


def window(dns, packets, size=64, wait=3.0, src="127.0.0.1"):
    """Sends `packets` (IDs 0..n-1) with at most `size` unanswered; the
    replies by ID (missing: no reply within `wait` of the last send)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(wait)
    replies, sent, out = {}, 0, 0
    while sent < len(packets) or out > 0:
        while out < size and sent < len(packets):
            s.sendto(packets[sent], ("127.0.0.1", dns))
            sent += 1
            out += 1
        try:
            r, _ = s.recvfrom(4096)
        except socket.timeout:
            break
        replies[struct.unpack(">H", r[:2])[0]] = r
        out -= 1
    s.close()
    return replies


def stale(binary, n):
    srv = Server(binary, "upstream_timeout: 1s\ncache: {max_ttl: 1}", ttl=3600)
    try:
        names = [wire([b"s%d" % i, b"stale", b"test"]) for i in range(n)]
        warm = window(srv.dns, [query_edns(i, nm) for i, nm in enumerate(names)])
        print(f"warm: {len(warm)}/{n} answered")
        time.sleep(2)  # every answer expires (max_ttl 1)
        # Silent first (timeouts), then gone (port closed), each for a round.
        for round_, how in ((1, "silent"), (2, "silent"), (3, "killed")):
            if how == "silent" and round_ == 1:
                srv.silence_upstream()
            if how == "killed":
                srv.kill_upstream()
            began = time.time()
            r = window(srv.dns, [query_edns(i, nm) for i, nm in enumerate(names)], wait=5.0)
            st = sum(1 for b in r.values() if rcode(b) == 0 and has_ede(b, 3))
            sf = sum(1 for b in r.values() if rcode(b) == 2)
            print(f"upstream {how}, round {round_}: {n} asked, {st} stale (NOERROR, EDE 3), "
                  f"{sf} SERVFAIL, {n - len(r)} unanswered, {time.time() - began:.1f}s")
        print(" ".join(srv.metrics("cutoff_cache_stale_answers_total")))
    finally:
        srv.stop()


def flood(dns, seconds, pps, counter):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.5", 0))
    s.setblocking(False)
    q = query(7, wire([b"s05", b"upd", b"kaspersky", b"com"]))
    began = time.time()
    end, sent = began + seconds, 0
    while time.time() < end and sent < 20_000_000:
        if pps and sent > pps * (time.time() - began):
            time.sleep(0.001)
            continue
        for _ in range(64):
            try:
                s.sendto(q, ("127.0.0.1", dns))
                sent += 1
            except BlockingIOError:
                break
        try:
            while True:
                s.recv(4096)
        except BlockingIOError:
            pass
    counter.value = sent


def ratelimit(binary, seconds, pps=0):
    policy = "lists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: r, lists: [k], action: block}\n"
    for label, extra in (("on (qps 100, burst 200)", "rate_limit: {qps: 100, burst: 200}\n"),
                         ("off", "")):
        srv = Server(binary, policy + extra)
        try:
            sent = multiprocessing.Value("q", 0)
            a = multiprocessing.Process(target=flood, args=(srv.dns, seconds, pps, sent))
            a.start()
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            b.bind(("127.0.0.6", 0))
            b.settimeout(1.0)
            asked = answered = 0
            end = time.time() + seconds
            while time.time() < end and asked < 100_000:
                b.sendto(query(asked, wire([b"s05", b"upd", b"kaspersky", b"com"])), ("127.0.0.1", srv.dns))
                asked += 1
                try:
                    while True:
                        r, _ = b.recvfrom(4096)
                        if struct.unpack(">H", r[:2])[0] == (asked - 1) & 0xFFFF:
                            answered += 1
                            break
                except socket.timeout:
                    pass
                time.sleep(0.05)
            a.join(timeout=seconds + 10)
            print(f"rate_limit {label}: A sent {sent.value} in {seconds}s "
                  f"({sent.value / seconds:.0f}/s); B answered {answered}/{asked}")
            print(" ".join(srv.metrics("cutoff_rate_limited_total")))
        finally:
            srv.stop()


def dns_round(srv, tag, n):
    """`n` unique uncached names over UDP, and 50 over TCP one at a time."""
    names = [wire([b"%s%d" % (tag, i), b"abuse", b"test"]) for i in range(n)]
    udp = window(srv.dns, [query(i, nm) for i, nm in enumerate(names)], size=32)
    ok_udp = sum(1 for r in udp.values() if rcode(r) == 0)
    ok_tcp = 0
    for i in range(50):
        try:
            with socket.create_connection(("127.0.0.1", srv.dns), timeout=3) as t:
                q = query(i, wire([b"%st%d" % (tag, i), b"abuse", b"test"]))
                t.sendall(struct.pack(">H", len(q)) + q)
                head = t.recv(2)
                if len(head) == 2 and rcode(t.recv(4096)) == 0:
                    ok_tcp += 1
        except OSError:
            pass
    return ok_udp, ok_tcp


def admin(binary, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    srv = Server(binary, "max_inflight: 3000", prefix=("prlimit", "--nofile=4096"))
    held = []
    try:
        if srv.proc.poll() is not None:
            print(f"serve exited with {srv.proc.returncode} under --nofile=4096")
            return
        u, t = dns_round(srv, b"b", n)
        print(f"before: UDP {u}/{n} answered, TCP {t}/50")
        began = time.time()
        for i in range(4_400):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.admin))
            held.append(s)
        time.sleep(2)
        for s in held[4_100:]:  # slowloris: a request line, then a byte at a time
            try:
                s.send(b"GET /metrics HTTP/1.1\r\nX")
            except OSError:
                pass
        print(f"opened {len(held)} admin connections in {time.time() - began:.1f}s "
              f"(4,100 idle, 300 slowloris)")
        u, t = dns_round(srv, b"d", n)
        print(f"during: UDP {u}/{n} answered, TCP {t}/50, server alive: {srv.proc.poll() is None}")
        fds = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
        print(f"server descriptors in use during: {fds} (limit 4096)")
    finally:
        for s in held:
            s.close()
        srv.stop()


def main():
    binary, what = sys.argv[1], sys.argv[2]
    args = [int(a) for a in sys.argv[3:5]]
    {"stale": stale, "ratelimit": ratelimit, "admin": admin}[what](binary, *args)


main()
