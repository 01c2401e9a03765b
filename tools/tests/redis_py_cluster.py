"""redis-py's RedisCluster against a percore node: every command the RESP
door serves, pipelines, expiry with a short TTL, and CROSSSLOT.

Usage: redis_py_cluster.py HOST PORT   (run by tools/tests/redis_clients.rs)
"""

import sys
import time

from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, ResponseError


def check(cond, what):
    if not cond:
        raise SystemExit(f"redis-py: FAILED: {what}")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    rc = RedisCluster(host=host, port=port, decode_responses=True)
    check(len(rc.get_primaries()) == 2, f"two primaries, got {rc.get_primaries()}")
    rc.flushall()

    # Strings.
    check(rc.set("k", "v") is True, "set")
    check(rc.get("k") == "v", "get")
    check(rc.set("k", "w", nx=True) is None, "set nx on an existing key")
    check(rc.set("k", "w", xx=True, get=True) == "v", "set xx get")
    check(rc.setnx("n1", "x") is True and rc.setnx("n1", "y") is False, "setnx")
    check(rc.getset("n1", "z") == "x", "getset")
    check(rc.getdel("n1") == "z" and rc.get("n1") is None, "getdel")
    check(rc.mset({"{t}a": "1", "{t}b": "2"}) is True, "mset in one slot")
    check(rc.mget("{t}a", "{t}b", "{t}c") == ["1", "2", None], "mget")
    check(rc.msetnx({"{t}c": "3", "{t}a": "9"}) is False, "msetnx with an existing key")
    check(rc.append("s", "Hello") == 5 and rc.append("s", " World") == 11, "append")
    check(rc.strlen("s") == 11, "strlen")
    check(rc.getrange("s", 0, 4) == "Hello" and rc.getrange("s", -5, -1) == "World", "getrange")
    check(rc.setrange("s", 6, "Redis") == 11 and rc.get("s") == "Hello Redis", "setrange")
    check(rc.incr("c") == 1 and rc.incrby("c", 41) == 42, "incr/incrby")
    check(rc.decr("c") == 41 and rc.decrby("c", 40) == 1, "decr/decrby")
    check(abs(rc.incrbyfloat("f", 2.5) - 2.5) < 1e-9, "incrbyfloat")
    try:
        rc.incr("s")
        check(False, "incr of a non-integer must fail")
    except ResponseError as e:
        check("not an integer" in str(e), f"incr error text: {e}")

    # Keys.
    check(rc.exists("k", "s", "missing") == 2, "exists")
    check(rc.type("k") == "string" and rc.type("missing") == "none", "type")
    check(rc.delete("k") == 1 and rc.unlink("s") == 1, "delete/unlink")
    rc.set("e", "v")
    check(rc.expire("e", 100) is True and 98 <= rc.ttl("e") <= 100, "expire/ttl")
    check(rc.pexpire("e", 100_000) is True and 90_000 < rc.pttl("e") <= 100_000, "pexpire/pttl")
    check(rc.expireat("e", int(time.time()) + 100) is True, "expireat")
    check(rc.pexpireat("e", int(time.time() * 1000) + 100_000) is True, "pexpireat")
    check(rc.persist("e") is True and rc.ttl("e") == -1, "persist")
    check(rc.getex("e", ex=50) == "v" and 0 < rc.ttl("e") <= 50, "getex")

    # Expiry with a short TTL, through SET PX, SETEX and PSETEX.
    rc.set("short", "v", px=150)
    rc.setex("short2", 1, "v")
    rc.psetex("short3", 150, "v")
    check(rc.get("short") == "v", "a fresh key is there")
    time.sleep(1.3)
    check(rc.get("short") is None and rc.get("short2") is None and rc.exists("short3") == 0, "expired keys are gone")

    # Pipelines (grouped per node by the client).
    pipe = rc.pipeline()
    for i in range(200):
        pipe.set(f"p{i}", str(i))
    for i in range(200):
        pipe.get(f"p{i}")
    results = pipe.execute()
    check(results[:200] == [True] * 200, "pipelined sets")
    check(results[200:] == [str(i) for i in range(200)], "pipelined gets")

    # Whole-cluster commands.
    keys = set(rc.scan_iter(match="p*", count=50))
    check(keys == {f"p{i}" for i in range(200)}, f"scan_iter found {len(keys)} keys")
    check(rc.dbsize(target_nodes=RedisCluster.PRIMARIES) >= 200, "dbsize sums the nodes")
    check(rc.ping() is True, "ping")
    check(rc.execute_command("ECHO", "hi", target_nodes=rc.get_random_node()) == "hi", "echo")
    check(rc.client_setname("py") is True, "client setname")
    check(isinstance(rc.client_id(), (int, dict)), "client id")
    info = rc.info("keyspace")
    check(isinstance(info, dict), "info")
    check(rc.config_get("appendonly"), "config get")
    check(rc.keyslot("foo") == 12182, "keyslot")
    check(len(rc.cluster_slots()) == 2, "cluster slots")

    # CROSSSLOT: refused by the client for RedisCluster.mset, and by the
    # server when a node is asked directly.
    try:
        rc.mset({"a": "1", "b": "2"})
        check(False, "a multi-slot mset must be refused")
    except (RedisClusterException, ResponseError) as e:
        check("slot" in str(e).lower(), f"crossslot text: {e}")
    node = rc.get_node_from_key("a")
    try:
        node.redis_connection.execute_command("MSET", "a", "1", "b", "2")
        check(False, "the server must refuse a multi-slot MSET")
    except ResponseError as e:
        check("don't hash to the same slot" in str(e), f"server says {e}")

    rc.flushall()
    check(rc.dbsize(target_nodes=RedisCluster.PRIMARIES) == 0, "flushall empties every node")
    print("redis-py: all checks passed")


if __name__ == "__main__":
    main()
