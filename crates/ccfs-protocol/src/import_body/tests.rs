//! [`open_import`] against the reference, [`open_request`] then [`parse_import`]: the same
//! answer for awkward bodies written by hand and for generated ones.

use proptest::prelude::*;

use super::*;
use crate::envelope::open_request;
use crate::messages::{parse_import, OnConflict};

fn reference(body: &str) -> Result<ImportRequest, ApiError> {
    parse_import(open_request(body.as_bytes())?)
}

/// Both answers for `body`, asserted equal; the answer.
fn both(body: &str) -> Result<ImportRequest, ApiError> {
    let got = open_import(body.as_bytes());
    assert_eq!(got, reference(body), "{body}");
    got
}

fn envelope(msg_body: &str) -> String {
    format!(r#"{{"request":{{"version":"2.0"}},"msgBody":{msg_body}}}"#)
}

const GOOD: &str = r#"{"id":"r1","developer_id":"d","agent_id":"1","begin_time":"2024-05-01 10:00:00","end_time":"2024-05-01 10:00:01","op_type":"2"}"#;

fn code(r: Result<ImportRequest, ApiError>) -> ApiError {
    r.expect_err("an error")
}

#[test]
fn a_good_body_reads_as_the_reference_reads_it() {
    let body = envelope(&format!(
        r#"{{"records":[{GOOD},{GOOD}],"onConflict":"skip"}}"#
    ));
    let r = both(&body).expect("a good body");
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.on_conflict, OnConflict::Skip);
    assert_eq!(r.records[0].0[0], "r1");
    assert_eq!(r.records[0].0[2], "", "an absent optional column is empty");
}

