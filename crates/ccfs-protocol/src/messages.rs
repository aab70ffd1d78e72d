//! The typed `msgBody` of each interface, with the SPEC's validation order, and the typed
//! `resultData` of the answers.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::callback_url::CallbackUrl;
use crate::codes::{ApiError, ResultCode};
use crate::fields::{check, FieldSpec};
use crate::names::{ResponseId, ZipFileName};
use crate::record::RawRecord;
use crate::time::{describe_span, parse_local, LocalWindow, WindowError};

/// Longest accepted `callBackURL`.
pub const MAX_CALLBACK_URL: usize = 1024;
/// Most records in one import request.
pub const MAX_IMPORT_RECORDS: usize = 10_000;

/// A validated generate request (`queryAgentOprInfoData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    pub window: LocalWindow,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
    pub callback_url: CallbackUrl,
}

impl GenerateRequest {
    const FIELDS: [FieldSpec; 5] = [
        FieldSpec::required("beginTime", 19),
        FieldSpec::required("endTime", 19),
        FieldSpec::optional("accountId", 20),
        FieldSpec::optional("agentId", 20),
        FieldSpec::required("callBackURL", MAX_CALLBACK_URL),
    ];

    /// Validates a `msgBody` up to and including the span check (`0300014`). Ownership of the
    /// account and flow control are the server's checks, which follow.
    pub fn parse(body: &Map<String, Value>, max_span: SignedDuration) -> Result<Self, ApiError> {
        let v = check(body, &Self::FIELDS)?;
        let [Some(begin), Some(end), account, agent, Some(url)] = v[..] else {
            return Err(ApiError::new(ResultCode::Null, "beginTime"));
        };
        let begin = parse_local(begin).ok_or(ApiError::new(ResultCode::BadFormat, "beginTime"))?;
        let end = parse_local(end).ok_or(ApiError::new(ResultCode::BadFormat, "endTime"))?;
        let callback_url = CallbackUrl::parse_request(url)
            .ok_or(ApiError::new(ResultCode::BadFormat, "callBackURL"))?;
        let window = LocalWindow::new(begin, end, max_span).map_err(|e| match e {
            WindowError::BeginAfterEnd => ApiError::plain(ResultCode::BeginAfterEnd),
            WindowError::SpanTooLong => {
                ApiError::new(ResultCode::SpanTooLong, &describe_span(max_span))
            }
        })?;
        Ok(Self {
            window,
            account_id: account.map(str::to_owned),
            agent_id: agent.map(str::to_owned),
            callback_url,
        })
    }
}

/// The generate `msgBody` as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateBody {
    #[serde(rename = "beginTime")]
    pub begin_time: String,
    #[serde(rename = "endTime")]
    pub end_time: String,
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
    #[serde(rename = "agentId", skip_serializing_if = "Option::is_none", default)]
    pub agent_id: Option<String>,
    #[serde(rename = "callBackURL")]
    pub callback_url: String,
}

/// `resultData` of a successful generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateData {
    #[serde(rename = "responseId")]
    pub response_id: String,
}

/// The download `msgBody`: the zip file name (`downloadAgentOprInfoFile`).
pub fn parse_download(body: &Map<String, Value>) -> Result<ZipFileName, ApiError> {
    const NAME: &str = "agentOprInfoFileName";
    let v = check(body, &[FieldSpec::required(NAME, 49)])?;
    v[0].and_then(ZipFileName::parse)
        .ok_or(ApiError::new(ResultCode::BadFormat, NAME))
}

/// The status `msgBody`: the response id (`queryAgentOprInfoStatus`).
pub fn parse_status(body: &Map<String, Value>) -> Result<ResponseId, ApiError> {
    const NAME: &str = "responseId";
    let v = check(body, &[FieldSpec::required(NAME, 32)])?;
    v[0].and_then(ResponseId::parse)
        .ok_or(ApiError::new(ResultCode::BadFormat, NAME))
}

/// Most conflicting record ids an import answer lists.
pub const MAX_CONFLICT_IDS: usize = 10;

/// What an import does with a record whose `(developer_id, id)` is already stored with
/// different content (`msgBody.onConflict`; `ccfs import --on-conflict`). A record equal to
/// the stored one is never a conflict: it is counted as already present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// The whole batch stores nothing, and the answer names the conflicting records.
    #[default]
    Fail,
    /// The stored record stays as it is; the rest of the batch is stored.
    Skip,
    /// The new content overwrites the stored record.
    Replace,
}

impl OnConflict {
    pub const ALL: [OnConflict; 3] = [Self::Fail, Self::Skip, Self::Replace];

