#!/usr/bin/env python3
"""Import benchmark (issue 10, goal 4), two comparisons, rounds interleaved:

1. `ccfs import rows.csv` into a fresh data directory, against `sqlite3 .import` of the same
   rows into ccfs's own records table (its unique key and its export index, WAL,
   synchronous=FULL) in a fresh database file; times converted to the unix seconds ccfs
   stores, so both load the same values into the same table shape. Goal: ratio <= 1.0, and
   ccfs's peak RSS <= 64 MiB. Peak RSS is each command's own VmHWM (cb.run_watched).
2. The import API: `ccfs serve` on a fresh data directory, the rows sent in 10,000-record
   batches over signed HTTPS (auth-v2, SPEC section 3), one connection, one batch at a time;
   the time is the sum of the requests' round trips (signing on the client is left out).
   The "baseline" is the goal itself, 100,000 records/s: base_s = records / 100,000.

Usage: import.py --ccfs /abs/ccfs --work /abs/scratch --rounds N [--quick]
stdout: one JSON object per comparison (see bench/ contract); stderr: progress.
"""

import csv
import datetime
import json
import shutil
import sys
import time
import zoneinfo
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import ccfsbench as cb  # noqa: E402

APP = "0123456789abcdef0123456789abcdef"
TIMEZONE = "Asia/Shanghai"
BATCH = 10_000
COLUMNS = [
    "id", "developer_id", "account_id", "agent_id", "service_no", "skill_id", "call_id",
    "begin_time", "end_time", "op_type", "op_object", "op_cause", "media_type", "vdn_id",
    "cc_id", "agent_type", "phone_no", "callIn_out", "location_id", "logon_sn",
    "skillInfo_sn",
]
REPO = Path(__file__).resolve().parents[2]
# The migration that last (re)creates the records table: its table is ccfs's own.
MIGRATION = REPO / "crates/ccfs-server/migrations/sqlite/0006_records_clustered.sql"


class Load(NamedTuple):
    """One load of the CSV: wall seconds, peak RSS in MiB, rows stored."""

    s: float
    rss_mib: float
    rows: int

    def __str__(self):
        """The load as the progress line shows it."""
        return f"{self.s:.2f} s ({self.rows / self.s:.0f} rows/s, {self.rss_mib:.1f} MiB)"


class ApiLoad(NamedTuple):
    """One load through the import API: seconds of requests, records stored, server peak RSS."""

    s: float
    records: int
    rss_mib: float | None

    def __str__(self):
        """The load as the progress line shows it."""
        return (f"{self.records} records in {self.s:.2f} s: {self.records / self.s:.0f} "
                f"records/s (server {self.rss_mib or 0:.1f} MiB)")


def records_schema():
    """The records table with its keys, as ccfs's migrations leave it: stored in export order
    (primary key developer_id, begin_time, id), unique on (developer_id, id)."""
    text = MIGRATION.read_text()
    start = text.index("CREATE TABLE records (")
    end = text.index("WITHOUT ROWID;", start) + len("WITHOUT ROWID;")
    return text[start:end]


def make_rows(binary, work: Path, quick) -> Path:
    """The CSV, once per work directory: about 1M rows (50k with --quick)."""
    agents, days = (20, 25) if quick else (250, 40)
    path = work / f"rows-{'quick' if quick else 'full'}.csv"
    if not path.exists():
        cb.log(f"making {path} ({agents} agents x {days} days)")
        tmp = path.with_name(path.name + ".tmp")
        cb.Ccfs(binary, work / "sim-data").run(
            "simulate", "--app", APP, "--timezone", TIMEZONE, "--agents", str(agents),
            "--days", str(days), "--start", "2024-01-01", "--format", "csv", "--out", str(tmp))
        tmp.replace(path)
    return path


def unix_rows(rows_csv: Path) -> Path:
    """The same rows with the times as unix seconds (what ccfs stores), for sqlite3."""
    out = rows_csv.with_name(rows_csv.name + ".unix")
    if out.exists():
        return out
    tz = zoneinfo.ZoneInfo(TIMEZONE)
    cache = {}

    def unix(local):
        """Unix seconds of a local time of the developer's zone (memoised: times repeat)."""
        v = cache.get(local)
        if v is None:
            dt = datetime.datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
            v = cache[local] = str(int(dt.timestamp()))
        return v

    tmp = out.with_name(out.name + ".tmp")
    with open(rows_csv, newline="") as f, open(tmp, "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n")
        for row in csv.reader(f):
            if row == COLUMNS:
                continue
            row[7], row[8] = unix(row[7]), unix(row[8])
            w.writerow(row)
    tmp.replace(out)
    return out


def count_rows(path: Path) -> int:
    """The number of records in a CSV (its header row aside)."""
    with open(path, newline="") as f:
        return sum(1 for row in csv.reader(f) if row != COLUMNS)


