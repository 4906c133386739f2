#!/usr/bin/env python3
"""Wait until a Kafka cluster is ready for clients: it answers a Metadata request listing at
least N brokers, and hands out idempotent producer ids.

  metadata_wait.py HOST:PORT[,HOST:PORT...] N SECONDS

Speaks the Kafka protocol directly (Metadata v4, all topics; InitProducerId v1 without a
transactional id, which is what every idempotent producer asks first: a fresh cluster answers
COORDINATOR_LOAD_IN_PROGRESS until its producer-id blocks are allocated, and librdkafka logs a
warning per retry). Exits 0 once both succeed, 1 when SECONDS pass first.
"""
import socket
import struct
import sys
import time


CLIENT = b"kts-testenv"


def request(host, port, api_key, version, body):
    """One request/response round trip; returns the response after its correlation id."""
    header = struct.pack(">hhih", api_key, version, 7, len(CLIENT)) + CLIENT
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", recv(s, 4))[0]
        data = recv(s, size)
    if struct.unpack(">i", data[:4])[0] != 7:
        raise OSError("unexpected correlation id")
    return data[4:]


def brokers(host, port):
    # Metadata v4: topics = null (all), allow_auto_topic_creation = false. Response: throttle
    # time, then the brokers array's length.
    data = request(host, port, 3, 4, struct.pack(">ib", -1, 0))
    return struct.unpack(">ii", data[:8])[1]


def producer_id_ready(host, port):
    # InitProducerId v1: transactional_id = null, transaction_timeout_ms. Response: throttle
    # time, error code (0 = a producer id was allocated).
    data = request(host, port, 22, 1, struct.pack(">hi", -1, 60000))
    return struct.unpack(">ih", data[:6])[1] == 0


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
                if brokers(host, int(port)) >= want and producer_id_ready(host, int(port)):
                    sys.exit(0)
            except (OSError, struct.error):
                pass
        time.sleep(0.2)
    sys.exit(1)


if __name__ == "__main__":
    main()
