//! The request envelope and each interface's `msgBody`: any body is opened or refused with a
//! result code, never a panic, and what is accepted holds what the types promise.
#![no_main]

use ccfs_protocol::envelope::open_request;
use ccfs_protocol::messages::{parse_download, parse_import, parse_status, GenerateRequest};
use jiff::SignedDuration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = open_request(data) else {
        return;
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
    if let Ok(import) = parse_import(body) {
        assert!(import.records.len() <= ccfs_protocol::messages::MAX_IMPORT_RECORDS);
    }
});
