#!/usr/bin/env python3
"""Export of N records of one developer (issue 10, goals 1 and 2).

Prepared once: a developer (Asia/Shanghai), N simulated records of one day (`ccfs simulate
--out`, about 100 per agent) imported with `ccfs import`, and a plain SQLite copy of the same
rows (same columns, an index on the window) for the ops script. Then rounds, interleaved:

  (a) ccfs: a fresh `ccfs serve` on that data directory, one signed generate for the whole
      day; timed from sending the generate to the callback's arrival at a local receiver.
      The server's peak RSS (VmHWM) is that of the whole process through the export.
  (b) the ops script a user would write: `sqlite3 -csv` of the same rows from the plain
      table, times formatted as ccfs writes them (the developer's offset), piped to
      `zip -6 x.zip -`.
  (c) single-core `gzip -6` of exactly ccfs's CSV bytes (the parts of the first round's zip,
      concatenated: the deflate floor of the same data).
  (d) `pigz -6 -p NPROC` of the same bytes, when installed (informational).

Rows: time vs (b), goal <= 0.5; vs (c), goal <= 1.0; vs (d), no goal; the zip's size vs
`zip -6` of the same CSV parts, goal <= 1.03; the server's peak RSS, goal <= 64 MiB.
`--big` (10M records) runs only (a), for the memory goal.
"""

import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import ccfsbench as cb  # noqa: E402

TIMEZONE = "Asia/Shanghai"
DAY = "2026-11-16"
RECORDS_PER_AGENT_DAY = 100  # about; see the simulator's model in README.md
RSS_GOAL_MIB = 64.0
COLUMNS = [
    "id", "developer_id", "account_id", "agent_id", "service_no", "skill_id", "call_id",
    "begin_time", "end_time", "op_type", "op_object", "op_cause", "media_type", "vdn_id",
    "cc_id", "agent_type", "phone_no", "call_in_out", "location_id", "logon_sn", "skill_info_sn",
]


def extra(p):
    p.add_argument("--records", type=int, help="records to export (default 1,000,000; --quick 50,000)")
    p.add_argument("--big", action="store_true", help="10,000,000 records, the memory check only")


def count_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