    /// The wire name: `fail`, `skip` or `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::Replace => "replace",
        }
    }

    /// Parses a wire name (exactly, in lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A shape-checked import request: its records, not yet validated, and what to do with
/// conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    pub records: Vec<RawRecord>,
    pub on_conflict: OnConflict,
}

/// `msgBody.records` of an import.
pub(crate) const RECORDS: &str = "records";
/// `msgBody.onConflict` of an import.
pub(crate) const ON_CONFLICT: &str = "onConflict";

/// The `onConflict` of an import `msgBody`: absent or null is `fail`, empty `0300002`, anything
/// but one of the names `0300004`.
pub(crate) fn on_conflict_of(body: &Map<String, Value>) -> Result<OnConflict, ApiError> {
    // Longer than any valid value is a bad format, not "too long": the set of values is fixed.
    match check(body, &[FieldSpec::optional(ON_CONFLICT, usize::MAX)])?[0] {
        None => Ok(OnConflict::default()),
        Some(s) => {
            OnConflict::parse(s).ok_or_else(|| ApiError::new(ResultCode::BadFormat, ON_CONFLICT))
        }
    }
}

/// The import `msgBody`: shape-checked records, not yet validated (validation needs each
/// developer's time zone), and `onConflict` (absent or null: `fail`). Errors name the record:
/// `records[3].agent_id`. `records` is checked first (null, not an array, empty, too many),
/// then `onConflict` (empty `0300002`, not one of `fail`, `skip`, `replace` `0300004`), then
/// each record.
///
/// The server reads import bodies with [`crate::import_body::open_import`], which answers as
/// this does after [`crate::envelope::open_request`] without building a `Value` per record.
pub fn parse_import(mut body: Map<String, Value>) -> Result<ImportRequest, ApiError> {
    // Taken out of the body, so that each record's strings move into it instead of being copied.
    let list = match body.remove(RECORDS) {
        None | Some(Value::Null) => return Err(ApiError::new(ResultCode::Null, RECORDS)),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::new(ResultCode::BadFormat, RECORDS)),
    };
    if list.is_empty() {
        return Err(ApiError::new(ResultCode::Empty, RECORDS));
    }
    if list.len() > MAX_IMPORT_RECORDS {
        return Err(ApiError::new(ResultCode::TooLong, RECORDS));
    }
    let on_conflict = on_conflict_of(&body)?;
    let records = list
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(obj) => RawRecord::from_json_object(obj).map_err(|e| record_error(i, &e)),
            _ => Err(ApiError::new(
                ResultCode::BadFormat,
                &format!("{RECORDS}[{i}]"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(ImportRequest {
        records,
        on_conflict,
    })
}

/// The error of an import whose batch stores nothing because of conflicts (`onConflict`
/// `fail`): `0300004` naming the first conflicting record's id, e.g. "The format of
/// records[3].id is incorrect. It conflicts with a stored record with different content; 2
/// records of the batch conflict (ids r7, r9); nothing was stored. Send onConflict skip or
/// replace." `first` holds the index and
/// id of the first conflicting records, in batch order; `count` how many there are in all.
pub fn conflict_error(count: u64, first: &[(usize, String)]) -> ApiError {
    let index = first.first().map_or(0, |(i, _)| *i);
    let mut e = ApiError::new(ResultCode::BadFormat, &format!("records[{index}].id"));
    let ids = first
        .iter()
        .map(|(_, id)| id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let more = if count > first.len() as u64 {
        ", …"
    } else {
        ""
    };
    let (records, ids_) = if count == 1 {
        ("record of the batch conflicts", "id")
    } else {
        ("records of the batch conflict", "ids")
    };
    e.desc.push_str(&format!(
        " It conflicts with a stored record with different content; {count} {records} \
         ({ids_} {ids}{more}); nothing was stored. Send onConflict skip or replace."
    ));
    e
}

/// The error for field `e` of record number `index` of an import.
pub fn record_error(index: usize, e: &crate::record::FieldError) -> ApiError {
    ApiError::new(e.code, &format!("records[{index}].{}", e.field))
}

/// `resultData` of a successful import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportData {
    /// New records stored.
    pub inserted: u64,
    /// Records stored already with the same content (or sent twice in the batch).
    #[serde(rename = "alreadyPresent")]
    pub already_present: u64,
    /// Records whose id is stored with different content: left as stored with `skip`,
    /// overwritten with `replace`.
    #[serde(default)]
    pub conflicts: u64,
    /// Conflicting records that overwrote the stored one (`replace`).
    #[serde(default)]
    pub replaced: u64,
    /// The ids of the first [`MAX_CONFLICT_IDS`] conflicting records, in batch order.
    #[serde(rename = "conflictIds", default)]
    pub conflict_ids: Vec<String>,
}

/// The import `msgBody` as a client sends it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportBody<'a, R: Serialize> {
    pub records: &'a [R],
    #[serde(rename = "onConflict")]
    pub on_conflict: OnConflict,
}

/// The callback `msgBody` the server POSTs to `callBackURL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackBody {
    #[serde(rename = "responseId")]
    pub response_id: String,
    #[serde(rename = "agentOprInfoFileName")]
    pub agent_opr_info_file_name: String,
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
}

