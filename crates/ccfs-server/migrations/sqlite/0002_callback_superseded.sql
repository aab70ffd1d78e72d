-- A pending callback stops once the file's owner has downloaded the file: state 'superseded'.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE callbacks_new (
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

INSERT INTO callbacks_new (response_id, developer_id, url, body, state, attempts, next_attempt_at,
                           give_up_at, last_error)
SELECT response_id, developer_id, url, body, state, attempts, next_attempt_at, give_up_at, last_error
FROM callbacks;

DROP TABLE callbacks;
ALTER TABLE callbacks_new RENAME TO callbacks;

CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE state = 'pending';
