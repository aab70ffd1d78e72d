//! `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP interfaces (the envelope,
//! each `msgBody`, each `resultCode`, the auth-v2 header and the callback as a webhook).
//!
//! The document is kept in the repository (`crates/ccfs-server/openapi.json`) and compiled
//! in, so it is served without a file or a signature, like `/healthz`. Its tests hold it to
//! the code: it parses as OpenAPI 3.1, every reference resolves, it describes exactly the
//! routes of [`super::routes`], and its result codes are [`ResultCode::ALL`].

use axum::http::header;
use axum::response::IntoResponse;

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

/// The document, as kept in the repository.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use ccfs_protocol::ResultCode;
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn it_is_an_openapi_3_1_document_of_this_version() {
        let spec = oas3::from_json(DOCUMENT).expect("openapi.json is OpenAPI 3.1");
        let version = spec
            .validate_version()
            .expect("a supported OpenAPI version");
        assert_eq!((version.major, version.minor), (3, 1));
        assert_eq!(spec.info.version, env!("CARGO_PKG_VERSION"));
    }

    /// Every `$ref` in the document, with where it is.
    fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                        _ => refs(child, format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(list) => {
                for (i, child) in list.iter().enumerate() {
                    refs(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_component_is_used() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(found.len() > 30, "{found:?}");
        for (at, target) in &found {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {target} is not a reference inside the document"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{at}: {target} resolves to nothing"
            );
        }
        let components = doc["components"].as_object().expect("components");
        for (kind, entries) in components {
            for name in entries.as_object().expect("a map").keys() {
                let target = format!("#/components/{kind}/{name}");
                let used = found.iter().any(|(_, t)| *t == target) || kind == "securitySchemes";
                assert!(used, "{target} is never used");
            }
        }
    }

    #[test]
    fn it_describes_every_route_of_the_router_and_no_other() {
        let spec = oas3::from_json(DOCUMENT).expect("OpenAPI 3.1");
        let routes: Vec<_> = crate::http::routes().collect();
        for (method, path) in &routes {
            let operation = spec
                .operation(method, path)
                .unwrap_or_else(|| panic!("{method} {path} is served but not described"));
            assert!(operation.operation_id.is_some(), "{method} {path}");
            assert!(operation.responses.as_ref().is_some_and(|r| !r.is_empty()));
        }
        let described: Vec<_> = spec.operations().map(|(p, m, _)| (m, p)).collect();
        for (method, path) in &described {
            assert!(
                routes
                    .iter()
                    .any(|(m, p)| m == method && *p == path.as_str()),
                "{method} {path} is described but not served"
            );
        }
        assert_eq!(described.len(), routes.len());
        assert!(spec.operation(&axum::http::Method::GET, PATH).is_some());
    }

    #[test]
    fn signed_interfaces_say_so_and_unsigned_ones_too() {
        let doc = document();
        for (method, path) in crate::http::routes() {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            let signed = method == axum::http::Method::POST;
            let want = if signed {
                serde_json::json!([{"authV2": []}])
            } else {
                serde_json::json!([])
            };
            assert_eq!(op["security"], want, "{method} {path}");
            // A signed interface answers the 401 envelope.
            assert_eq!(
                op["responses"].get("401").is_some(),
                signed,
                "{method} {path}"
            );
        }
        let scheme = &doc["components"]["securitySchemes"]["authV2"];
        assert_eq!(scheme["in"], "header");
        assert_eq!(scheme["name"], "Authorization");
    }

    #[test]
    fn its_result_codes_are_the_protocol_s() {
        let doc = document();
        let listed: Vec<&str> = doc["components"]["schemas"]["ResultCode"]["enum"]
            .as_array()
            .expect("the ResultCode enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let known: Vec<&str> = ResultCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, known);
        let described = doc["components"]["schemas"]["ResultCode"]["description"]
            .as_str()
            .expect("described");
        for code in known {
            assert!(described.contains(&format!("`{code}`")), "{code}");
        }
    }

    #[test]
    fn its_states_are_the_model_s() {
        use crate::model::{CallbackState, JobState};
        let doc = document();
        let listed = |schema: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["properties"]["state"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("the {schema} state enum"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let jobs: Vec<String> = JobState::ALL.iter().map(|s| s.as_str().into()).collect();
        assert_eq!(listed("StatusData"), jobs);
        let callbacks: Vec<String> = CallbackState::ALL
            .iter()
            .map(|s| s.as_str().into())
            .collect();
        assert_eq!(listed("CallbackStatus"), callbacks);
    }

    #[test]
    fn each_interface_s_msg_body_is_the_protocol_s() {
        use ccfs_protocol::messages::{GenerateBody, GenerateData, ImportData, StatusData};
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        // The documented properties are the ones the protocol types write and read.
        let keys = |v: Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        let documented = |name: &str| -> Vec<String> { keys(schemas[name]["properties"].clone()) };
        let generate = GenerateBody {
            begin_time: String::new(),
            end_time: String::new(),
            account_id: Some(String::new()),
            agent_id: Some(String::new()),
            callback_url: String::new(),
        };
        assert_eq!(
            keys(serde_json::to_value(generate).unwrap()),
            documented("GenerateMsgBody")
        );
        let data = GenerateData {
            response_id: String::new(),
        };
        assert_eq!(
            keys(serde_json::to_value(data).unwrap()),
            documented("GenerateData")
        );
        assert_eq!(
            keys(serde_json::to_value(ImportData::default()).unwrap()),
            documented("ImportData")
        );
        let status: StatusData = serde_json::from_value(serde_json::json!({
            "responseId": "", "state": "", "agentOprInfoFileName": "", "attempts": 1,
            "recordCount": 1, "fileCount": 1, "fileSize": 1, "sha256": "", "createdAt": "",
            "finishedAt": "", "expiresAt": "", "error": "",
            "callback": {"state": "", "attempts": 0, "lastError": ""}
        }))
        .unwrap();
        assert_eq!(
            keys(serde_json::to_value(status).unwrap()),
            documented("StatusData")
        );
        let columns: Vec<String> = {
            let mut c: Vec<String> = ccfs_protocol::record::COLUMNS
                .iter()
                .map(|c| c.name.to_owned())
                .collect();
            c.sort();
            c
        };
        assert_eq!(columns, documented("Record"));
        for column in ccfs_protocol::record::COLUMNS {
            let schema = &schemas["Record"]["properties"][column.name];
            assert_eq!(schema["maxLength"], column.max_len, "{}", column.name);
            let required = schemas["Record"]["required"]
                .as_array()
                .expect("required")
                .iter()
                .any(|r| r == column.name);
            assert_eq!(required, column.required, "{}", column.name);
        }
    }
}
