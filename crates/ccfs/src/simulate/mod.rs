//! The activity simulator behind `ccfs simulate` and `ccfs demo`: realistic, deterministic agent
//! operation records for N agents over D days in a developer's time zone.
//!
//! It is pure: no I/O, no clock. Every agent-day is generated from its own RNG, seeded from
//! `(seed, agent, day)`, so the output depends on the parameters only, and a day simulated in a
//! longer run is the same as when simulated alone. The RNG is `rand`'s `StdRng`, whose stream is
//! stable only within one `rand` release: upgrading `rand` may change the output for a seed
//! (never its statistics). The tests pin the properties, not the bytes.
//!
//! [`Simulation`] is an iterator that holds one agent-day (about 100 records) at a time: days in
//! order, agents in order within a day, each agent-day's records in time order, so the records
//! of one agent come out in time order whatever the run's size.
//!
//! # The model (one agent-day; all durations uniform in the range unless noted)
//!
//! - Shift: signs in (`op_type` 1) between 07:00 and 10:00 local (whole minute, plus 0–119 s),
//!   works 8 h plus 0–10 min, then signs out (`op_type` 0, cause 258 "by itself") as soon as the
//!   call in hand, if any, is wrapped up. One `logon_sn` for the whole session.
//! - Breaks, always taken (`op_type` 26 rest, cause = rest reason): a short break (cause 2,
//!   10–15 min) 1.5–2.5 h into the shift, lunch (cause 1, 30–45 min) at 3.5–4.5 h, a short break
//!   at 6–7 h. A break that falls due during a call starts when the call is wrapped up.
//! - Idle (`op_type` 2) fills the time between activities.
//! - Calls are offered to an idle agent at [`CALLS_PER_IDLE_HOUR`] (a Poisson process). Each has
//!   one `call_id` shared by all its records, a skill from the agent's two skills, and is
//!   inbound voice (`media_type` 5, `callIn_out` 1). A call is
//!   - not answered with probability [`MISSED`]: busy (`op_type` 3, cause 2 "no answer too
//!     long") for 1–5 min;
//!   - else talking (`op_type` 4, cause 0 "final record": the 5-minute interim records of cause
//!     1 are for text chat, which is not simulated) for 20 s plus an exponential with mean
//!     220 s, at most 30 min in all;
//!   - with probability [`HOLD`] the talk is split by a hold (`op_type` 38, 30–180 s): talking,
//!     hold, talking;
//!   - with probability [`TRANSFER_INTERNAL`] it ends with an internal transfer (`op_type` 45,
//!     `op_object` = another agent's work number), with probability [`TRANSFER_OUT`] with a
//!     transfer out (`op_type` 46, `phone_no` = the external number), each 10–60 s;
//!   - followed by wrap-up (`op_type` 27, cause 0 automatic) for 30–120 s.
//! - Busy (`op_type` 3) while idle at [`BUSY_PER_IDLE_HOUR`]: cause 1 "self" (70 %, 2–10 min),
//!   cause 5 "phone unavailable" (5 %, 1–3 min), a business reason 201–205 (25 %, 10–30 min).
//!
//! Per agent-day this gives exactly one sign-in, one sign-out and three rests; on average
//! about 24 calls (mean over many agent-days 20–28), of which about 23 answered with as many
//! wrap-ups; see [`EXPECTED`] for every operation type.
//!
//! Constant columns: `media_type` 5 (voice), `vdn_id` 1, `cc_id` 1, `agent_type` 4,
//! `location_id` 0, `service_no` 1 on call records. Unused columns hold `-1`. Agents are work
//! numbers 10001, 10002, …; `skillInfo_sn` is the agent's skill list (1–6), which holds two of
//! the skills 101–106. `phone_no` is the customer's number on call records, the external number
//! on a transfer out, the agent's extension otherwise.
//!
//! Ids (≤ 32 characters) are unique per (seed, agent, calendar day, sequence), so simulating
//! other days or agents into the same developer never collides, and running the same
//! simulation again imports nothing new.

mod day;
#[cfg(test)]
mod tests;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use ccfs_protocol::Record;

