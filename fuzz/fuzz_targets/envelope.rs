//! The request envelope and each interface's `msgBody`: any body is opened or refused with a
//! result code, never a panic, and what is accepted holds what the types promise. The import
//! body's one-pass reader answers exactly what the reference (open, then `parse_import`) does.
#![no_main]

use ccfs_protocol::envelope::open_request;
use ccfs_protocol::import_body::open_import;
use ccfs_protocol::messages::{parse_download, parse_import, parse_status, GenerateRequest};
use jiff::SignedDuration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fast = open_import(data);
    let body = match open_request(data) {
        Ok(body) => body,
        Err(e) => {
            assert_eq!(fast, Err(e));
            return;
        }
    };
    let span = SignedDuration::from_hours(72);
    if let Ok(req) = GenerateRequest::parse(&body, span) {
        assert!(req.window.begin() <= req.window.end());
        assert!(req.window.end().duration_since(req.window.begin()) <= span);
        let url = req.callback_url.as_url();
        assert!(matches!(url.scheme(), "http" | "https") && url.host().is_some());
    }
    if let Ok(name) = parse_download(&body) {
        assert_eq!(name.as_str().parse().ok(), Some(name.clone()));
    }
    if let Ok(id) = parse_status(&body) {
        assert_eq!(id.as_str().len(), 32);
    }
    // Last: it takes the body (its records move out of it).
    let reference = parse_import(body);
    if let Ok(import) = &reference {
        assert!(import.records.len() <= ccfs_protocol::messages::MAX_IMPORT_RECORDS);
    }
    assert_eq!(fast, reference);
});
