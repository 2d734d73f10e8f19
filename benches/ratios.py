#!/usr/bin/env python3
"""Turns criterion's results into the ratios of BENCHMARKS.md.

Reads the median of each benchmark from target/criterion/*/new/estimates.json
(written by `cargo bench`), prints every median and the table of targets.

    python3 benches/ratios.py                      # the latest run
    python3 benches/ratios.py --save run1.json     # ... and keep its medians
    python3 benches/ratios.py --combine run1.json run2.json run3.json
                                                   # the median of several runs

Only the standard library is used.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

CRITERION = Path(__file__).resolve().parent.parent / "target" / "criterion"


def latest_medians():
    """Benchmark id -> median time in nanoseconds, from the latest run."""
    medians = {}
    for estimates in CRITERION.glob("**/new/estimates.json"):
        bench = estimates.parent.parent.relative_to(CRITERION).as_posix()
        with open(estimates) as f:
            medians[bench] = json.load(f)["median"]["point_estimate"]
    return medians


def combine(files):
    runs = []
    for name in files:
        with open(name) as f:
            runs.append(json.load(f))
    ids = set().union(*runs)
    return {i: statistics.median(r[i] for r in runs if i in r) for i in sorted(ids)}


def ratio(m, a, b):
    if a in m and b in m and m[b] > 0:
        return m[a] / m[b]
    return None


# (description, numerator, denominator, how the ratio compares with the
# target, the target). A ratio is numerator time / denominator time unless
# noted; for throughput it is computed from the times per call.
TARGETS = [
    ("closed breaker call vs recloser (sync)", "breaker_closed_call/steadfast",
     "breaker_closed_call/recloser", "<=", 1.0),
    ("closed breaker call vs recloser (async call)", "breaker_closed_call_async/steadfast",
     "breaker_closed_call_async/recloser", "<=", 1.0),
    ("closed breaker vs failsafe consecutive-failures (sync)", "breaker_closed_call/steadfast",
     "breaker_closed_call/failsafe_consecutive_failures", "<=", 1.0),
    ("closed breaker vs failsafe default policy (sync)", "breaker_closed_call/steadfast",
     "breaker_closed_call/failsafe_default_policy", "<=", 1.0),
    ("retry first-try success vs bare call", "retry_first_try_success/steadfast",
     "retry_first_try_success/bare_call", "<=", 1.1),
    ("retry first-try success vs backon", "retry_first_try_success/steadfast",
     "retry_first_try_success/backon", "<=", 1.0),
    ("retry first-try success vs tokio-retry2", "retry_first_try_success/steadfast",
     "retry_first_try_success/tokio_retry2", "<=", 1.0),
    ("timeout (ready at once) vs tokio::time::timeout", "timeout_ready_at_once/steadfast",
     "timeout_ready_at_once/tokio_time_timeout", "<=", 1.1),
    ("timeout (waits once) vs tokio::time::timeout", "timeout_waits_once/steadfast",
     "timeout_waits_once/tokio_time_timeout", "<=", 1.1),
    ("save: throughput vs raw write+fsync", "checkpoint_save/raw_write_fsync",
     "checkpoint_save/steadfast_local_fs", ">=", 0.9),
    ("save: throughput vs raw write+SHA-256+fsync", "checkpoint_save/raw_write_sha256_fsync",
     "checkpoint_save/steadfast_local_fs", ">=", 0.9),
    ("load+verify: throughput vs raw read+SHA-256", "checkpoint_load_verify/raw_read_sha256",
     "checkpoint_load_verify/steadfast_local_fs", ">=", 0.9),
]


def report(m):
    print("## Medians (ns)\n")
    for bench in sorted(m):
        print(f"{bench:70} {m[bench]:14.2f}")
    print("\n## Targets\n")
    print("| what | ratio | target | met |")
    print("|---|---|---|---|")
    for what, a, b, op, target in TARGETS:
        r = ratio(m, a, b)
        if r is None:
            print(f"| {what} | not measured | {op} {target} | - |")
            continue
        met = r <= target if op == "<=" else r >= target
        print(f"| {what} | {r:.2f} | {op} {target} | {'yes' if met else 'NO'} |")
    for closed in ("breaker_closed_call", "breaker_closed_call_async"):
        a, b = f"{closed}/steadfast", f"{closed}/bare_call"
        if a in m and b in m:
            extra = m[a] - m[b]
            print(f"| {closed}: ns above a bare call | {extra:.1f} ns | < 10 ns | "
                  f"{'yes' if extra < 10 else 'NO'} |")
    for n in (2, 16):
        # Each iteration is one call per thread: throughput = n / time.
        scaling = {}
        for who in ("steadfast", "bare_call"):
            one = f"breaker_throughput/{who}/1_threads"
            many = f"breaker_throughput/{who}/{n}_threads"
            if one in m and many in m:
                scaling[who] = (n / m[many]) / (1 / m[one])
        if "steadfast" not in scaling:
            print(f"| breaker throughput, {n} threads vs 1 | not measured | | |")
            continue
        speedup = scaling["steadfast"]
        target = 1.5 if n == 2 else None
        met = "" if target is None else ("yes" if speedup >= target else "NO")
        print(f"| breaker throughput, {n} threads vs 1 | {speedup:.2f}x | "
              f"{'>= 1.5x' if target else 'reported'} | {met} |")
        if "bare_call" in scaling:
            bare = scaling["bare_call"]
            print(f"| bare calls (no breaker), {n} threads vs 1: the machine's own scaling "
                  f"| {bare:.2f}x | reported | |")
            print(f"| breaker scaling / bare scaling, {n} threads | {speedup / bare:.2f} "
                  f"| reported (1.0: the breaker costs no scaling) | |")
    for hb in ("health_heartbeat/fixed_timeout_one_member",
               "health_heartbeat/fixed_timeout_rotating"):
        if hb in m:
            print(f"| {hb} | {m[hb]:.0f} ns | <= 100 ns | {'yes' if m[hb] <= 100 else 'NO'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", help="write the latest medians to this JSON file")
    parser.add_argument("--combine", nargs="+", help="median of the runs saved in these files")
    args = parser.parse_args()
    if args.combine:
        medians = combine(args.combine)
    else:
        medians = latest_medians()
        if args.save:
            with open(args.save, "w") as f:
                json.dump(medians, f, indent=1, sort_keys=True)
    if not medians:
        sys.exit("no criterion results under target/criterion: run `cargo bench` first")
    report(medians)


if __name__ == "__main__":
    main()
