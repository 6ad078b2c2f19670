#!/usr/bin/env python3
"""SQLite helpers for bench/events.sh.

    events_sqlite.py pace RATE SECONDS PAD FILE...
        Publishes RATE events a second in all, round-robin over the
        publishers' store FILEs, for SECONDS: one INSERT INTO silo_outbox
        per transaction, on a fixed schedule (late events go at once, so
        the rate holds). Prints how many committed.
    events_sqlite.py latency FILE
        p50, p99 and max in ms of received_at - time over FILE's inbox
        (the warm-up event left out).
"""
import sqlite3
import sys
import time


def pace(rate, seconds, pad, files):
    conns = []
    for f in files:
        c = sqlite3.connect(f, timeout=30, isolation_level=None)
        c.execute("PRAGMA busy_timeout = 30000")
        conns.append(c)
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * interval
        if due - start >= seconds:
            break
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        c = conns[n % len(conns)]
        c.execute(
            "INSERT INTO silo_outbox (type, key, payload) VALUES ('bench.event', ?, json_object('n', ?, 'pad', ?))",
            (str(n % 1000), 100000 + n % 900000, pad),
        )
        n += 1
    for c in conns:
        c.close()
    print(n)


def latency(path):
    c = sqlite3.connect(path, timeout=30)
    ms = sorted(
        r[0]
        for r in c.execute(
            "SELECT (julianday(received_at) - julianday(time)) * 86400000.0 FROM silo_inbox WHERE key <> 'warmup'"
        )
    )
    if not ms:
        print("- - -")
        return

    def pct(p):
        # Linear interpolation, as PostgreSQL's percentile_cont.
        x = p * (len(ms) - 1)
        lo = int(x)
        hi = min(lo + 1, len(ms) - 1)
        return ms[lo] + (ms[hi] - ms[lo]) * (x - lo)

    print(f"{pct(0.5):.1f} {pct(0.99):.1f} {ms[-1]:.1f}")


def main():
    args = sys.argv[1:]
    if len(args) >= 5 and args[0] == "pace":
        pace(float(args[1]), float(args[2]), args[3], args[4:])
    elif len(args) == 2 and args[0] == "latency":
        latency(args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