/// Calls offered per hour an agent is idle.
pub const CALLS_PER_IDLE_HOUR: f64 = 6.0;
/// Busy spells started per hour an agent is idle.
pub const BUSY_PER_IDLE_HOUR: f64 = 0.5;
/// Share of offered calls the agent does not answer.
pub const MISSED: f64 = 0.04;
/// Share of answered calls with a hold.
pub const HOLD: f64 = 0.20;
/// Share of answered calls that end with an internal transfer.
pub const TRANSFER_INTERNAL: f64 = 0.05;
/// Share of answered calls that end with a transfer out.
pub const TRANSFER_OUT: f64 = 0.03;

/// The documented range of the mean count per agent-day of each operation type, over many
/// agent-days (hundreds); `(op_type, name, low, high)`. Sign-in, sign-out and rest are exact
/// for every single agent-day. The tests hold the simulator to it.
#[cfg_attr(not(test), allow(dead_code))]
pub const EXPECTED: [(&str, &str, f64, f64); 10] = [
    ("0", "sign out", 1.0, 1.0),
    ("1", "sign in", 1.0, 1.0),
    ("2", "idle", 27.0, 34.0),
    ("3", "busy", 2.3, 4.0),
    ("4", "talking", 26.0, 34.0),
    ("26", "rest", 3.0, 3.0),
    ("27", "wrap-up", 22.0, 28.0),
    ("38", "hold", 4.0, 6.0),
    ("45", "internal transfer", 0.9, 1.8),
    ("46", "transfer out", 0.4, 1.2),
];

/// The documented range of the mean number of calls (distinct `call_id`s) per agent-day.
#[cfg_attr(not(test), allow(dead_code))]
pub const CALLS_PER_AGENT_DAY: (f64, f64) = (23.0, 29.0);

/// The name of an operation type of SPEC section 5, for summaries.
pub fn op_name(op_type: &str) -> &'static str {
    match op_type {
        "0" => "sign out",
        "1" => "sign in",
        "2" => "idle",
        "3" => "busy",
        "4" => "talking",
        "10" => "three-party call",
        "26" => "rest",
        "27" => "wrap-up",
        "29" => "forced sign out",
        "38" => "hold",
        "40" => "internal help",
        "41" => "internal call",
        "45" => "internal transfer",
        "46" => "transfer out",
        "58" => "conference",
        _ => "other",
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    /// `developer_id` of every record.
    pub developer_id: String,
    /// `account_id` of every record (may be empty).
    pub account_id: String,
    /// The developer's time zone: shifts are placed in its local time.
    pub tz: TimeZone,
    /// The first day.
    pub start: Date,
    pub days: u32,
    pub agents: u32,
    pub seed: u64,
}

/// Why parameters cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    DateRange,
    TooManyAgents { max: u32 },
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DateRange => f.write_str("the days must lie between 1970-01-01 and 9999-12-30"),
            Self::TooManyAgents { max } => write!(f, "at most {max} agents"),
        }
    }
}

impl std::error::Error for ParamError {}

/// The largest number of agents: work numbers stay short, ids unique.
pub const MAX_AGENTS: u32 = 1_000_000;

/// The records of a simulation, one agent-day at a time (see the module docs).
pub struct Simulation {
    params: Params,
    /// The next agent-day to generate: `(day, agent)`.
    day: u32,
    agent: u32,
    current: std::vec::IntoIter<Record>,
}

impl Simulation {
    /// Checks the parameters (the whole date range must be representable) and starts.
    pub fn new(params: Params) -> Result<Self, ParamError> {
        if params.agents > MAX_AGENTS {
            return Err(ParamError::TooManyAgents { max: MAX_AGENTS });
        }
        let first_ok = params.start >= jiff::civil::date(1970, 1, 1);
        let last = i64::from(params.days);
        let last_ok = params
            .start
            .checked_add(
                jiff::Span::new()
                    .try_days(last)
                    .map_err(|_| ParamError::DateRange)?,
            )
            .is_ok_and(|d| d < jiff::civil::date(9999, 12, 31));
        if !first_ok || !last_ok {
            return Err(ParamError::DateRange);
        }
        Ok(Self {
            params,
            day: 0,
            agent: 0,
            current: Vec::new().into_iter(),
        })
    }
}

impl Iterator for Simulation {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            if self.day >= self.params.days || self.params.agents == 0 {
                return None;
            }
            let date = self
                .params
                .start
                .checked_add(jiff::Span::new().days(i64::from(self.day)))
                .ok()?;
            self.current = day::agent_day(&self.params, self.agent, date).into_iter();
            self.agent += 1;
            if self.agent >= self.params.agents {
                self.agent = 0;
                self.day += 1;
            }
        }
    }
}
