-- Download slots for flow control (max_downloads, 0300008) across every node on the database:
-- one row per download in progress, under a lease its node renews; a row whose lease_until
-- (unix milliseconds) has passed counts for nothing and is purged. The same table as SQLite's
-- migration 0004.
--
-- An identity column: a slot id is never reused, so a late release of a slot that expired and
-- was purged cannot delete a newer download's row.
CREATE TABLE download_slots (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    developer_id TEXT   NOT NULL,
    holder       TEXT   NOT NULL,
    lease_until  BIGINT NOT NULL
);

-- Counting and purging a developer's slots.
CREATE INDEX download_slots_developer ON download_slots (developer_id, lease_until);
-- Renewing and releasing a node's slots.
CREATE INDEX download_slots_holder ON download_slots (holder);
