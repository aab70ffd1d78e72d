-- A job an operator stops (`ccfs jobs cancel`) ends in the state 'cancelled', which the CHECK
-- constraint on jobs.state must accept. And `ccfs jobs list` shows the newest jobs first, which
-- an index on created_at answers without sorting the whole history.
--
-- SQLite cannot change a CHECK constraint in place, so jobs is rebuilt. jobs is the parent of
-- callbacks and idempotency_keys (ON DELETE CASCADE), and a migration runs inside a transaction,
-- where foreign keys cannot be turned off: dropping the old jobs table would delete their rows
-- too (see 0003). So the two children are set aside first, dropped, and made again (the same
-- tables and indexes as before) once the new jobs table stands; every row comes back as it was.
CREATE TEMP TABLE callbacks_0007 AS SELECT * FROM callbacks;
CREATE TEMP TABLE idempotency_keys_0007 AS SELECT * FROM idempotency_keys;
DROP TABLE callbacks;
DROP TABLE idempotency_keys;

CREATE TABLE jobs_0007 (
    response_id        TEXT    NOT NULL PRIMARY KEY,
    developer_id       TEXT    NOT NULL,
    file_name          TEXT    NOT NULL,
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
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    started_at         INTEGER,
    lease_owner        TEXT,
    lease_until        INTEGER,
    -- The outcome: all NULL until the job succeeds, except finished_at, which a failure or a
    -- cancellation sets too.
    record_count       INTEGER,
    file_count         INTEGER,
    file_size          INTEGER,
    sha256             TEXT,
    finished_at        INTEGER,
    expires_at         INTEGER,
    error              TEXT,
    file_attempt       INTEGER CHECK (file_attempt >= 1)
);

-- rowid kept: it breaks ties between jobs created in the same millisecond (claim order).
INSERT INTO jobs_0007 (rowid, response_id, developer_id, file_name, query_begin, query_end,
                       query_account_id, query_agent_id, callback_url, timezone, csv_header,
                       created_at, idempotency_key, idempotency_hash, state, attempts,
                       started_at, lease_owner, lease_until, record_count, file_count,
                       file_size, sha256, finished_at, expires_at, error, file_attempt)
SELECT rowid, response_id, developer_id, file_name, query_begin, query_end, query_account_id,
       query_agent_id, callback_url, timezone, csv_header, created_at, idempotency_key,
       idempotency_hash, state, attempts, started_at, lease_owner, lease_until, record_count,
       file_count, file_size, sha256, finished_at, expires_at, error, file_attempt
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_0007 RENAME TO jobs;

CREATE INDEX jobs_claimable ON jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_active ON jobs (developer_id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE state = 'succeeded';
-- Newest first, for `ccfs jobs list`.
CREATE INDEX jobs_created ON jobs (created_at);

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
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'superseded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    give_up_at      INTEGER NOT NULL,
    last_error      TEXT
);

CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE state = 'pending';

INSERT INTO idempotency_keys (developer_id, key, request_hash, response_id, created_at)
SELECT developer_id, key, request_hash, response_id, created_at FROM idempotency_keys_0007;

INSERT INTO callbacks (response_id, developer_id, url, body, state, attempts, next_attempt_at,
                       give_up_at, last_error)
SELECT response_id, developer_id, url, body, state, attempts, next_attempt_at, give_up_at,
       last_error
FROM callbacks_0007;

DROP TABLE callbacks_0007;
DROP TABLE idempotency_keys_0007;
