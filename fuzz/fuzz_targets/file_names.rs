//! The file names a client sends or reads (the zip name of a download, the CSV part names
//! inside it) and the response id: what parses prints back exactly as it was written, and the
//! zip name names the response id it carries.
#![no_main]

use ccfs_protocol::{CsvPartName, ResponseId, ZipFileName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Some(name) = ZipFileName::parse(s) {
        assert_eq!(name.as_str(), s);
        assert!(s.contains(name.response_id().as_str()));
    }
    if let Some(part) = CsvPartName::parse(s) {
        assert_eq!(part.as_str(), s);
    }
    if let Some(id) = ResponseId::parse(s) {
        assert_eq!(id.as_str(), s);
    }
});
