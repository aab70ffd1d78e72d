-- The ccfs schema for SQLite. Times: record times are INTEGER unix seconds (the CSV has second
-- precision); every other time is INTEGER unix milliseconds.

CREATE TABLE developers (
    app_id           TEXT    NOT NULL PRIMARY KEY,
    name             TEXT    NOT NULL,
    secret_enc       BLOB    NOT NULL,
    old_secret_enc   BLOB,
    old_secret_until INTEGER,
    timezone         TEXT    NOT NULL,
    -- Sorted role names joined by ',' (role names never contain a comma).
    roles            TEXT    NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    csv_header       INTEGER NOT NULL CHECK (csv_header IN (0, 1)),
    created_at       INTEGER NOT NULL
);

CREATE TABLE developer_accounts (
    app_id     TEXT NOT NULL REFERENCES developers (app_id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    PRIMARY KEY (app_id, account_id)
) WITHOUT ROWID;

CREATE TABLE records (
    id            TEXT    NOT NULL,
    developer_id  TEXT    NOT NULL,
    account_id    TEXT    NOT NULL,
    agent_id      TEXT    NOT NULL,
    service_no    TEXT    NOT NULL,
    skill_id      TEXT    NOT NULL,
    call_id       TEXT    NOT NULL,
    begin_time    INTEGER NOT NULL,
    end_time      INTEGER NOT NULL,
    op_type       TEXT    NOT NULL,
    op_object     TEXT    NOT NULL,
    op_cause      TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    vdn_id        TEXT    NOT NULL,
    cc_id         TEXT    NOT NULL,
    agent_type    TEXT    NOT NULL,
    phone_no      TEXT    NOT NULL,
    call_in_out   TEXT    NOT NULL,
    location_id   TEXT    NOT NULL,
    logon_sn      TEXT    NOT NULL,
    skill_info_sn TEXT    NOT NULL,
    UNIQUE (developer_id, id)
);

-- The export query (one developer, a begin_time window, ordered by begin_time then id) walks
-- this index in order, so it never sorts.
CREATE INDEX records_export ON records (developer_id, begin_time, id);

CREATE TABLE jobs (
    response_id        TEXT    NOT NULL PRIMARY KEY,
    developer_id       TEXT    NOT NULL,
    file_name          TEXT    NOT NULL,
    query_developer_id TEXT    NOT NULL,
    query_begin        INTEGER NOT NULL,
    query_end          INTEGER NOT NULL,
    query_account_id   TEXT,
    query_agent_id     TEXT,
    callback_url       TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    csv_header         INTEGER NOT NULL CHECK (csv_header IN (0, 1)),
    created_at         INTEGER NOT NULL,
    idempotency_key    TEXT,
    idempotency_hash   TEXT,
    state              TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    started_at         INTEGER,
    lease_owner        TEXT,
    lease_until        INTEGER,
    -- The outcome: all NULL until the job succeeds, except finished_at, which a failure sets too.
    record_count       INTEGER,
    file_count         INTEGER,
    file_size          INTEGER,
    sha256             TEXT,
    finished_at        INTEGER,
    expires_at         INTEGER,
    error              TEXT
);

-- Partial indexes keep the hot queries (claim the oldest job, count a developer's active jobs,
-- find expired files) proportional to the live jobs, not to the whole history.
CREATE INDEX jobs_claimable ON jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_active ON jobs (developer_id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE state = 'succeeded';

CREATE TABLE idempotency_keys (
    developer_id TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    response_id  TEXT    NOT NULL REFERENCES jobs (response_id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (developer_id, key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE callbacks (
    response_id     TEXT    NOT NULL PRIMARY KEY REFERENCES jobs (response_id) ON DELETE CASCADE,
    developer_id    TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    give_up_at      INTEGER NOT NULL,
    last_error      TEXT
);

CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE state = 'pending';

CREATE TABLE replay_cache (
    signature  TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX replay_cache_expiry ON replay_cache (expires_at);