/// The state of a callback delivery, in a status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackStatus {
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    #[serde(rename = "lastError", skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
}

/// `resultData` of the status extension. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusData {
    #[serde(rename = "responseId")]
    pub response_id: String,
    /// `queued`, `running`, `succeeded`, `failed`, `expired` or `cancelled`.
    pub state: String,
    #[serde(rename = "agentOprInfoFileName")]
    pub agent_opr_info_file_name: String,
    /// How many times a worker took the job up (more than 1 after a crash or a retry).
    #[serde(default)]
    pub attempts: u32,
    #[serde(
        rename = "recordCount",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub record_count: Option<u64>,
    #[serde(rename = "fileCount", skip_serializing_if = "Option::is_none", default)]
    pub file_count: Option<u32>,
    #[serde(rename = "fileSize", skip_serializing_if = "Option::is_none", default)]
    pub file_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(
        rename = "finishedAt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub finished_at: Option<String>,
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback: Option<CallbackStatus>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gen(v: Value) -> Result<GenerateRequest, ResultCode> {
        GenerateRequest::parse(v.as_object().unwrap(), SignedDuration::from_hours(72))
            .map_err(|e| e.code)
    }

    #[test]
    fn generate_validation_order() {
        let ok = json!({"beginTime":"2024-05-01 00:00:00","endTime":"2024-05-02 00:00:00","callBackURL":"https://example.com/cb"});
        assert!(gen(ok.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            gen(o)
        };
        assert_eq!(
            with("beginTime", Value::Null).unwrap_err(),
            ResultCode::Null
        );
        assert_eq!(
            with("callBackURL", json!("")).unwrap_err(),
            ResultCode::Empty
        );
        assert_eq!(with("accountId", json!("")).unwrap_err(), ResultCode::Empty);
        assert_eq!(
            with("agentId", json!("x".repeat(21))).unwrap_err(),
            ResultCode::TooLong
        );
        assert_eq!(
            with("beginTime", json!("2024-05-01 00:00:00.0")).unwrap_err(),
            ResultCode::TooLong
        );
        assert_eq!(
            with(
                "callBackURL",
                json!(format!("https://e.com/{}", "a".repeat(1024)))
            )
            .unwrap_err(),
            ResultCode::TooLong
        );
        assert_eq!(
            with("endTime", json!("2024/05/02 00:00")).unwrap_err(),
            ResultCode::BadFormat
        );
        assert_eq!(
            with("callBackURL", json!("ftp://example.com/cb")).unwrap_err(),
            ResultCode::BadFormat
        );
        assert_eq!(
            with("callBackURL", json!("/relative")).unwrap_err(),
            ResultCode::BadFormat
        );
        assert_eq!(
            with("callBackURL", json!("https://u:p@example.com/cb")).unwrap_err(),
            ResultCode::BadFormat
        );
        assert_eq!(
            with("beginTime", json!("2024-05-03 00:00:00")).unwrap_err(),
            ResultCode::BeginAfterEnd
        );
        assert_eq!(
            with("endTime", json!("2024-05-04 00:00:01")).unwrap_err(),
            ResultCode::SpanTooLong
        );
    }

    #[test]
    fn download_and_status_bodies() {
        let d = |v: Value| parse_download(v.as_object().unwrap()).map_err(|e| e.code);
        assert_eq!(d(json!({})).unwrap_err(), ResultCode::Null);
        assert_eq!(
            d(json!({"agentOprInfoFileName":""})).unwrap_err(),
            ResultCode::Empty
        );
        assert_eq!(
            d(json!({"agentOprInfoFileName":"x".repeat(50)})).unwrap_err(),
            ResultCode::TooLong
        );
        assert_eq!(
            d(json!({"agentOprInfoFileName":"../etc/passwd"})).unwrap_err(),
            ResultCode::BadFormat
        );
        assert!(
            d(json!({"agentOprInfoFileName":"20240501_0123456789abcdef0123456789abcdef.zip"}))
                .is_ok()
        );
        let s = |v: Value| parse_status(v.as_object().unwrap()).map_err(|e| e.code);
        assert_eq!(
            s(json!({"responseId":"x".repeat(33)})).unwrap_err(),
            ResultCode::TooLong
        );
        assert_eq!(
            s(json!({"responseId":"X".repeat(32)})).unwrap_err(),
            ResultCode::BadFormat
        );
    }

    #[test]
    fn import_bodies() {
        let i =
            |v: Value| parse_import(v.as_object().unwrap().clone()).map_err(|e| (e.code, e.desc));
        assert_eq!(i(json!({})).unwrap_err().0, ResultCode::Null);
        assert_eq!(
            i(json!({"records":{}})).unwrap_err().0,
            ResultCode::BadFormat
        );
        assert_eq!(i(json!({"records":[]})).unwrap_err().0, ResultCode::Empty);
        let (code, desc) = i(json!({"records":[1]})).unwrap_err();
        assert_eq!(code, ResultCode::BadFormat);
        assert!(desc.contains("records[0]"));
        let (code, desc) = i(json!({"records":[{"id":"x"}]})).unwrap_err();
        assert_eq!(code, ResultCode::Null);
        assert!(desc.contains("records[0].developer_id"), "{desc}");
    }

    #[test]
    fn import_on_conflict() {
        let rec = json!({"id":"x","developer_id":"d","agent_id":"1","begin_time":"2024-05-01 10:00:00","end_time":"2024-05-01 10:00:01","op_type":"2"});
        let i = |extra: Value| {
            let mut body = json!({ "records": [rec.clone()] });
            if !extra.is_null() {
                body["onConflict"] = extra;
            }
            parse_import(body.as_object().unwrap().clone()).map(|r| r.on_conflict)
        };
        assert_eq!(i(Value::Null), Ok(OnConflict::Fail));
        assert_eq!(
            parse_import(
                json!({"records":[rec.clone()],"onConflict":null})
                    .as_object()
                    .unwrap()
                    .clone()
            )
            .map(|r| r.on_conflict),
            Ok(OnConflict::Fail)
        );
        assert_eq!(i(json!("fail")), Ok(OnConflict::Fail));
        assert_eq!(i(json!("skip")), Ok(OnConflict::Skip));
        assert_eq!(i(json!("replace")), Ok(OnConflict::Replace));
        assert_eq!(
            i(json!("")).unwrap_err(),
            ApiError::new(ResultCode::Empty, "onConflict")
        );
        for bad in [json!("Skip"), json!("overwrite"), json!(1), json!(["skip"])] {
            assert_eq!(
                i(bad.clone()).unwrap_err(),
                ApiError::new(ResultCode::BadFormat, "onConflict"),
                "{bad}"
            );
        }
        // The records come first.
        let e = parse_import(
            json!({"records":[],"onConflict":"x"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(e.unwrap_err().code, ResultCode::Empty);
        assert_eq!(
            serde_json::to_value(ImportBody {
                records: &[1],
                on_conflict: OnConflict::Replace
            })
            .unwrap(),
            json!({"records":[1],"onConflict":"replace"})
        );
    }

    #[test]
    fn conflict_errors_name_the_first_record_and_count_them_all() {
        let e = conflict_error(1, &[(3, "r7".into())]);
        assert_eq!(e.code, ResultCode::BadFormat);
        assert_eq!(
            e.desc,
            "The format of records[3].id is incorrect. It conflicts with a stored record with \
             different content; 1 record of the batch conflicts (id r7); nothing was stored. \
             Send onConflict skip or replace."
        );
        let first: Vec<(usize, String)> = (0..MAX_CONFLICT_IDS)
            .map(|i| (i + 2, format!("c{i}")))
            .collect();
        let e = conflict_error(12, &first);
        assert!(
            e.desc
                .starts_with("The format of records[2].id is incorrect. "),
            "{}",
            e.desc
        );
        assert!(
            e.desc.contains(
                "12 records of the batch conflict (ids c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, …)"
            ),
            "{}",
            e.desc
        );
    }

    #[test]
    fn import_data_reads_answers_without_the_conflict_members() {
        let d: ImportData =
            serde_json::from_value(json!({"inserted":2,"alreadyPresent":1})).unwrap();
        assert_eq!((d.inserted, d.already_present, d.conflicts), (2, 1, 0));
        let v = serde_json::to_value(ImportData {
            inserted: 1,
            already_present: 0,
            conflicts: 1,
            replaced: 1,
            conflict_ids: vec!["r1".into()],
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"inserted":1,"alreadyPresent":0,"conflicts":1,"replaced":1,"conflictIds":["r1"]})
        );
    }

    #[test]
    fn callback_body_shape() {
        let b = CallbackBody {
            response_id: "r".into(),
            agent_opr_info_file_name: "f".into(),
            account_id: None,
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"responseId":"r","agentOprInfoFileName":"f"}"#
        );
    }
}
