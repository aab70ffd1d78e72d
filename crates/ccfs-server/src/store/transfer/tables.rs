//! The tables a transfer copies, in an order that satisfies their foreign keys, with each
//! column's kind: the SQLite and PostgreSQL schemas have the same tables and columns, and differ
//! only in how a flag (0/1 against BOOLEAN) and bytes (BLOB against BYTEA) are typed.
//!
//! Not copied: PostgreSQL's `jobs.seq` (an identity the target numbers itself) and what lives
//! only while a node runs (download slots).

/// How a column's values are read from SQLite and bound for PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Int,
    /// 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Flag,
    Bytes,
}

/// A column: its name, kind and whether it may be NULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

/// A table: its columns, and the columns of its primary key, which order the copy and let a
/// second run skip what the first copied.
#[derive(Debug)]
pub(super) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub key: &'static [&'static str],
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

use Kind::*;

/// Every table, parents first.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "developers",
        columns: &[
            col("app_id", Text),
            col("name", Text),
            col("secret_enc", Bytes),
            opt("old_secret_enc", Bytes),
            opt("old_secret_until", Int),
            col("timezone", Text),
            col("roles", Text),
            col("enabled", Flag),
            col("csv_header", Flag),
            col("created_at", Int),
        ],
        key: &["app_id"],
    },
    Table {
        name: "developer_accounts",
        columns: &[col("app_id", Text), col("account_id", Text)],
        key: &["app_id", "account_id"],
    },
    Table {
        name: "jobs",
        columns: &[
            col("response_id", Text),
            col("developer_id", Text),
            col("file_name", Text),
            col("query_begin", Int),
            col("query_end", Int),
            opt("query_account_id", Text),
            opt("query_agent_id", Text),
            col("callback_url", Text),
            col("timezone", Text),
            col("csv_header", Flag),
            col("created_at", Int),
            opt("idempotency_key", Text),
            opt("idempotency_hash", Text),
            col("state", Text),
            col("attempts", Int),
            opt("started_at", Int),
            opt("lease_owner", Text),
            opt("lease_until", Int),
            opt("record_count", Int),
            opt("file_count", Int),
            opt("file_size", Int),
            opt("sha256", Text),
            opt("finished_at", Int),
            opt("expires_at", Int),
            opt("error", Text),
            opt("file_attempt", Int),
        ],
        key: &["response_id"],
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            col("developer_id", Text),
            col("key", Text),
            col("request_hash", Text),
            col("response_id", Text),
            col("created_at", Int),
        ],
        key: &["developer_id", "key"],
    },
    Table {
        name: "callbacks",
        columns: &[
            col("response_id", Text),
            col("developer_id", Text),
            col("url", Text),
            col("body", Text),
            col("state", Text),
            col("attempts", Int),
            col("next_attempt_at", Int),
            col("give_up_at", Int),
            opt("last_error", Text),
        ],
        key: &["response_id"],
    },
    Table {
        name: "records",
        columns: &[
            col("id", Text),
            col("developer_id", Text),
            col("account_id", Text),
            col("agent_id", Text),
            col("service_no", Text),
            col("skill_id", Text),
            col("call_id", Text),
            col("begin_time", Int),
            col("end_time", Int),
            col("op_type", Text),
            col("op_object", Text),
            col("op_cause", Text),
            col("media_type", Text),
            col("vdn_id", Text),
            col("cc_id", Text),
            col("agent_type", Text),
            col("phone_no", Text),
            col("call_in_out", Text),
            col("location_id", Text),
            col("logon_sn", Text),
            col("skill_info_sn", Text),
        ],
        key: &["developer_id", "id"],
    },
    Table {
        name: "replay_cache",
        columns: &[col("signature", Text), col("expires_at", Int)],
        key: &["signature"],
    },
];
