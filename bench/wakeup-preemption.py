#!/usr/bin/env python3
"""Reads a scheduler trace taken during a paced load and prints, for each thread name the load generator's pacer woke,
how often that wakeup preempted the pacer on the spot.

Usage:
  perf record -a -e sched:sched_switch -e sched:sched_wakeup -o sched.data -- sleep 2   # while a paced load runs
  perf script -i sched.data -F cpu,comm,tid,time,event,trace | bench/wakeup-preemption.py [WAKER]

WAKER is the waking thread's name, "load pacer" (fileproxy-bench load --rate) unless given.

The pacer sends a request and goes on to sleep until its next one is due. When the cache's thread it wakes preempts it
instead (the pacer's next switch on that CPU leaves it runnable), the cache answers while the pacer still waits to run
there, and the kernel wakes the generator's receiving thread on the other CPU: on a guest whose idle vCPUs halt, that
costs tens of µs (docs/BENCHMARKS.md, "The paced p50 and wakeup preemption").
"""
import re
import signal
import sys
from collections import Counter

EVENT = re.compile(r"\s*(?P<comm>\S.*?)\s+\d+\s+\[(?P<cpu>\d+)\]\s+[\d.]+:\s+(?P<event>\S+):\s*(?P<trace>.*)")
WAKEE = re.compile(r"comm=(?P<comm>.*?) pid=\d+")
SWITCH = re.compile(r"prev_comm=(?P<comm>.*?) prev_pid=\d+ .*prev_state=(?P<state>\S+) ==>")


def main() -> int:
    if len(sys.argv) > 2 or sys.stdin.isatty():
        print(__doc__.strip(), file=sys.stderr)
        return 2
    waker = sys.argv[1] if len(sys.argv) == 2 else "load pacer"
    woken = {}  # CPU -> the wakee's name, until the CPU's next switch
    wakeups, preempted = Counter(), Counter()
    for line in sys.stdin:
        event = EVENT.match(line)
        if not event:
            continue
        cpu = event["cpu"]
        if event["event"].endswith("sched_wakeup") and event["comm"] == waker:
            woken[cpu] = WAKEE.search(event["trace"])["comm"]
        elif event["event"].endswith("sched_switch") and cpu in woken:
            wakee = woken.pop(cpu)
            switch = SWITCH.search(event["trace"])
            wakeups[wakee] += 1
            preempted[wakee] += switch["comm"] == waker and switch["state"].startswith("R")
    if not wakeups:
        print(f"no wakeup by a thread named {waker!r} in the trace", file=sys.stderr)
        return 1
    for wakee, count in wakeups.most_common():
        print(f"{wakee}: woken {count} times by {waker}, preempted it {preempted[wakee]} times "
              f"({preempted[wakee] / count:.0%})")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
