#!/usr/bin/env python3
"""Deletes the JetStream streams whose names start with PREFIX, speaking the
NATS protocol directly (no client library needed).

    bench/nats_streams.py delete PREFIX [URL]   URL default nats://127.0.0.1:4222
"""
import json
import socket
import sys
from urllib.parse import urlparse


class Nats:
    def __init__(self, url):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=10)
        self.buf = b""
        self.line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\nSUB _bench_reply.* 1\r\n')
        self.n = 0

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the NATS server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def body(self, size):
        while len(self.buf) < size + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def request(self, subject, payload=b""):
        self.n += 1
        reply = f"_bench_reply.{self.n}"
        self.sock.sendall(f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                parts = line.split()
                data = self.body(int(parts[-1]))
                if parts[1].decode() == reply:
                    return json.loads(data)
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def stream_names(self):
        names, offset = [], 0
        while True:
            r = self.request("$JS.API.STREAM.NAMES", json.dumps({"offset": offset}).encode())
            got = r.get("streams") or []
            names += got
            offset += len(got)
            if not got or offset >= r.get("total", 0):
                return names


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "delete" or not sys.argv[2]:
        sys.exit(__doc__)
    prefix = sys.argv[2]
    nats = Nats(sys.argv[3] if len(sys.argv) > 3 else "nats://127.0.0.1:4222")
    for name in nats.stream_names():
        if name.startswith(prefix):
            nats.request(f"$JS.API.STREAM.DELETE.{name}")


if __name__ == "__main__":
    main()
