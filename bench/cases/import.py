#!/usr/bin/env python3
"""Import benchmark (issue 10, goal 4), three comparisons, rounds interleaved:

1. `ccfs import rows.csv` into a fresh data directory, against `sqlite3 .import` of the same
   rows into ccfs's own records table (its unique key and its export index, WAL,
   synchronous=FULL) in a fresh database file; times converted to the unix seconds ccfs
   stores, so both load the same values into the same table shape. Goal: ratio <= 1.0, and
   ccfs's peak RSS <= 64 MiB.
2. The import API: `ccfs serve` on a fresh data directory, the rows sent in 10,000-record
   batches over signed HTTPS (auth-v2, SPEC section 3), one connection, one batch at a time;
   the time is the sum of the requests' round trips (signing on the client is left out).
   The "baseline" is the goal itself, 100,000 records/s: base_s = records / 100,000.

Usage: import.py --ccfs /abs/ccfs --work /abs/scratch --rounds N [--quick]
stdout: one JSON object per comparison (see bench/ contract); stderr: progress.
"""

import argparse
import csv
import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import zoneinfo

APP = "0123456789abcdef0123456789abcdef"
TIMEZONE = "Asia/Shanghai"
BATCH = 10_000
COLUMNS = [
    "id", "developer_id", "account_id", "agent_id", "service_no", "skill_id", "call_id",
    "begin_time", "end_time", "op_type", "op_object", "op_cause", "media_type", "vdn_id",
    "cc_id", "agent_type", "phone_no", "callIn_out", "location_id", "logon_sn",
    "skillInfo_sn",
]
# The migration that last (re)creates the records table: its table is ccfs's own.
MIGRATION = "crates/ccfs-server/migrations/sqlite/0006_records_clustered.sql"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run_rss(argv, env=None, stdin_data=None):
    """Runs a command; returns (wall seconds, peak RSS MiB, stdout).

    The peak is the child's VmHWM, read every 10 ms while it runs: wait4's ru_maxrss would
    include this (much larger) Python process, whose high-water mark a child inherits across
    fork and exec."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0.0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            v = vm_hwm_mib(p.pid)
            if v:
                peak[0] = max(peak[0], v)
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = p.communicate(stdin_data)
    wall = time.perf_counter() - t
    done.set()
    watcher.join()
    if p.returncode != 0:
        raise SystemExit("%s failed (%s): %s" % (" ".join(argv[:3]), p.returncode,
                                                 err.decode(errors="replace")[-2000:]))
    return wall, peak[0], out


def find_repo():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def sqlite3_tool():
    path = shutil.which("sqlite3")
    if path:
        return path
    if os.environ.get("CCFS_BENCH_INSTALL") == "1":
        subprocess.run(["apt-get", "install", "-y", "sqlite3"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return shutil.which("sqlite3")
    return None


def records_schema(repo):
    """The records table with its keys, as ccfs's migrations leave it: stored in export order
    (primary key developer_id, begin_time, id), unique on (developer_id, id)."""
    text = open(os.path.join(repo, MIGRATION)).read()
    start = text.index("CREATE TABLE records (")
    end = text.index("WITHOUT ROWID;", start) + len("WITHOUT ROWID;")
    return text[start:end]


def make_rows(ccfs, work, quick):
    """The CSV, once per work directory: about 1M rows (50k with --quick)."""
    agents, days = (20, 25) if quick else (250, 40)
    path = os.path.join(work, "rows-%s.csv" % ("quick" if quick else "full"))
    if not os.path.exists(path):
        log("making %s (%d agents x %d days)" % (path, agents, days))
        env = dict(os.environ, CCFS_DATA_DIR=os.path.join(work, "sim-data"))
        run_rss([ccfs, "simulate", "--app", APP, "--timezone", TIMEZONE, "--agents",
                 str(agents), "--days", str(days), "--start", "2024-01-01", "--format", "csv", "--out",
                 path + ".tmp"], env=env)
        os.replace(path + ".tmp", path)
    return path


def unix_rows(rows_csv):
    """The same rows with the times as unix seconds (what ccfs stores), for sqlite3."""
    out = rows_csv + ".unix"
    if os.path.exists(out):
        return out
    tz = zoneinfo.ZoneInfo(TIMEZONE)
    cache = {}

    def unix(local):
        v = cache.get(local)
        if v is None:
            dt = datetime.datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
            v = cache[local] = str(int(dt.timestamp()))
        return v

    with open(rows_csv, newline="") as f, open(out + ".tmp", "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n")
        for row in csv.reader(f):
            if row == COLUMNS:
                continue
            row[7], row[8] = unix(row[7]), unix(row[8])
            w.writerow(row)
    os.replace(out + ".tmp", out)
    return out


def count_rows(path):
    with open(path, newline="") as f:
        return sum(1 for row in csv.reader(f) if row != COLUMNS)


def fresh_dir(work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def create_app(ccfs, data, *extra):
    env = dict(os.environ, CCFS_DATA_DIR=data)
    _, _, out = run_rss([ccfs, "app", "create", "--name", "bench"] + list(extra), env=env)
    return json.loads(out)


def ccfs_import(ccfs, work, rows_csv):
    data = fresh_dir(work, "import-data")
    create_app(ccfs, data, "--app-id", APP, "--timezone", TIMEZONE)
    env = dict(os.environ, CCFS_DATA_DIR=data)
    wall, rss, out = run_rss([ccfs, "import", "--json", rows_csv], env=env)
    summary = json.loads(out.decode().strip().splitlines()[-1])
    return wall, rss, summary["inserted"]


def sqlite_import(sqlite3, work, schema, unix_csv):
    d = fresh_dir(work, "sqlite-data")
    script = ("PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n%s\n"
              ".import --csv %s records\nSELECT count(*) FROM records;\n"
              % (schema, unix_csv))
    wall, rss, out = run_rss([sqlite3, os.path.join(d, "fresh.db")],
                             stdin_data=script.encode())
    return wall, rss, int(out.decode().split()[-1])


# ---- the import API ------------------------------------------------------------------------


def norm(data):
    return urllib.parse.quote_from_bytes(data, safe="")


def hmac_hex(key, message):
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def authorization(ak, sk, path, body, headers):
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
    signed = sorted((k.lower(), v) for k, v in headers.items())
    names = ";".join(k for k, _ in signed)
    prefix = "auth-v2/%s/%s/%s" % (ak, ts, names)
    canonical = "POST\n%s\n%s\n" % (path, names)
    canonical += "\n".join(sorted(norm(k.encode()) + ":" + norm(v.strip().encode())
                                  for k, v in signed)) + "\n"
    canonical += norm(body)
    return prefix + "/" + hmac_hex(hmac_hex(sk, prefix), canonical)


def start_server(ccfs, data):
    env = dict(os.environ, CCFS_DATA_DIR=data, RUST_LOG="warn")
    p = subprocess.Popen([ccfs, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    if "listening on" not in line:
        p.kill()
        raise SystemExit("ccfs serve did not start: %r" % line)
    url = line.split("listening on", 1)[1].strip()
    return p, urllib.parse.urlsplit(url).netloc


def vm_hwm_mib(pid):
    """The peak RSS of a running process, MiB; None once it has exited."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def api_import(ccfs, work, batches):
    """Sends the batches to a fresh server; returns (seconds of requests, records, RSS MiB)."""
    data = fresh_dir(work, "api-data")
    create_app(ccfs, data, "--app-id", APP, "--timezone", TIMEZONE)
    cti = create_app(ccfs, data, "--role", "ingest")
    ak, sk = cti["appId"], cti["secretKey"]
    server, host = start_server(ccfs, data)
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(data, "tls", "cert.pem"))
        if hasattr(ssl, "VERIFY_X509_STRICT"):
            ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
        conn = http.client.HTTPSConnection(host, context=ctx, timeout=300)
        path = "/CCFS/resource/ccfs/importAgentOprInfoData"
        spent, n = 0.0, 0
        for records in batches:
            body = json.dumps({"request": {"version": "2.0"},
                               "msgBody": {"records": records, "onConflict": "fail"}},
                              separators=(",", ":")).encode()
            headers = {"Content-Length": str(len(body)),
                       "Content-Type": "application/json;charset=UTF-8", "Host": host}
            headers["Authorization"] = authorization(ak, sk, path, body, headers)
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            answer = r.read()
            spent += time.perf_counter() - t
            a = json.loads(answer)
            if a.get("resultCode") != "0":
                raise SystemExit("import API: %s" % answer[:500])
            n += a["resultData"]["inserted"]
        conn.close()
        rss = vm_hwm_mib(server.pid)
    finally:
        server.terminate()
        server.wait()
    return spent, n, rss


