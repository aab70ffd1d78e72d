//! The simulator's promises: determinism, closed sessions, no overlaps, time order, the
//! documented counts, and records that survive the export's CSV form.

use std::collections::{BTreeMap, HashMap, HashSet};

use ccfs_protocol::record::{csv_reader, RawRecord};
use jiff::civil::{date, Date};
use jiff::tz::TimeZone;

use super::*;

const APP: &str = "0123456789abcdef0123456789abcdef";

fn params(agents: u32, days: u32, start: Date, seed: u64) -> Params {
    Params {
        developer_id: APP.to_owned(),
        account_id: "acme01".to_owned(),
        // A zone with DST; the default start covers the autumn change (2024-10-27).
        tz: TimeZone::get("Europe/Berlin").expect("tz database"),
        start,
        days,
        agents,
        seed,
    }
}

fn run(agents: u32, days: u32, seed: u64) -> Vec<Record> {
    Simulation::new(params(agents, days, date(2024, 10, 26), seed))
        .expect("valid params")
        .collect()
}

/// The records of each agent, in output order.
fn by_agent(records: &[Record]) -> BTreeMap<&str, Vec<&Record>> {
    let mut m: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        m.entry(r.agent_id.as_str()).or_default().push(r);
    }
    m
}

#[test]
fn same_seed_same_output_other_seed_other_output() {
    let a = run(5, 2, 7);
    assert!(!a.is_empty());
    assert!(a == run(5, 2, 7), "same seed, other output");
    assert!(a != run(5, 2, 8), "other seed, same output");
    // An agent-day does not depend on the other days simulated with it, and the number of
    // agents changes only who takes an internal transfer.
    let same_days = |other: &[Record]| -> Vec<Record> {
        let sessions: HashSet<&str> = a.iter().map(|r| r.logon_sn.as_str()).collect();
        other
            .iter()
            .filter(|r| sessions.contains(r.logon_sn.as_str()))
            .cloned()
            .map(|mut r| {
                if r.op_type == "45" {
                    r.op_object.clear();
                }
                r
            })
            .collect()
    };
    assert!(
        same_days(&run(5, 4, 7)) == same_days(&a),
        "more days changed a day"
    );
    assert!(
        same_days(&run(9, 2, 7)) == same_days(&a),
        "more agents changed a day"
    );
}

#[test]
fn sessions_open_and_close_with_one_logon_sn() {
    let records = run(20, 3, 1);
    for (agent, recs) in by_agent(&records) {
        let mut open: Option<&str> = None;
        let mut sessions = HashSet::new();
        for r in recs {
            match (r.op_type.as_str(), open) {
                ("1", None) => {
                    assert!(
                        sessions.insert(r.logon_sn.as_str()),
                        "{agent}: logon_sn reused"
                    );
                    open = Some(&r.logon_sn);
                }
                ("1", Some(_)) => panic!("{agent}: sign-in inside a session"),
                (_, None) => panic!("{agent}: {} outside a session", r.op_type),
                ("0", Some(sn)) => {
                    assert_eq!(r.logon_sn, sn, "{agent}: sign-out of another session");
                    assert_eq!(r.op_cause, "258");
                    open = None;
                }
                (_, Some(sn)) => assert_eq!(r.logon_sn, sn),
            }
        }
        assert!(open.is_none(), "{agent}: session left open");
        assert_eq!(sessions.len(), 3, "{agent}: one session a day");
    }
}

#[test]
fn states_of_an_agent_never_overlap_and_are_in_time_order() {
    let records = run(20, 3, 2);
    for (agent, recs) in by_agent(&records) {
        for w in recs.windows(2) {
            assert!(w[0].begin_time <= w[0].end_time, "{agent}: {:?}", w[0]);
            assert!(
                w[0].end_time <= w[1].begin_time,
                "{agent}: {} ends after {} begins",
                w[0].id,
                w[1].id
            );
        }
    }
}

#[test]
fn ids_are_unique_and_calls_share_their_call_id() {
    let records = run(30, 2, 3);
    let mut ids = HashSet::new();
    for r in &records {
        assert!(ids.insert(r.id.as_str()), "duplicate id {}", r.id);
        assert!(r.id.len() <= 32 && r.call_id.len() <= 25 && r.logon_sn.len() <= 25);
    }
    // A call's records are consecutive records of one agent; an answered call starts with
    // talking and ends with exactly one wrap-up.
    let mut calls: Vec<(&str, Vec<&Record>)> = Vec::new();
    for r in records.iter().filter(|r| r.call_id != "-1") {
        match calls.last_mut() {
            Some((id, recs)) if *id == r.call_id => recs.push(r),
            _ => calls.push((&r.call_id, vec![r])),
        }
    }
    let distinct: HashSet<&str> = calls.iter().map(|c| c.0).collect();
    assert_eq!(
        distinct.len(),
        calls.len(),
        "a call's records are not consecutive"
    );
    for (id, recs) in &calls {
        assert!(recs.iter().all(|r| r.agent_id == recs[0].agent_id), "{id}");
        let ops: Vec<&str> = recs.iter().map(|r| r.op_type.as_str()).collect();
        match ops.as_slice() {
            ["3"] => assert_eq!(recs[0].op_cause, "2", "a missed call is busy, no answer"),
            ["4", rest @ ..] => {
                assert_eq!(rest.last(), Some(&"27"), "{id}: {ops:?}");
                assert_eq!(ops.iter().filter(|o| **o == "27").count(), 1);
            }
            _ => panic!("{id}: unexpected call shape {ops:?}"),
        }
    }
}

