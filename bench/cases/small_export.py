#!/usr/bin/env python3
"""Small exports: generate -> callback of a ~5,000-record export (issue 10, goal 5).

Prepared once: a developer, one day of 50 agents (about 5,000 records) imported. One `ccfs
serve` runs through the case, with a callback receiver on loopback. After a few warm-up exports
(not counted), each round sends one signed generate of that day (a fresh Idempotency-Key, so
each is a new job) and waits for its callback; the time is from sending the generate to the
callback's arrival. Interleaved with each round, the ops script on the same rows (`sqlite3
-csv | zip -6` from a plain copy) for comparison.

Rows: the median against the 50 ms budget (goal <= 1.0 of it); ccfs against the ops script
(informational).
"""

import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import ccfsbench as cb  # noqa: E402
from export import Prepared, ops_script  # noqa: E402

BUDGET_S = 0.050
WARM_UP = 3


def extra(p):
    p.add_argument("--generates", type=int, help="timed generates (default 30; --quick 10)")
    p.add_argument("--records", type=int, default=5000, help="records per export (default 5,000)")


def main():
    a = cb.case_args(__doc__.split("\n")[0], extra)
    n = a.generates or (10 if a.quick else max(30, a.rounds))
    sqlite3, zip_ = cb.tool("sqlite3"), cb.tool("zip")
    p = Prepared(a, a.records)
    plain = p.plain_copy(sqlite3) if sqlite3 else None
    receiver = cb.Receiver()
    ours, ops, ops_rss, cpu = [], [], [], []
    ops_zip = a.work / "ops.zip"
    with p.ccfs.serve() as server:
        client = cb.Client(server, p.ak, p.sk)

        def one():
            t0 = time.perf_counter()
            rid = client.generate(p.begin, p.end, receiver.url, idempotency_key=uuid.uuid4().hex)
            arrived, _ = receiver.wait(rid, 60)
            return arrived - t0, rid

        for _ in range(WARM_UP):
            one()
        cpu0 = server.cpu_s()
        for i in range(n):
            s, rid = one()
            ours.append(s)
            if plain and zip_:
                ops_zip.unlink(missing_ok=True)
                script = ops_script(sqlite3, plain, p.ops_query(), zip_, ops_zip)
                o, m, _ = cb.run_timed(script, shell=True)
                ops.append(o), ops_rss.append(m)
        cpu.append((server.cpu_s() - cpu0) / n)
        status = client.status(rid)
        rss = server.peak_rss_mib()
        client.close()
    receiver.close()
    records = status["recordCount"]
    ours_s = cb.median(ours)
    xs = sorted(ours)
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
    cb.log(f"small export: {records:,} records, median {ours_s * 1000:.1f} ms, "
           f"min {xs[0] * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms over {n}")
    cb.emit(f"small export {records:,} records, generate to callback", "ccfs serve",
            f"budget {BUDGET_S * 1000:.0f} ms", ours_s, BUDGET_S, ours_s / BUDGET_S, "<= 1.0",
            ours_s <= BUDGET_S, rss, None,
            f"{n} generates; min {xs[0] * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms; "
            f"server CPU ms/export {cpu[0] * 1000:.1f}")
    if ops:
        ratio = cb.ratio_of_rounds(ours, ops)
        cb.emit(f"small export {records:,} records vs ops script", "ccfs serve, generate to callback",
                "sqlite3 -csv | zip -6", ours_s, cb.median(ops), ratio, "none", None, rss, max(ops_rss),
                "informational")


if __name__ == "__main__":
    main()
