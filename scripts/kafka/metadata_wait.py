#!/usr/bin/env python3
"""Wait until a Kafka cluster answers a Metadata request listing at least N brokers.

  metadata_wait.py HOST:PORT[,HOST:PORT...] N SECONDS

Speaks the Kafka protocol directly (Metadata v4, all topics): exits 0 once any bootstrap address
answers with N or more registered brokers, 1 when SECONDS pass first.
"""
import socket
import struct
import sys
import time


def brokers(host, port):
    client = b"kts-testenv"
    # header: api_key 3 (Metadata), version 4, correlation id, client id; body: topics = null
    # (all), allow_auto_topic_creation = false
    body = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv(s, 4))[0]
        data = recv(s, size)
    # correlation id, throttle_time_ms, then the brokers array's length
    corr, _throttle, count = struct.unpack(">iii", data[:12])
    return count if corr == 7 else 0


def recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def main():
    addrs = [a.rsplit(":", 1) for a in sys.argv[1].split(",")]
    want, limit = int(sys.argv[2]), float(sys.argv[3])
    deadline = time.time() + limit
    while time.time() < deadline:
        for host, port in addrs:
            try:
                if brokers(host, int(port)) >= want:
                    sys.exit(0)
            except (OSError, struct.error):
                pass
        time.sleep(0.2)
    sys.exit(1)


if __name__ == "__main__":
    main()