#[test]
fn counts_per_operation_type_match_the_documented_model() {
    for seed in [11, 12, 13, 14] {
        counts_match(seed);
    }
}

fn counts_match(seed: u64) {
    let (agents, days) = (50, 6);
    let records = run(agents, days, seed);
    let agent_days = f64::from(agents * days);
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut per_agent_day: HashMap<(&str, &str), HashMap<&str, u64>> = HashMap::new();
    for r in &records {
        *counts.entry(r.op_type.as_str()).or_default() += 1;
        *per_agent_day
            .entry((r.agent_id.as_str(), r.logon_sn.as_str()))
            .or_default()
            .entry(r.op_type.as_str())
            .or_default() += 1;
    }
    assert_eq!(per_agent_day.len() as f64, agent_days);
    for day in per_agent_day.values() {
        assert_eq!(day.get("1"), Some(&1));
        assert_eq!(day.get("0"), Some(&1));
        assert_eq!(day.get("26"), Some(&3));
    }
    let mut seen: HashSet<&str> = counts.keys().copied().collect();
    for (op, name, low, high) in EXPECTED {
        let mean = counts.get(op).copied().unwrap_or(0) as f64 / agent_days;
        eprintln!("{op:>2} {name:<18} {mean:6.2} per agent-day (documented {low}–{high})");
        assert!(
            (low..=high).contains(&mean),
            "{name} ({op}): {mean:.2} per agent-day, documented {low}–{high}"
        );
        seen.remove(op);
    }
    assert!(seen.is_empty(), "undocumented operation types {seen:?}");
    let calls: HashSet<&str> = records
        .iter()
        .filter(|r| r.call_id != "-1")
        .map(|r| r.call_id.as_str())
        .collect();
    let per_day = calls.len() as f64 / agent_days;
    eprintln!("calls {per_day:.2} per agent-day");
    assert!(
        (CALLS_PER_AGENT_DAY.0..=CALLS_PER_AGENT_DAY.1).contains(&per_day),
        "{per_day:.2} calls per agent-day"
    );
}

#[test]
fn records_read_back_from_csv_unchanged() {
    let p = params(10, 3, date(2024, 10, 26), 5);
    let tz = p.tz.clone();
    let records: Vec<Record> = Simulation::new(p).expect("valid").collect();
    let mut bytes = Vec::new();
    for r in &records {
        r.push_csv(&mut bytes, &tz);
    }
    let mut reader = csv_reader(bytes.as_slice());
    let back: Vec<Record> = reader
        .records()
        .map(|row| {
            let row = row.expect("csv row");
            RawRecord::from_csv(&row)
                .and_then(|raw| raw.validate(&tz))
                .expect("valid record")
        })
        .collect();
    assert_eq!(back, records);
    for r in &records {
        let json = RawRecord::from_json(&r.to_json(&tz))
            .and_then(|raw| raw.validate(&tz))
            .expect("valid JSON record");
        assert_eq!(&json, r);
    }
}

#[test]
fn shifts_are_in_local_working_hours_across_dst() {
    let p = params(40, 3, date(2024, 10, 26), 9);
    let tz = p.tz.clone();
    for r in Simulation::new(p).expect("valid") {
        let begin = tz.to_datetime(r.begin_time);
        if r.op_type == "1" {
            let hms = (begin.hour(), begin.minute(), begin.second());
            assert!(
                ((7, 0, 0)..=(10, 1, 59)).contains(&hms),
                "sign-in at {begin}"
            );
        }
        let end = tz.to_datetime(r.end_time);
        assert!(end.hour() < 20, "{end}");
    }
}

#[test]
fn bad_parameters_are_refused() {
    assert_eq!(
        Simulation::new(params(1, 1, date(1969, 12, 31), 1)).err(),
        Some(ParamError::DateRange)
    );
    assert_eq!(
        Simulation::new(params(1, 2, date(9999, 12, 30), 1)).err(),
        Some(ParamError::DateRange)
    );
    assert!(Simulation::new(params(MAX_AGENTS + 1, 1, date(2024, 1, 1), 1)).is_err());
    assert_eq!(
        Simulation::new(params(0, 1, date(2024, 1, 1), 1))
            .expect("valid")
            .count(),
        0
    );
}
