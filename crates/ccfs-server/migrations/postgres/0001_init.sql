-- The ccfs schema for PostgreSQL: the same tables, columns and meaning as the SQLite schema after
-- all of its migrations (migrations/sqlite), so that both stores convert values the same way
-- (crate::store::convert). Times: record times are BIGINT unix seconds (the CSV has second
-- precision); every other time is BIGINT unix milliseconds. Flags are BOOLEAN, binary values
-- BYTEA, counts BIGINT.

CREATE TABLE developers (
    app_id           TEXT    NOT NULL PRIMARY KEY,
    name             TEXT    NOT NULL,
    secret_enc       BYTEA   NOT NULL,
    old_secret_enc   BYTEA,
    old_secret_until BIGINT,
    timezone         TEXT    NOT NULL,
    -- Sorted role names joined by ',' (role names never contain a comma).
    roles            TEXT    NOT NULL,
    enabled          BOOLEAN NOT NULL,
    csv_header       BOOLEAN NOT NULL,
    created_at       BIGINT  NOT NULL
);

CREATE TABLE developer_accounts (
    app_id     TEXT NOT NULL REFERENCES developers (app_id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    PRIMARY KEY (app_id, account_id)
);

-- Text columns compare with the "C" collation, byte by byte like SQLite's BINARY: the export
-- order (begin_time, id) and the keyset paging over it are then the same on both stores,
-- whatever the database's default collation.
CREATE TABLE records (
    id            TEXT   COLLATE "C" NOT NULL,
    developer_id  TEXT   COLLATE "C" NOT NULL,
    account_id    TEXT   NOT NULL,
    agent_id      TEXT   NOT NULL,
    service_no    TEXT   NOT NULL,
    skill_id      TEXT   NOT NULL,
    call_id       TEXT   NOT NULL,
    begin_time    BIGINT NOT NULL,
    end_time      BIGINT NOT NULL,
    op_type       TEXT   NOT NULL,
    op_object     TEXT   NOT NULL,
    op_cause      TEXT   NOT NULL,
    media_type    TEXT   NOT NULL,
    vdn_id        TEXT   NOT NULL,
    cc_id         TEXT   NOT NULL,
    agent_type    TEXT   NOT NULL,
    phone_no      TEXT   NOT NULL,
    call_in_out   TEXT   NOT NULL,
    location_id   TEXT   NOT NULL,
    logon_sn      TEXT   NOT NULL,
    skill_info_sn TEXT   NOT NULL,
    PRIMARY KEY (developer_id, id)
);

-- The export query (one developer, a begin_time window, ordered by begin_time then id) walks
-- this index in order, so it never sorts.
CREATE INDEX records_export ON records (developer_id, begin_time, id);

CREATE TABLE jobs (
    response_id        TEXT    NOT NULL PRIMARY KEY,
    -- Insertion order: breaks ties between jobs created in the same millisecond when claiming
    -- the oldest (SQLite's rowid plays this part there).
    seq                BIGINT  GENERATED ALWAYS AS IDENTITY,
    developer_id       TEXT    NOT NULL,
    file_name          TEXT    NOT NULL,
    query_begin        BIGINT  NOT NULL,
    query_end          BIGINT  NOT NULL,
    query_account_id   TEXT,
    query_agent_id     TEXT,
    callback_url       TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    csv_header         BOOLEAN NOT NULL,
    created_at         BIGINT  NOT NULL,
    idempotency_key    TEXT,
    idempotency_hash   TEXT,
    state              TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired')),
    attempts           BIGINT  NOT NULL DEFAULT 0,
    started_at         BIGINT,
    lease_owner        TEXT,
    lease_until        BIGINT,
    -- The outcome: all NULL until the job succeeds, except finished_at, which a failure sets too.
    record_count       BIGINT,
    file_count         BIGINT,
    file_size          BIGINT,
    sha256             TEXT,
    finished_at        BIGINT,
    expires_at         BIGINT,
    error              TEXT
);

-- Partial indexes keep the hot queries (claim the oldest job, count a developer's active jobs,
-- find expired files) proportional to the live jobs, not to the whole history.
CREATE INDEX jobs_claimable ON jobs (created_at, seq) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_active ON jobs (developer_id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE state = 'succeeded';

CREATE TABLE idempotency_keys (
    developer_id TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    response_id  TEXT   NOT NULL REFERENCES jobs (response_id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (developer_id, key)
);

CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE callbacks (
    response_id     TEXT   NOT NULL PRIMARY KEY REFERENCES jobs (response_id) ON DELETE CASCADE,
    developer_id    TEXT   NOT NULL,
    url             TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    state           TEXT   NOT NULL
        CHECK (state IN ('pending', 'delivered', 'failed', 'superseded')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    give_up_at      BIGINT NOT NULL,
    last_error      TEXT
);

CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE state = 'pending';

CREATE TABLE replay_cache (
    signature  TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX replay_cache_expiry ON replay_cache (expires_at);
