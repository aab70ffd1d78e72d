//! One agent-day: the shift of the module docs, driven by an RNG seeded from
//! `(seed, agent, calendar day)` only, so it is the same whatever else is simulated with it.
//!
//! Times are whole seconds (`i64` since the epoch) while generating: the export shows whole
//! seconds, and a record must read back from its CSV unchanged.

use ccfs_protocol::time::to_instant;
use ccfs_protocol::Record;
use jiff::civil::{self, Date};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    Params, BUSY_PER_IDLE_HOUR, CALLS_PER_IDLE_HOUR, HOLD, MISSED, TRANSFER_INTERNAL, TRANSFER_OUT,
};

/// The skills; skill list `k` (1–6) holds `SKILLS[k-1]` and the next one.
const SKILLS: [&str; 6] = ["101", "102", "103", "104", "105", "106"];
/// Work number of agent 0.
const FIRST_WORK_NO: u32 = 10001;

/// SplitMix64's finalizer: spreads nearby seeds over the whole 64-bit space, so seeds 1, 2, 3
/// give unrelated streams.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The work number of agent `index` (0-based).
pub(super) fn work_no(index: u32) -> String {
    (FIRST_WORK_NO + index).to_string()
}

/// The records of agent `agent` on `date`, in time order.
pub(super) fn agent_day(p: &Params, agent: u32, date: Date) -> Vec<Record> {
    let epoch_day = date
        .since(civil::date(1970, 1, 1))
        .map(|s| u32::try_from(s.get_days()).unwrap_or(0))
        .unwrap_or(0);
    // Unique per (seed, agent) by construction: 32 bits of the seed's mix, then the agent.
    let tag = format!("{:08x}{:06x}", mix(p.seed) as u32, agent);
    let rng_seed = mix(mix(p.seed ^ mix(u64::from(agent))) ^ u64::from(epoch_day));
    let skill_list = (mix(p.seed ^ u64::from(agent).rotate_left(32)) % 6) as usize;
    let mut day = Day {
        p,
        agent,
        rng: StdRng::seed_from_u64(rng_seed),
        key: format!("{tag}{epoch_day:06x}"),
        work_no: work_no(agent),
        extension: format!("6{}", FIRST_WORK_NO + agent),
        skills: [SKILLS[skill_list], SKILLS[(skill_list + 1) % 6]],
        skill_info_sn: (skill_list + 1).to_string(),
        seq: 0,
        calls: 0,
        out: Vec::with_capacity(128),
    };
    let start_minute = day.rng.random_range(0..=180);
    let local = date.at(7, 0, 0, 0);
    let Some(local) = local
        .checked_add(jiff::SignedDuration::from_mins(start_minute))
        .ok()
    else {
        return Vec::new();
    };
    let Some(t0) = to_instant(local, &p.tz) else {
        return Vec::new();
    };
    let t0 = t0.as_second() + day.rng.random_range(0..120);
    day.shift(t0);
    day.out
}

/// The records of one call share these.
struct Call {
    id: String,
    skill: &'static str,
    customer: String,
}

/// One record to emit; the constant columns are filled in by [`Day::push`].
struct Entry<'a> {
    op: &'static str,
    cause: &'a str,
    begin: i64,
    end: i64,
    call: Option<&'a Call>,
    object: &'a str,
    /// `phone_no`; the agent's extension when `None` (the customer's on call records).
    phone: Option<&'a str>,
}

impl<'a> Entry<'a> {
    fn new(op: &'static str, cause: &'a str, begin: i64, end: i64) -> Self {
        Self {
            op,
            cause,
            begin,
            end,
            call: None,
            object: "-1",
            phone: None,
        }
    }

    fn call(mut self, call: &'a Call) -> Self {
        self.call = Some(call);
        self
    }
}

struct Day<'p> {
    p: &'p Params,
    agent: u32,
    rng: StdRng,
    /// `{seed tag}{agent}{epoch day}`: the logon_sn, and the prefix of ids and call ids.
    key: String,
    work_no: String,
    extension: String,
    skills: [&'static str; 2],
    skill_info_sn: String,
    seq: u32,
    calls: u32,
    out: Vec<Record>,
}

