-- The records, stored in export order. An export reads one developer's records in
-- (begin_time, id) order; with the rows kept in rowid (arrival) order and a separate export
-- index, every row cost a lookup at a random place of the table, which was most of an export's
-- reading time when records had been imported out of time order. A WITHOUT ROWID table whose
-- primary key is the export order keeps each developer's rows in that order, so an export reads
-- them front to back. The key is unique because (developer_id, id) is, which stays the unique
-- key imports rely on. Rows are copied in key order, which builds the new table in one pass.
ALTER TABLE records RENAME TO records_before_0006;

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
    PRIMARY KEY (developer_id, begin_time, id),
    UNIQUE (developer_id, id)
) WITHOUT ROWID;

INSERT INTO records (id, developer_id, account_id, agent_id, service_no, skill_id, call_id,
                     begin_time, end_time, op_type, op_object, op_cause, media_type, vdn_id,
                     cc_id, agent_type, phone_no, call_in_out, location_id, logon_sn,
                     skill_info_sn)
SELECT id, developer_id, account_id, agent_id, service_no, skill_id, call_id,
       begin_time, end_time, op_type, op_object, op_cause, media_type, vdn_id,
       cc_id, agent_type, phone_no, call_in_out, location_id, logon_sn, skill_info_sn
FROM records_before_0006
ORDER BY developer_id, begin_time, id;

DROP TABLE records_before_0006;