#[test]
fn the_order_of_members_does_not_matter() {
    let shuffled = r#"{"op_type":"2","end_time":"2024-05-01 10:00:01","agent_id":"1","begin_time":"2024-05-01 10:00:00","developer_id":"d","id":"r1"}"#;
    let body = format!(
        r#"{{"msgBody":{{"onConflict":"replace","records":[{shuffled}]}},"x":[1,{{"y":null}}],"request":{{"version":"2.0","z":1}}}}"#
    );
    let r = both(&body).expect("a good body");
    assert_eq!(
        r.records,
        both(&envelope(&format!(r#"{{"records":[{GOOD}]}}"#)))
            .unwrap()
            .records
    );
    assert_eq!(r.on_conflict, OnConflict::Replace);
}

#[test]
fn repeated_keys_anywhere_are_no_body() {
    let repeated = [
        GOOD.replacen('{', r#"{"agent_id":"9","#, 1),
        GOOD.replacen('{', r#"{"comment":1,"comment":2,"#, 1),
        GOOD.replacen('{', r#"{"\u0069d":"r0","#, 1),
        GOOD.replacen('{', r#"{"comment":{"a":1,"a":1},"#, 1),
        GOOD.replacen('{', r#"{"call_id":[{"a":1,"a":1}],"#, 1),
    ];
    for record in repeated {
        let body = envelope(&format!(r#"{{"records":[{GOOD},{record}]}}"#));
        assert_eq!(code(both(&body)).code, ResultCode::NoBody, "{body}");
    }
    for body in [
        envelope(&format!(r#"{{"records":[{GOOD}],"records":[{GOOD}]}}"#)),
        envelope(&format!(
            r#"{{"records":[{GOOD}],"onConflict":"skip","onConflict":"skip"}}"#
        )),
        envelope(&format!(r#"{{"records":[{GOOD}],"x":1,"x":1}}"#)),
        envelope(r#"{"records":{"a":1,"a":1}}"#),
        envelope(r#"{"records":null,"onConflict":{"a":1,"a":1}}"#),
        r#"{"request":{"version":"2.0"},"msgBody":[{"a":1,"a":1}]}"#.to_owned(),
        r#"{"request":{"version":"2.0"},"request":{"version":"2.0"},"msgBody":{}}"#.to_owned(),
        r#"{"request":{"version":"2.0"},"msgBody":{},"msgBody":{}}"#.to_owned(),
    ] {
        assert_eq!(code(both(&body)).code, ResultCode::NoBody, "{body}");
    }
}

#[test]
fn a_bad_record_after_good_ones_is_named_by_its_index() {
    let bad = GOOD.replace(r#""agent_id":"1""#, r#""agent_id":true"#);
    let later = GOOD.replace(r#""id":"r1""#, r#""id":null"#);
    let body = envelope(&format!(r#"{{"records":[{GOOD},{GOOD},{bad},{later},5]}}"#));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::BadFormat, "records[2].agent_id")
    );
    let body = envelope(&format!(r#"{{"records":[{GOOD},"x",{bad}]}}"#));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::BadFormat, "records[1]")
    );
}

#[test]
fn a_records_first_bad_column_is_in_column_order() {
    // op_type (column 9) is missing and agent_id (column 3) has the wrong type, written after.
    let record = r#"{"id":"r1","developer_id":"d","begin_time":"b","end_time":"e","agent_id":[]}"#;
    let body = envelope(&format!(r#"{{"records":[{record}]}}"#));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::BadFormat, "records[0].agent_id")
    );
    let record = r#"{"op_type":{},"id":"r1","developer_id":"d","begin_time":"b","end_time":"e"}"#;
    let body = envelope(&format!(r#"{{"records":[{record}]}}"#));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::Null, "records[0].agent_id")
    );
}

#[test]
fn numbers_are_taken_as_serde_json_writes_them() {
    for n in [
        "4",
        "-4",
        "4.0",
        "1e300",
        "-0",
        "0.1",
        "18446744073709551615",
        "18446744073709551616",
        "1E2",
    ] {
        let record = GOOD.replace(r#""op_type":"2""#, &format!(r#""op_type":{n}"#));
        let body = envelope(&format!(r#"{{"records":[{record}]}}"#));
        let r = both(&body).expect("a number is a text");
        assert!(!r.records[0].0[9].is_empty(), "{n}");
    }
}

#[test]
fn the_checks_come_in_the_specs_order_not_the_bodys() {
    let bad = GOOD.replace(r#""id":"r1""#, r#""id":true"#);
    for (msg_body, want) in [
        (
            format!(r#"{{"onConflict":"x","records":[{bad}]}}"#),
            ApiError::new(ResultCode::BadFormat, "onConflict"),
        ),
        (
            format!(r#"{{"records":[{bad}],"onConflict":""}}"#),
            ApiError::new(ResultCode::Empty, "onConflict"),
        ),
        (
            r#"{"onConflict":"x","records":[]}"#.to_owned(),
            ApiError::new(ResultCode::Empty, "records"),
        ),
        (
            r#"{"onConflict":"x","records":null}"#.to_owned(),
            ApiError::new(ResultCode::Null, "records"),
        ),
        (
            r#"{"onConflict":"x"}"#.to_owned(),
            ApiError::new(ResultCode::Null, "records"),
        ),
        (
            r#"{"records":"x"}"#.to_owned(),
            ApiError::new(ResultCode::BadFormat, "records"),
        ),
        (
            r#"{"records":{}}"#.to_owned(),
            ApiError::new(ResultCode::BadFormat, "records"),
        ),
    ] {
        assert_eq!(code(both(&envelope(&msg_body))), want, "{msg_body}");
    }
    // Not JSON anywhere, even after a bad record: no body. A bad version comes next.
    let body = envelope(&format!(r#"{{"records":[{bad}]}}"#));
    assert_eq!(code(both(&format!("{body} x"))).code, ResultCode::NoBody);
    let body = r#"{"msgBody":{"records":[1]},"request":{"version":"2.00"}}"#;
    assert_eq!(code(both(body)).code, ResultCode::BadVersion);
    for body in [
        "",
        "[]",
        "null",
        r#"{"request":{"version":"2.0"}}"#,
        r#"{"request":{"version":"2.0"},"msgBody":null}"#,
        r#"{"request":{"version":"2.0"},"msgBody":"x"}"#,
    ] {
        assert_eq!(code(both(body)).code, ResultCode::NoBody, "{body}");
    }
}

#[test]
fn a_body_that_is_not_utf8_anywhere_is_no_body() {
    let good = envelope(&format!(r#"{{"records":[{GOOD}],"x":"y"}}"#));
    for (from, to) in [
        ("y", &b"\xff"[..]),
        ("r1", b"\xc3"),
        ("}", b"}\x80"),
        ("2.0", b"2.\xe9"),
    ] {
        let at = good.rfind(from).expect("in the body");
        let body = [
            &good.as_bytes()[..at],
            to,
            &good.as_bytes()[at + from.len()..],
        ]
        .concat();
        assert_eq!(open_import(&body), Err(ApiError::plain(ResultCode::NoBody)));
        assert_eq!(
            open_request(&body).map(drop),
            Err(ApiError::plain(ResultCode::NoBody))
        );
    }
}

#[test]
fn too_many_records_are_too_long_whatever_they_hold() {
    let list = |n: usize, item: &str| vec![item; n].join(",");
    let body = envelope(&format!(
        r#"{{"records":[{}],"onConflict":"x"}}"#,
        list(MAX_IMPORT_RECORDS + 1, "1")
    ));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::TooLong, "records")
    );
    let body = envelope(&format!(
        r#"{{"records":[{}]}}"#,
        list(MAX_IMPORT_RECORDS, "{}")
    ));
    assert_eq!(
        code(both(&body)),
        ApiError::new(ResultCode::Null, "records[0].id")
    );
    let body = envelope(&format!(
        r#"{{"records":[{}]}}"#,
        list(MAX_IMPORT_RECORDS, GOOD)
    ));
    assert_eq!(
        both(&body).expect("the most records").records.len(),
        MAX_IMPORT_RECORDS
    );
}

/// A JSON text: an object of the given members, written in order (repeats kept).
fn object(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).expect("a key")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A value for a column or any other member: mostly a string, sometimes not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9 é\\-]{0,6}".prop_map(|s| serde_json::to_string(&s).expect("a string")),
        1 => Just(r#""\u00e9\n""#.to_owned()),
        1 => prop_oneof![Just("7"), Just("-2"), Just("2.50"), Just("1e3"), Just("null"), Just("true")]
            .prop_map(str::to_owned),
        1 => prop_oneof![Just("[]"), Just("[1,{\"a\":1}]"), Just("{\"a\":1}"), Just("{\"a\":1,\"a\":2}")]
            .prop_map(str::to_owned),
    ]
}

/// A column's value in a record: mostly a string, else null or any value, or absent (`None`).
fn column_value(required: bool) -> impl Strategy<Value = Option<String>> {
    let absent = if required { 1 } else { 4 };
    prop_oneof![
        absent => Just(None),
        16 => "[a-z0-9 é]{0,4}".prop_map(|s| Some(serde_json::to_string(&s).expect("a string"))),
        1 => Just(Some("null".to_owned())),
        2 => value().prop_map(Some),
    ]
}

/// A record: each column maybe, in any order; now and then another member, or a repeated one.
fn record() -> impl Strategy<Value = String> {
    let columns: Vec<_> = COLUMNS
        .iter()
        .map(|c| column_value(c.required).prop_map(move |v| v.map(|v| (c.name.to_owned(), v))))
        .collect();
    let extra = prop_oneof![
        6 => Just(None),
        1 => (prop_oneof![Just("comment"), Just("ID"), Just("id")], value())
            .prop_map(|(k, v)| Some((k.to_owned(), v))),
    ];
    let object_record = (columns, extra)
        .prop_map(|(columns, extra)| {
            columns
                .into_iter()
                .flatten()
                .chain(extra)
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .prop_map(|members| object(&members));
    prop_oneof![8 => object_record, 1 => value()]
}

fn records() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(record(), 0..5).prop_map(|r| format!("[{}]", r.join(","))),
        1 => value(),
    ]
}

fn on_conflict() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"fail\""),
        Just("\"skip\""),
        Just("\"replace\""),
        Just("\"\""),
        Just("\"Skip\""),
        Just("null"),
        Just("1"),
        Just("[\"skip\"]"),
    ]
    .prop_map(str::to_owned)
}

fn msg_body() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        6 => records().prop_map(|v| ("records".to_owned(), v)),
        3 => on_conflict().prop_map(|v| ("onConflict".to_owned(), v)),
        1 => value().prop_map(|v| ("other".to_owned(), v)),
    ];
    prop_oneof![
        9 => prop::collection::vec(member, 0..4).prop_map(|m| object(&m)),
        1 => value(),
    ]
}

fn body() -> impl Strategy<Value = String> {
    let version = prop_oneof![
        8 => Just(r#"{"version":"2.0"}"#.to_owned()),
        1 => prop_oneof![Just(r#"{"version":2.0}"#), Just("null"), Just(r#"{"version":"2.0","version":"2.0"}"#)]
            .prop_map(str::to_owned),
    ];
    let member = prop_oneof![
        4 => msg_body().prop_map(|v| ("msgBody".to_owned(), v)),
        3 => version.prop_map(|v| ("request".to_owned(), v)),
        1 => value().prop_map(|v| ("x".to_owned(), v)),
    ];
    (prop::collection::vec(member, 0..4), 0..20u8).prop_map(|(m, cut)| {
        let text = object(&m);
        // Now and then a body cut short: not JSON.
        if cut == 0 {
            let mut at = text.len() / 2;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_owned()
        } else {
            text
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn generated_bodies_read_as_the_reference_reads_them(body in body()) {
        prop_assert_eq!(open_import(body.as_bytes()), reference(&body), "{}", body);
    }
}
