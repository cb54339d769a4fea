#!/usr/bin/env python3
"""Sums the durations auto_explain logged (bench/profile_run.sql) by statement.

    python3 bench/profile_sum.py <server log excerpt>

Prints, for the statements that took longest in all, the total time, how
many times each ran and the start of its text.
"""
import collections
import json
import re
import sys

lines = open(sys.argv[1]).read().split("\n")
totals = collections.defaultdict(lambda: [0, 0.0])
i = 0
while i < len(lines):
    m = re.search(r"duration: ([0-9.]+) ms\s+plan:", lines[i])
    if not m:
        i += 1
        continue
    j, plan = i + 1, []
    while j < len(lines) and lines[j].startswith("\t"):
        plan.append(lines[j][1:])
        j += 1
    try:
        text = json.loads("\n".join(plan)).get("Query Text", "")
    except ValueError:
        text = "?"
    key = " ".join(text.split())[:110]
    totals[key][0] += 1
    totals[key][1] += float(m.group(1))
    i = j
for key, (n, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:12]:
    print(f"{ms:8.1f} ms {n:4d}x  {key}")