def api_batches(rows_csv, count):
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


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ccfs", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    repo = find_repo()

    rows_csv = make_rows(args.ccfs, args.work, args.quick)
    n = count_rows(rows_csv)
    log("%s: %d rows" % (rows_csv, n))

    # 1. ccfs import against sqlite3 .import.
    sqlite3 = sqlite3_tool()
    if sqlite3 is None:
        log("sqlite3 not installed (set CCFS_BENCH_INSTALL=1 to install it): "
            "the file import is measured without its baseline")
    else:
        unix_csv = unix_rows(rows_csv)
        schema = records_schema(repo)
    ours, base, ratios, ours_rss, base_rss = [], [], [], [], []
    for r in range(args.rounds):
        w, rss, inserted = ccfs_import(args.ccfs, args.work, rows_csv)
        if inserted != n:
            raise SystemExit("ccfs import stored %d of %d rows" % (inserted, n))
        ours.append(w)
        ours_rss.append(rss)
        msg = "round %d: ccfs import %.2f s (%.0f rows/s, %.1f MiB)" % (r + 1, w, n / w, rss)
        if sqlite3:
            bw, brss, loaded = sqlite_import(sqlite3, args.work, schema, unix_csv)
            if loaded != n:
                raise SystemExit("sqlite3 .import loaded %d of %d rows" % (loaded, n))
            base.append(bw)
            base_rss.append(brss)
            ratios.append(w / bw)
            msg += "; sqlite3 .import %.2f s (%.0f rows/s, %.1f MiB)" % (bw, n / bw, brss)
        log(msg)
    o, b, rss = median(ours), median(base), max(ours_rss)
    ratio = median(ratios)
    print(json.dumps({
        "case": "import %d-row CSV" % n, "ours": "ccfs import", "baseline": "sqlite3 .import",
        "ours_s": round(o, 3), "base_s": round(b, 3) if b else None,
        "ratio": round(ratio, 3) if ratio else None, "goal": "<= 1.0, peak RSS <= 64 MiB",
        "met": bool(ratio is not None and ratio <= 1.0 and rss <= 64),
        "ours_rss_mib": round(rss, 1),
        "base_rss_mib": round(max(base_rss), 1) if base_rss else None,
        "notes": "rows/s %.0f vs %s; ccfs peak RSS %.1f MiB (goal <= 64)"
                 % (n / o, "%.0f" % (n / b) if b else "n/a", rss),
    }), flush=True)

    # 2. The import API, 10,000-record batches.
    count = 3 if args.quick else 20
    batches = api_batches(rows_csv, count)
    sent = sum(len(b) for b in batches)
    ours, rss_all = [], []
    for r in range(args.rounds):
        spent, inserted, rss = api_import(args.ccfs, args.work, batches)
        if inserted != sent:
            raise SystemExit("import API stored %d of %d records" % (inserted, sent))
        ours.append(spent)
        rss_all.append(rss or 0)
        log("round %d: import API %d records in %.2f s: %.0f records/s (server %.1f MiB)"
            % (r + 1, sent, spent, sent / spent, rss or 0))
    o = median(ours)
    base_s = sent / 100_000
    print(json.dumps({
        "case": "import API, %d batches of %d records" % (len(batches), BATCH),
        "ours": "ccfs serve", "baseline": "goal: 100,000 records/s",
        "ours_s": round(o, 3), "base_s": base_s, "ratio": round(o / base_s, 3),
        "goal": "<= 1.0", "met": o <= base_s,
        "ours_rss_mib": round(max(rss_all), 1), "base_rss_mib": None,
        "notes": "rate %.0f records/s (goal >= 100000); time = sum of request round trips"
                 % (sent / o),
    }), flush=True)


if __name__ == "__main__":
    main()
