//! `ccfs jobs …`: export jobs for an operator, over `ccfs_server::Admin`: the jobs as a table
//! or JSON, one job as JSON, cancelling one, queueing a callback that gave up again.

use anyhow::Context;
use ccfs_server::model::Job;
use ccfs_server::{Admin, Config, Core, JobFilter, JobView};
use jiff::Timestamp;

use crate::cli::{JobsArgs, JobsCommand, JobsListArgs};
use crate::numbers::{count, counted};
use crate::output::{print_json, print_table, short_time};

pub async fn run(config: Config, args: JobsArgs) -> anyhow::Result<()> {
    let core = Core::open(config).await.context("cannot open the store")?;
    let admin = Admin::new(&core);
    match args.command {
        JobsCommand::List(a) => list(&admin, a).await,
        JobsCommand::Show(a) => show(&admin.job(&a.id).await?),
        JobsCommand::Cancel(a) => show(&admin.cancel_job(&a.id).await?),
        JobsCommand::RetryCallback(a) => show(&admin.retry_callback(&a.id).await?),
    }
}

async fn list(admin: &Admin, a: JobsListArgs) -> anyhow::Result<()> {
    let filter = JobFilter {
        developer_id: a.app,
        state: a.state.map(Into::into),
        since: a.since,
        limit: Some(a.limit),
    };
    let jobs = admin.jobs(&filter).await?;
    let now = Timestamp::now();
    if a.json {
        let views: Vec<JobView> = jobs.iter().map(|j| JobView::of(j, now)).collect();
        print_json(&views)
    } else {
        print_jobs(&jobs, now)?;
        // On stderr: the table on stdout stays the jobs alone, for a script.
        if jobs.is_empty() {
            eprintln!("no jobs match");
        } else if jobs.len() as u64 >= u64::from(a.limit) {
            eprintln!(
                "the newest {} shown; --limit N shows more",
                counted(jobs.len() as u64, "job", "jobs")
            );
        }
        Ok(())
    }
}

/// One job as JSON, as it is now.
fn show(job: &Job) -> anyhow::Result<()> {
    print_json(&JobView::of(job, Timestamp::now()))
}

/// The jobs as an aligned table for people, in their states at `now`.
fn print_jobs(jobs: &[Job], now: Timestamp) -> anyhow::Result<()> {
    let header = [
        "RESPONSE ID",
        "APP ID",
        "STATE",
        "CREATED",
        "RECORDS",
        "BYTES",
        "CALLBACK",
    ];
    let rows: Vec<[String; 7]> = jobs
        .iter()
        .map(|j| {
            let outcome = j.outcome.as_ref();
            let or_dash = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), count);
            [
                j.job.response_id.to_string(),
                j.job.developer_id().to_string(),
                j.state_at(now).as_str().to_owned(),
                short_time(j.job.created_at),
                or_dash(outcome.map(|o| o.record_count)),
                or_dash(outcome.map(|o| o.file_size)),
                j.callback.as_ref().map_or_else(
                    || "-".to_owned(),
                    |c| {
                        format!(
                            "{}, {}",
                            c.state.as_str(),
                            counted(c.attempts.into(), "attempt", "attempts")
                        )
                    },
                ),
            ]
        })
        .collect();
    print_table(header, &rows)
}
