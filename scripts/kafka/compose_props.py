#!/usr/bin/env python3
"""server.properties for the test environment's Apache Kafka nodes, derived from
docker/docker-compose.kafka.yml by the apache/kafka image's own rule, so that what boots here is
the compose file's configuration:

  KAFKA_FOO_BAR -> foo.bar,  "___" -> "-",  "__" -> "_",  CLUSTER_ID formats the storage.

Only addresses change: every host:port the compose file names (kafka-N:19092, :9093, localhost:9092,
...) is mapped to 127.0.0.1 and a free port of this machine, and log.dirs to the run's temp dir.

  compose_props.py COMPOSE OUTDIR NODES

NODES 3 writes OUTDIR/node-{1,2,3}/server.properties from the three services. NODES 1 writes one
node from the first service, with the quorum cut down to that node and every replication factor and
min.insync.replicas set to 1 (one node cannot hold three replicas). Prints shell assignments:
CLUSTER_ID, BOOTSTRAP (the EXTERNAL listeners) and NODE_IDS.
"""
import os
import re
import socket
import sys


def parse_services(path):
    """The `environment:` map of every service, from the compose file's plain block style (the only
    style the file uses; anything else is an error rather than a guess)."""
    services, current, in_env, env_indent = {}, None, False, None
    in_services = False
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if indent == 0:
            in_services = text == "services:"
            current, in_env = None, False
            continue
        if not in_services:
            continue
        if indent == 2 and text.endswith(":"):
            current, in_env = text[:-1], False
            services[current] = {}
            continue
        if current is None:
            continue
        if indent == 4:
            in_env = text == "environment:"
            env_indent = None
            continue
        if in_env:
            if env_indent is None:
                env_indent = indent
            if indent != env_indent:
                continue
            m = re.fullmatch(r'([A-Z0-9_]+):\s*(?:"([^"]*)"|(\S.*))', text)
            if not m:
                sys.exit(f"compose_props: cannot read environment line: {text!r}")
            services[current][m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return services


def prop_name(env):
    name = env[len("KAFKA_"):].lower()
    return name.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


_held = []  # bound until this script exits, so the kernel never hands out one port twice


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def main():
    compose, outdir, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    services = {k: v for k, v in parse_services(compose).items() if "KAFKA_NODE_ID" in v}
    names = sorted(services, key=lambda s: int(services[s]["KAFKA_NODE_ID"]))[:count]
    if len(names) < count:
        sys.exit(f"compose_props: {compose} defines {len(names)} Kafka nodes, {count} wanted")
    cluster = {services[n]["CLUSTER_ID"] for n in names}
    if len(cluster) != 1:
        sys.exit("compose_props: the nodes disagree on CLUSTER_ID")

    # Every (host, port) the compose file mentions for a node, mapped to a loopback port.
    ports = {}  # (service, container port) -> host port

    def port_for(service, port):
        key = (service, port)
        if key not in ports:
            ports[key] = free_port()
        return ports[key]

    def service_of(host, owner):
        # "kafka-2" names a service; "" (bind all) and "localhost" mean the node itself.
        return owner if host in ("", "localhost") else host

    def map_listeners(value, owner):
        out = []
        for item in value.split(","):
            m = re.fullmatch(r"(\w+)://([^:]*):(\d+)", item.strip())
            if not m:
                sys.exit(f"compose_props: unexpected listener {item!r}")
            name, host, port = m.groups()
            out.append(f"{name}://127.0.0.1:{port_for(service_of(host, owner), int(port))}")
        return ",".join(out)

    def map_voters(value):
        out = []
        for item in value.split(","):
            m = re.fullmatch(r"(\d+)@([^:]+):(\d+)", item.strip())
            node, host, port = m.groups()
            if host not in names:
                continue  # single node: the quorum is that node alone
            out.append(f"{node}@127.0.0.1:{port_for(host, int(port))}")
        return ",".join(out)

    bootstrap = []
    for name in names:
        env = services[name]
        node_dir = os.path.join(outdir, f"node-{env['KAFKA_NODE_ID']}")
        os.makedirs(node_dir, exist_ok=True)
        props = {}
        for key, value in env.items():
            if not key.startswith("KAFKA_"):
                continue
            props[prop_name(key)] = value
        props["listeners"] = map_listeners(props["listeners"], name)
        props["advertised.listeners"] = map_listeners(props["advertised.listeners"], name)
        props["controller.quorum.voters"] = map_voters(props["controller.quorum.voters"])
        props["log.dirs"] = os.path.join(node_dir, "data")
        if count == 1:
            for key in list(props):
                if key.endswith("replication.factor"):
                    props[key] = "1"
                if key.endswith("min.isr") or key == "min.insync.replicas":
                    props[key] = "1"
        with open(os.path.join(node_dir, "server.properties"), "w", encoding="utf-8") as f:
            f.write(f"# derived from {os.path.basename(compose)} service {name}; addresses mapped to loopback\n")
            for key in sorted(props):
                f.write(f"{key}={props[key]}\n")
        ext = [l for l in props["advertised.listeners"].split(",") if l.startswith("EXTERNAL://")]
        bootstrap.append(ext[0][len("EXTERNAL://"):])
    print(f"CLUSTER_ID={cluster.pop()}")
    print(f"BOOTSTRAP={','.join(bootstrap)}")
    print(f"NODE_IDS='{' '.join(services[n]['KAFKA_NODE_ID'] for n in names)}'")


if __name__ == "__main__":
    main()
