"""Shared pieces of the load scripts in benches/ (flood.py, attack.py):
a loopback upstream in a child process, `cutoff serve` started on free
loopback ports, DNS queries as bytes, the server's RSS and metrics.
Loopback only; every child is stopped by `Server.stop`.
"""
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request


def upstream(ports, ttl):
    """Answers every query with one A record (192.0.2.1) and `ttl`."""
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
        record = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">I", ttl) + b"\x00\x04\xc0\x00\x02\x01"
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


def wire(labels):
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\x00"


def query(i, name, qtype=1):
    return (struct.pack(">H", i & 0xFFFF) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            + name + struct.pack(">HH", qtype, 1))


def query_edns(i, name):
    """A? with an OPT record (so stale answers carry EDE 3)."""
    return (struct.pack(">H", i & 0xFFFF) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01"
            + name + b"\x00\x01\x00\x01" + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")


def rcode(reply):
    return reply[3] & 0x0F if len(reply) >= 4 else -1


def has_ede(reply, code):
    """Whether the reply's bytes hold EDE option 15 with `code`."""
    return b"\x00\x0f" in reply and struct.pack(">H", code) in reply[reply.find(b"\x00\x0f"):]


class Server:
    """`cutoff serve` on free loopback ports with its own upstream."""

    def __init__(self, binary, extra="", ttl=3600, prefix=()):
        self.ports = multiprocessing.Queue()
        self.up = multiprocessing.Process(target=upstream, args=(self.ports, ttl), daemon=True)
        self.up.start()
        self.uport = self.ports.get()
        self.dns = free_port(socket.SOCK_DGRAM)
        self.admin = free_port(socket.SOCK_STREAM)
        self.config = os.path.join(tempfile.mkdtemp(), "cutoff.yaml")
        with open(self.config, "w") as f:
            f.write(f'listen: ["127.0.0.1:{self.dns}"]\nupstreams: ["udp://127.0.0.1:{self.uport}"]\n')
            f.write(f'http: "127.0.0.1:{self.admin}"\n{extra}\n')
        self.proc = subprocess.Popen([*prefix, binary, "serve", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.5)
        for _ in range(50):
            time.sleep(0.1)
            try:
                c.sendto(query(0, wire([b"warm", b"test"])), ("127.0.0.1", self.dns))
                c.recvfrom(4096)
                break
            except OSError:
                pass
        c.close()

    def kill_upstream(self):
        """A dead upstream whose port is closed (ICMP unreachable: fails at once)."""
        self.up.terminate()
        self.up.join(timeout=5)

    def silence_upstream(self):
        """A dead upstream that never answers (SIGSTOP: queries time out)."""
        os.kill(self.up.pid, signal.SIGSTOP)

    def metrics(self, *prefixes):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=10).read().decode()
        return [l for l in body.splitlines() if l.startswith(prefixes)]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.up.is_alive():
            self.up.kill()
