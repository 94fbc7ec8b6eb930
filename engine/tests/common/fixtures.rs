//! Reading the RTP recordings in `tests/fixtures/` (made by `scripts/record-fixtures.sh`).
//!
//! A `.rtp` file is a sequence of records: a 2-byte big-endian length, then one RTP packet as
//! received.

use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every packet of the recording `name`, in arrival order.
pub fn rtp_records(name: &str) -> Vec<Vec<u8>> {
    let path = fixture_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rest = bytes.as_slice();
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let [hi, lo, tail @ ..] = rest else {
            panic!("{name}: dangling byte at the end");
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        assert!(len <= tail.len(), "{name}: record longer than the file");
        packets.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    packets
}