impl Day<'_> {
    /// The whole shift from sign-in at `t0`.
    fn shift(&mut self, t0: i64) {
        let end = t0 + 8 * 3600 + self.rng.random_range(0..=600);
        let breaks = [
            (
                t0 + self.rng.random_range(5400..=9000),
                "2",
                self.rng.random_range(600..=900),
            ),
            (
                t0 + self.rng.random_range(12600..=16200),
                "1",
                self.rng.random_range(1800..=2700),
            ),
            (
                t0 + self.rng.random_range(21600..=25200),
                "2",
                self.rng.random_range(600..=900),
            ),
        ];
        self.push(Entry::new("1", "-1", t0, t0));
        let mut t = t0;
        let mut next_break = 0;
        while t < end {
            // Memoryless arrivals: drawing afresh after every activity is the Poisson process.
            let call_at = t + self.exp(3600.0 / CALLS_PER_IDLE_HOUR);
            let busy_at = t + self.exp(3600.0 / BUSY_PER_IDLE_HOUR);
            let break_at = breaks.get(next_break).map_or(i64::MAX, |b| b.0.max(t));
            let next = call_at.min(busy_at).min(break_at).min(end);
            if next > t {
                self.push(Entry::new("2", "-1", t, next));
                t = next;
            }
            if t >= end {
                break;
            }
            t = if next == break_at {
                let (_, cause, len) = breaks[next_break];
                next_break += 1;
                self.push(Entry::new("26", cause, t, t + len));
                t + len
            } else if next == call_at {
                self.call(t)
            } else {
                self.busy(t)
            };
        }
        self.push(Entry::new("0", "258", t, t));
    }

    /// A call offered at `t`; returns when the agent is free again.
    fn call(&mut self, t: i64) -> i64 {
        self.calls += 1;
        let call = Call {
            id: format!("{}{:04x}", self.key, self.calls),
            skill: self.skills[self.rng.random_range(0..2)],
            customer: format!(
                "1{}{:09}",
                self.rng.random_range(3..=9),
                self.rng.random_range(0..1_000_000_000u32)
            ),
        };
        if self.rng.random_bool(MISSED) {
            let len = self.rng.random_range(60..=300);
            self.push(Entry::new("3", "2", t, t + len).call(&call));
            return t + len;
        }
        let talk = (20 + self.exp(220.0)).min(1800);
        let mut t = t;
        if self.rng.random_bool(HOLD) {
            let first = ((talk as f64) * self.rng.random_range(0.2..0.8)) as i64;
            let hold = self.rng.random_range(30..=180);
            self.push(Entry::new("4", "0", t, t + first).call(&call));
            self.push(Entry::new("38", "-1", t + first, t + first + hold).call(&call));
            t += first + hold;
            self.push(Entry::new("4", "0", t, t + talk - first).call(&call));
            t += talk - first;
        } else {
            self.push(Entry::new("4", "0", t, t + talk).call(&call));
            t += talk;
        }
        let r: f64 = self.rng.random();
        if r < TRANSFER_INTERNAL {
            // Always one draw, so the number of agents changes only who takes the call, not
            // the rest of the day.
            let pick: u32 = self.rng.random();
            let agents = self.p.agents;
            let other = if agents > 1 {
                work_no((self.agent + 1 + pick % (agents - 1)) % agents)
            } else {
                "-1".to_owned()
            };
            let len = self.rng.random_range(10..=60);
            let mut e = Entry::new("45", "-1", t, t + len).call(&call);
            e.object = &other;
            self.push(e);
            t += len;
        } else if r < TRANSFER_INTERNAL + TRANSFER_OUT {
            let number = format!("0{:010}", self.rng.random_range(0..10_000_000_000u64));
            let len = self.rng.random_range(10..=60);
            let mut e = Entry::new("46", "-1", t, t + len).call(&call);
            e.phone = Some(&number);
            self.push(e);
            t += len;
        }
        let len = self.rng.random_range(30..=120);
        self.push(Entry::new("27", "0", t, t + len).call(&call));
        t + len
    }

    /// A busy spell starting at `t`; returns its end.
    fn busy(&mut self, t: i64) -> i64 {
        let u: f64 = self.rng.random();
        let (cause, len) = if u < 0.70 {
            ("1".to_owned(), self.rng.random_range(120..=600))
        } else if u < 0.75 {
            ("5".to_owned(), self.rng.random_range(60..=180))
        } else {
            let reason = self.rng.random_range(201..=205).to_string();
            (reason, self.rng.random_range(600..=1800))
        };
        self.push(Entry::new("3", &cause, t, t + len));
        t + len
    }

    /// An exponential draw with the given mean, in whole seconds.
    fn exp(&mut self, mean: f64) -> i64 {
        // 1 - U lies in (0, 1], so the logarithm is finite.
        let u: f64 = self.rng.random();
        (-(1.0 - u).ln() * mean).round() as i64
    }

    fn push(&mut self, e: Entry<'_>) {
        self.seq += 1;
        let ts = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
        let (service_no, skill, call_id, phone, direction) = match e.call {
            Some(c) => ("1", c.skill, c.id.as_str(), c.customer.as_str(), "1"),
            None => ("-1", "-1", "-1", self.extension.as_str(), "-1"),
        };
        self.out.push(Record {
            id: format!("{}{:05x}", self.key, self.seq),
            developer_id: self.p.developer_id.clone(),
            account_id: self.p.account_id.clone(),
            agent_id: self.work_no.clone(),
            service_no: service_no.to_owned(),
            skill_id: skill.to_owned(),
            call_id: call_id.to_owned(),
            begin_time: ts(e.begin),
            end_time: ts(e.end),
            op_type: e.op.to_owned(),
            op_object: e.object.to_owned(),
            op_cause: e.cause.to_owned(),
            media_type: "5".to_owned(),
            vdn_id: "1".to_owned(),
            cc_id: "1".to_owned(),
            agent_type: "4".to_owned(),
            phone_no: e.phone.unwrap_or(phone).to_owned(),
            call_in_out: direction.to_owned(),
            location_id: "0".to_owned(),
            logon_sn: self.key.clone(),
            skill_info_sn: self.skill_info_sn.clone(),
        });
    }
}
