-- A job's record query always selects the job's own developer's records, so the query no longer
-- keeps a copy of the developer id: jobs.query_developer_id goes, and jobs.developer_id is the
-- one value for both.
--
-- DROP COLUMN rather than a table rebuild like 0002's: jobs is the parent of callbacks and
-- idempotency_keys (ON DELETE CASCADE), so dropping the old table of a rebuild would delete
-- their rows, and a migration runs inside a transaction, where foreign keys cannot be turned
-- off. SQLite rewrites the table itself for DROP COLUMN, which is allowed because the column is
-- in no index, constraint or key.
ALTER TABLE jobs DROP COLUMN query_developer_id;
