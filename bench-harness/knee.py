#!/usr/bin/env python3
"""Latency against load (issue 19's knee): `bench-harness raw` once at full speed for the peak
produce MB/s, then at fixed rates of 25/50/75% of that peak, each with a fresh broker, and a
table of client-side produce latency (from each request's scheduled send time) next to the
broker's produce stage p50/p99 (from /metrics).

Usage: knee.py HARNESS OUT_DIR [raw arguments, e.g. --broker-cpus 0 --load-cpus 1 --acks -1]
"""

import json
import subprocess
import sys
from pathlib import Path

FRACTIONS = (0.25, 0.50, 0.75)
STAGES = ("queue_wait", "append", "flush_wait", "sync_wait", "response_write")


def raw(harness: str, out: Path, name: str, extra: list[str]) -> dict:
    output = out / f"{name}.json"
    command = [harness, "raw", "--start-broker", *extra, "--output", str(output)]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(output.read_text())


def row(label: str, report: dict) -> str:
    produce = report["produce"]
    mb_s = produce["bytes"] / 1e6 / produce["seconds"]
    stages = {s["stage"]: s for s in produce["stages"]}
    cells = [label, f"{mb_s:.1f}",
             f"{produce['latency_p50_us'] / 1000:.2f} / {produce['latency_p99_us'] / 1000:.2f}"]
    for stage in STAGES:
        s = stages.get(stage)
        cells.append("-" if s is None else f"{s['p50_us'] / 1000:.2f} / {s['p99_us'] / 1000:.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    harness, out, extra = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    peak = raw(harness, out, "peak", extra)
    peak_mb_s = peak["produce"]["bytes"] / 1e6 / peak["produce"]["seconds"]
    rows = [row("peak", peak)]
    for fraction in FRACTIONS:
        rate = peak_mb_s * fraction
        report = raw(harness, out, f"rate-{int(fraction * 100)}",
                     [*extra, "--rate-mb", f"{rate:.1f}"])
        rows.append(row(f"{int(fraction * 100)}% ({rate:.0f} MB/s)", report))
    header = ["load", "produce MB/s", "client p50 / p99 ms",
              *(f"{stage} p50 / p99 ms" for stage in STAGES)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
