-- Which claim of a job uploaded its published file: each attempt uploads under its own key
-- (exports/a{attempt}/{file_name}), so an attempt that stalled past its lease and uploads late
-- cannot overwrite the file a later attempt published. NULL for jobs published before: their
-- file is under exports/{file_name}. The same column as PostgreSQL's migration 0003.
ALTER TABLE jobs ADD COLUMN file_attempt INTEGER CHECK (file_attempt >= 1);