class Prepared:
    """The data directory, the developer and the plain copy."""

    def __init__(self, a, records: int):
        self.work = a.work
        self.data = a.work / "data"
        if self.data.exists():
            shutil.rmtree(self.data)
        self.ccfs = cb.Ccfs(a.ccfs, self.data)
        self.ak, self.sk = self.ccfs.create_app(timezone_name=TIMEZONE)
        agents = max(1, -(-records // RECORDS_PER_AGENT_DAY))
        rows = a.work / "rows.csv"
        cb.log(f"export: simulating {agents:,} agents on {DAY} (~{records:,} records)")
        self.ccfs.run(
            "simulate", "--app", self.ak, "--timezone", TIMEZONE, "--agents", str(agents),
            "--days", "1", "--start", DAY, "--out", str(rows),
        )
        cb.log("export: importing them")
        t = time.perf_counter()
        self.ccfs.run("import", str(rows))
        self.import_s = time.perf_counter() - t
        rows.unlink()
        begin = datetime.fromisoformat(f"{DAY} 00:00:00")
        self.begin = begin.strftime("%Y-%m-%d %H:%M:%S")
        self.end = (begin + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        zone = ZoneInfo(TIMEZONE)
        self.begin_epoch = int(begin.replace(tzinfo=zone).timestamp())
        self.end_epoch = int((begin + timedelta(days=1)).replace(tzinfo=zone).timestamp())
        # One fixed offset for the window (Asia/Shanghai has no DST): what the script would use.
        self.offset_s = int(begin.replace(tzinfo=zone).utcoffset().total_seconds())
        self.records = None

    def plain_copy(self, sqlite3: str) -> Path:
        """The same rows in a plain SQLite table, indexed on the window, as an ops team's own
        reporting database would hold them."""
        plain = self.work / "plain.db"
        plain.unlink(missing_ok=True)
        cols = ", ".join(COLUMNS)
        sql = (
            f"ATTACH '{self.data / 'ccfs.db'}' AS c;"
            f"CREATE TABLE records AS SELECT {cols} FROM c.records WHERE developer_id = '{self.ak}';"
            "CREATE INDEX records_window ON records (developer_id, begin_time, id);"
        )
        subprocess.run([sqlite3, str(plain), sql], check=True)
        return plain

    def ops_query(self) -> str:
        def t(c):
            return f"datetime({c}, 'unixepoch', '{self.offset_s:+d} seconds')"

        cols = [t(c) if c.endswith("_time") else c for c in COLUMNS]
        return (
            f"SELECT {', '.join(cols)} FROM records WHERE developer_id = '{self.ak}' "
            f"AND begin_time >= {self.begin_epoch} AND begin_time < {self.end_epoch} "
            "ORDER BY begin_time, id;"
        )


def ops_script(sqlite3, plain: Path, query: str, zip_, out: Path) -> str:
    """The ops script: the rows as CSV from the plain table, zipped from a pipe."""
    q = shlex.quote
    return f"{q(sqlite3)} -csv {q(str(plain))} {q(query)} | {q(zip_)} -q -6 {q(str(out))} -"


def ccfs_round(p: Prepared, receiver: cb.Receiver, timeout: float):
    """One export on a fresh server: (seconds, peak RSS MiB, server CPU s, status)."""
    with p.ccfs.serve() as server:
        client = cb.Client(server, p.ak, p.sk)
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        rid = client.generate(p.begin, p.end, receiver.url)
        arrived, _ = receiver.wait(rid, timeout)
        seconds = arrived - t0
        rss = server.peak_rss_mib()
        cpu = server.cpu_s() - cpu0
        status = client.status(rid)
        client.close()
    if status.get("state") != "succeeded":
        raise RuntimeError(f"export {rid}: {status}")
    return seconds, rss, cpu, status


def zip_path(p: Prepared, status: dict) -> Path:
    found = sorted((p.data / "files").rglob(status["agentOprInfoFileName"]))
    if not found:
        raise RuntimeError(f"the export file {status['agentOprInfoFileName']} is not in {p.data}/files")
    return found[-1]


def main():
    a = cb.case_args(__doc__.split("\n")[0], extra)
    records = a.records or (10_000_000 if a.big else 50_000 if a.quick else 1_000_000)
    label = f"export {count_label(records)} records"
    rounds = a.rounds
    timeout = max(120.0, records / 20_000)

    sqlite3 = zip_ = pigz = gzip = unzip = None
    if not a.big:
        sqlite3, zip_ = cb.tool("sqlite3"), cb.tool("zip")
        gzip, unzip = cb.tool("gzip"), cb.tool("unzip")
        pigz = cb.tool("pigz")
    p = Prepared(a, records)
    cb.log(f"export: imported in {p.import_s:.1f} s")
    plain = p.plain_copy(sqlite3) if sqlite3 else None
    receiver = cb.Receiver()

    ours, rss, cpu = [], [], []
    ops, ops_rss, gz, gz_rss, pz, pz_rss = [], [], [], [], [], []
    first_zip = csv_bytes = None
    ops_zip = a.work / "ops.zip"
    for r in range(rounds):
        s, m, c, status = ccfs_round(p, receiver, timeout)
        ours.append(s), rss.append(m), cpu.append(c)
        p.records = status["recordCount"]
        cb.log(f"export round {r + 1}/{rounds}: ccfs {s:.3f} s, peak RSS {m:.1f} MiB, CPU {c:.2f} s, "
               f"{status['recordCount']:,} records in {status['fileCount']} file(s)")
        path = zip_path(p, status)
        if first_zip is None:
            first_zip = a.work / "ccfs.zip"
            shutil.copyfile(path, first_zip)
            if unzip:
                csv_bytes = a.work / "ccfs.csv"
                with open(csv_bytes, "wb") as out:
                    subprocess.run([unzip, "-p", str(first_zip)], stdout=out, check=True)
        path.unlink()  # keeps the data directory small (a 10M-record zip is ~250 MB)
        if plain and zip_:
            ops_zip.unlink(missing_ok=True)
            script = ops_script(sqlite3, plain, p.ops_query(), zip_, ops_zip)
            s, m, _ = cb.run_timed(script, shell=True)
            ops.append(s), ops_rss.append(m)
            cb.log(f"export round {r + 1}/{rounds}: ops script {s:.3f} s")
        if csv_bytes and gzip:
            with open(a.work / "floor.gz", "wb") as out:
                s, m, _ = cb.run_timed([gzip, "-6", "-c", str(csv_bytes)], stdout=out)
            gz.append(s), gz_rss.append(m)
            cb.log(f"export round {r + 1}/{rounds}: gzip -6 {s:.3f} s")
        if csv_bytes and pigz:
            with open(a.work / "floor.pigz.gz", "wb") as out:
                s, m, _ = cb.run_timed([pigz, "-6", "-p", str(cb.nproc()), "-c", str(csv_bytes)], stdout=out)
            pz.append(s), pz_rss.append(m)
    receiver.close()

    n = p.records or records
    ours_s, peak = cb.median(ours), max(rss)
    rate = f"records/s {n / ours_s:,.0f}"
    cpu_note = f"server CPU s/export {cb.median(cpu):.2f}"
    if a.big:
        cb.emit(f"{label}: peak RSS", "ccfs serve", f"budget {RSS_GOAL_MIB:.0f} MiB", ours_s, None,
                peak / RSS_GOAL_MIB, "<= 1.0", peak <= RSS_GOAL_MIB, peak, None,
                f"{n:,} records; {rate}; {cpu_note}; max VmHWM over {rounds} round(s)")
        return

    if ops:
        ratio = cb.ratio_of_rounds(ours, ops)
        cb.emit(f"{label} vs ops script", "ccfs serve, generate to callback",
                "sqlite3 -csv | zip -6", ours_s, cb.median(ops), ratio, "<= 0.5",
                cb.bound_met(ratio, 0.5), peak, max(ops_rss),
                f"{n:,} records; {rate} vs {n / cb.median(ops):,.0f}; {cpu_note}; "
                f"ops zip {ops_zip.stat().st_size:,} B; import took {p.import_s:.1f} s")
    if gz:
        ratio = cb.ratio_of_rounds(ours, gz)
        mb = csv_bytes.stat().st_size / 1e6
        cb.emit(f"{label} vs deflate floor", "ccfs serve, generate to callback",
                "gzip -6 (1 core) of ccfs's CSV", ours_s, cb.median(gz), ratio, "<= 1.0",
                cb.bound_met(ratio, 1.0), peak, max(gz_rss),
                f"CSV MB/s {mb / ours_s:.1f} vs {mb / cb.median(gz):.1f} ({mb:.1f} MB of CSV)")
    if pz:
        ratio = cb.ratio_of_rounds(ours, pz)
        cb.emit(f"{label} vs pigz", "ccfs serve, generate to callback",
                f"pigz -6 -p {cb.nproc()} of ccfs's CSV", ours_s, cb.median(pz), ratio, "none",
                None, peak, max(pz_rss), "informational: all cores on deflate alone")
    if first_zip and zip_ and unzip:
        parts = a.work / "parts"
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir()
        subprocess.run([unzip, "-q", str(first_zip), "-d", str(parts)], check=True)
        names = sorted(zipfile.ZipFile(first_zip).namelist())
        ref = a.work / "reference.zip"
        ref.unlink(missing_ok=True)
        subprocess.run([zip_, "-q", "-6", "-X", "-j", str(ref)] + [str(parts / x) for x in names], check=True)
        ours_b, ref_b = first_zip.stat().st_size, ref.stat().st_size
        ratio = ours_b / ref_b
        cb.emit(f"{label}: zip size", "ccfs zip", "zip -6 of the same CSV parts", None, None,
                ratio, "<= 1.03", ratio <= 1.03, None, None,
                f"bytes {ours_b:,} vs {ref_b:,}; {len(names)} part(s)")
        shutil.rmtree(parts)
    cb.emit(f"{label}: peak RSS", "ccfs serve", f"budget {RSS_GOAL_MIB:.0f} MiB", None, None,
            peak / RSS_GOAL_MIB, "<= 1.0", peak <= RSS_GOAL_MIB, peak, None,
            f"max VmHWM of the server over {rounds} export(s), start-up included")


if __name__ == "__main__":
    main()
