"""The YCSB-B and YCSB-A tables of the bench/ scripts (durable.sh,
replicated.sh), from the load generator's --json reports.

    python3 bench/ycsb_table.py WORK ROUNDS WHAT TARGET=LABEL...

reads WORK/TARGET-{b,a}-ROUND.json for every target and round, and prints,
per workload, one row per target: median ops/s, the ratio to the first
target, every round's ops/s, median GET/PUT p50 and p99, and the bad reads
and errors summed. WHAT goes into each table's heading.
"""
import json
import statistics
import sys

work, rounds, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
targets = [arg.split("=", 1) for arg in sys.argv[4:]]
med = statistics.median
for w in ("b", "a"):
    print(f"\n### YCSB-{w.upper()} ({what}; median of {rounds} rounds)\n")
    print("| target | ops/s | vs first | rounds (M ops/s) | GET p50 µs | GET p99 µs | PUT p50 µs | PUT p99 µs | bad reads / errors |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    base = None
    for t, label in targets:
        rows = []
        for i in range(1, rounds + 1):
            with open(f"{work}/{t}-{w}-{i}.json") as f:
                r = json.load(f)
            lat = r["latency_us"]
            rows.append((r["throughput_ops_s"], lat["get"]["p50"], lat["get"]["p99"], lat["put"]["p50"],
                         lat["put"]["p99"], r["bad_reads"], r["errors"]))
        cols = list(zip(*rows))
        ops = med(cols[0])
        base = base or ops
        print(f"| {label} | {ops:,.0f} | {ops / base:.2f}× | {' / '.join(f'{x / 1e6:.2f}' for x in cols[0])} | "
              f"{med(cols[1]):,.0f} | {med(cols[2]):,.0f} | {med(cols[3]):,.0f} | {med(cols[4]):,.0f} | "
              f"{sum(cols[5])} / {sum(cols[6])} |")
