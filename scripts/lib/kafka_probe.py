#!/usr/bin/env python3
"""Health probe for a Kafka-protocol broker: sends a Metadata request (v1) and
prints the brokers it advertises. Standard library only, so the stack script can
check the broker before any Rust is built. Exit 0 when at least one broker answers."""
import socket
import struct
import sys


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        buf += chunk
    return buf


def read_string(data, pos):
    (length,) = struct.unpack_from(">h", data, pos)
    pos += 2
    if length < 0:
        return None, pos
    return data[pos:pos + length].decode("utf-8", "replace"), pos + length


def probe(host, port, timeout):
    client_id = b"lockstep-stack-probe"
    # Metadata v1: api_key 3, api_version 1; topics = null (-1) means "all topics".
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", read_exact(sock, 4))
        data = read_exact(sock, size)
    (correlation,) = struct.unpack_from(">i", data, 0)
    if correlation != 7:
        raise ValueError(f"unexpected correlation id {correlation}")
    (count,) = struct.unpack_from(">i", data, 4)
    pos = 8
    brokers = []
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", data, pos)
        host_name, pos = read_string(data, pos + 4)
        (broker_port,) = struct.unpack_from(">i", data, pos)
        _rack, pos = read_string(data, pos + 4)
        brokers.append(f"{node_id}@{host_name}:{broker_port}")
    return brokers


def main():
    if len(sys.argv) != 2 or ":" not in sys.argv[1]:
        print("usage: kafka_probe.py HOST:PORT", file=sys.stderr)
        return 64
    host, port = sys.argv[1].rsplit(":", 1)
    try:
        brokers = probe(host, int(port), timeout=3.0)
    except (OSError, ValueError, struct.error) as exc:
        print(f"no metadata from {sys.argv[1]}: {exc}", file=sys.stderr)
        return 1
    if not brokers:
        print(f"{sys.argv[1]} answered metadata with no brokers", file=sys.stderr)
        return 1
    print(" ".join(brokers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
