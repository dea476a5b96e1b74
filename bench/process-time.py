#!/usr/bin/env python3
"""Runs one command and prints one JSON line: exit status, wall time, CPU time (user + system) and peak RSS.

Usage: bench/process-time.py COMMAND [ARGUMENT...]

For bench/run.sh's "as a user runs it" workload. /usr/bin/time reports the same figures but in hundredths of a
second, too coarse for a 4 KiB fetch that takes a few milliseconds; this times from just before the process is
spawned to just after it is reaped (wait4 gives its CPU time in microseconds). The peak RSS comes from
/usr/bin/time, which runs the command: a process's peak RSS counts that of whoever spawned it, and this script's
own (about 13 MiB) would hide a small client's. The command's standard output and error go where this script's go.
"""
import json
import os
import sys
import tempfile
import time


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("r") as rss:
        command = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *sys.argv[1:]]
        started = time.perf_counter()
        pid = os.posix_spawn(command[0], command, os.environ)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        peak = int(rss.read().split()[-1])
    print(json.dumps({
        "ok": code == 0,
        "exit": code,
        "wall_s": round(wall, 6),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 6),
        "rss_kib": peak,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
