#!/usr/bin/env python3
"""Reads workload c's paced runs from results.jsonl files and prints, per rate, each system's pooled median p50 and
ours against the better of the other two round by round.

Usage: bench/paced-rounds.py bench/out/RUN/results.jsonl [...]

The report's paced rows take a system's median over a run's rounds, then over the runs. The systems take turns within
a round, seconds apart, so a round is also a fair pair; this prints both views of the same lines, as docs/BENCHMARKS.md
quotes them. In files written before paced lines carried their round, a run's rounds are taken in order.
"""
import json
import signal
import statistics
import sys


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    p50 = read(sys.argv[1:])
    for rate in sorted({key[0] for key in p50}):
        pooled = {}
        for (line_rate, _, system, _, _), value in p50.items():
            if line_rate == rate:
                pooled.setdefault(system, []).append(value)
        print(f"paced {rate}/s, p50 in µs, pooled median over {max(len(v) for v in pooled.values())} rounds: "
              + ", ".join(f"{s} {statistics.median(v):.1f}" for s, v in sorted(pooled.items())))
        ratios = []
        for (line_rate, path, system, run, round_), value in p50.items():
            others = [p50.get((rate, path, other, run, round_)) for other in ("nginx", "varnish")]
            if line_rate == rate and system == "ours" and None not in others:
                ratios.append(value / min(others))
        if ratios:
            print(f"  ours ÷ best of the round: median {statistics.median(ratios):.3f}, "
                  f"ours lower in {sum(r < 1 for r in ratios)} of {len(ratios)}")
    return 0


def read(paths):
    """Each paced line's p50 in µs, keyed by (rate, file, system, run, round)."""
    p50, seen = {}, {}
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for text in lines:
                line = json.loads(text)
                if line.get("type") == "load" and line.get("rate"):
                    key = (line["rate"], path, line["system"], line["run"])
                    seen[key] = seen.get(key, 0) + 1
                    p50[key + (line.get("round", seen[key]),)] = line["p50_ms"] * 1000
    return p50


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly, into head(1)
    sys.exit(main())