def fresh_dir(work: Path, name: str) -> Path:
    """An empty directory `name` under work (emptied when it exists)."""
    d = work / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def ccfs_import(binary, work: Path, rows_csv: Path, n: int) -> Load:
    """`ccfs import` of the CSV into a fresh data directory; exits unless all n rows are stored."""
    ccfs = cb.Ccfs(binary, fresh_dir(work, "import-data"))
    ccfs.create_app(app_id=APP, timezone_name=TIMEZONE)
    wall, rss, out = cb.run_watched([binary, "import", "--json", str(rows_csv)], env=ccfs.env)
    inserted = json.loads(out.decode().strip().splitlines()[-1])["inserted"]
    if inserted != n:
        raise SystemExit(f"ccfs import stored {inserted} of {n} rows")
    return Load(wall, rss, inserted)


def sqlite_import(sqlite3, work: Path, schema: str, unix_csv: Path, n: int) -> Load:
    """`sqlite3 .import` of the rows into a fresh copy of ccfs's table; exits unless all n load."""
    db = fresh_dir(work, "sqlite-data") / "fresh.db"
    script = (f"PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n{schema}\n"
              f".import --csv {unix_csv} records\nSELECT count(*) FROM records;\n")
    wall, rss, out = cb.run_watched([sqlite3, str(db)], stdin_data=script.encode())
    loaded = int(out.decode().split()[-1])
    if loaded != n:
        raise SystemExit(f"sqlite3 .import loaded {loaded} of {n} rows")
    return Load(wall, rss, loaded)


# ---- the import API ------------------------------------------------------------------------


def api_import(binary, work: Path, batches) -> ApiLoad:
    """Sends the batches to a fresh server; exits unless every record is stored."""
    ccfs = cb.Ccfs(binary, fresh_dir(work, "api-data"), env={"RUST_LOG": "warn"})
    ccfs.create_app(app_id=APP, timezone_name=TIMEZONE)
    ak, sk = ccfs.create_app(timezone_name=None, roles=("ingest",))
    sent = sum(len(b) for b in batches)
    with ccfs.serve() as server:
        client = cb.Client(server, ak, sk)
        spent, n = 0.0, 0
        for records in batches:
            call = client.prepare("importAgentOprInfoData",
                                  {"records": records, "onConflict": "fail"})
            t = time.perf_counter()
            answer = client.send(*call)
            spent += time.perf_counter() - t
            n += answer["inserted"]
        client.close()
        rss = server.peak_rss_mib()
    if n != sent:
        raise SystemExit(f"import API stored {n} of {sent} records")
    return ApiLoad(spent, n, rss)


def api_batches(rows_csv: Path, count: int):
    """The first `count` batches of BATCH records of the CSV, as the API's JSON records."""
    batches, batch = [], []
    with open(rows_csv, newline="") as f:
        for row in csv.reader(f):
            if row == COLUMNS:
                continue
            batch.append(dict(zip(COLUMNS, row)))
            if len(batch) == BATCH:
                batches.append(batch)
                batch = []
                if len(batches) == count:
                    break
    return batches


def main():
    """Times the file import against sqlite3 in turns, then the import API."""
    a = cb.case_args("Import: ccfs import against sqlite3 .import; the import API.",
                     lambda p: p.set_defaults(rounds=3))
    rows_csv = make_rows(a.ccfs, a.work, a.quick)
    n = count_rows(rows_csv)
    cb.log(f"{rows_csv}: {n} rows")

    # 1. ccfs import against sqlite3 .import.
    subjects = {"ccfs import": lambda _r: ccfs_import(a.ccfs, a.work, rows_csv, n)}
    sqlite3 = cb.tool("sqlite3")
    if sqlite3 is None:
        cb.log("the file import is measured without its baseline")
    else:
        unix_csv, schema = unix_rows(rows_csv), records_schema()
        subjects["sqlite3 .import"] = lambda _r: sqlite_import(sqlite3, a.work, schema, unix_csv, n)
    loads = cb.interleave(a.rounds, subjects)
    ours = [x.s for x in loads["ccfs import"]]
    base = [x.s for x in loads.get("sqlite3 .import", [])]
    o, b = cb.median(ours), cb.median(base)
    ratio = cb.ratio_of_rounds(ours, base)
    rss = max(x.rss_mib for x in loads["ccfs import"])
    base_rss = max((x.rss_mib for x in loads.get("sqlite3 .import", [])), default=None)
    cb.emit(f"import {n}-row CSV", "ccfs import", "sqlite3 .import", o, b, ratio,
            "<= 1.0, peak RSS <= 64 MiB", bool(ratio is not None and ratio <= 1.0 and rss <= 64),
            rss, base_rss,
            f"rows/s {n / o:.0f} vs {f'{n / b:.0f}' if b else 'n/a'}; "
            f"ccfs peak RSS {rss:.1f} MiB (goal <= 64)")

    # 2. The import API, 10,000-record batches.
    batches = api_batches(rows_csv, 3 if a.quick else 20)
    sent = sum(len(b) for b in batches)
    api = cb.interleave(a.rounds, {"import API": lambda _r: api_import(a.ccfs, a.work, batches)})
    o = cb.median([x.s for x in api["import API"]])
    base_s = sent / 100_000
    cb.emit(f"import API, {len(batches)} batches of {BATCH} records", "ccfs serve",
            "goal: 100,000 records/s", o, base_s, o / base_s, "<= 1.0", o <= base_s,
            max(x.rss_mib or 0 for x in api["import API"]), None,
            f"rate {sent / o:.0f} records/s (goal >= 100000); time = sum of request round trips")


if __name__ == "__main__":
    main()
