//! `RtpHeader::parse` on any datagram: every offset it stores lies inside the buffer and in
//! order, the fields are the bytes', the CSRC and extension views stay inside their blocks, and
//! where the webrtc-rs `rtp` crate also reads the packet it reads the same (as
//! `engine/tests/rtp_crosscheck.rs` checks on generated packets).
#![no_main]

use bytes::Bytes;
use corecast_engine::rtp::{write_fixed_header, RtpError, RtpHeader, FIXED_HEADER_LEN};
use corecast_fuzz::foreign;
use libfuzzer_sys::fuzz_target;
use webrtc_util::marshal::Unmarshal;

fuzz_target!(|buf: &[u8]| {
    let h = match RtpHeader::parse(buf) {
        Ok(h) => h,
        Err(e) => {
            check_refusal(buf, e);
            return;
        }
    };
    let len = buf.len();
    assert_eq!(usize::from(h.len), len);
    let csrc_end = FIXED_HEADER_LEN + 4 * usize::from(h.csrc_count);
    assert!(csrc_end <= usize::from(h.payload_start));
    assert!(h.payload_start <= h.payload_end && usize::from(h.payload_end) <= len);
    assert_eq!(h.payload_len() + h.padding_len() + h.payload_start, h.len);
    if buf[0] & 0x20 != 0 {
        assert_eq!(usize::from(h.padding_len()), usize::from(buf[len - 1]));
    } else {
        assert_eq!(h.padding_len(), 0);
    }
    match h.extension {
        Some(ext) => {
            assert!(buf[0] & 0x10 != 0);
            assert_eq!(usize::from(ext.start), csrc_end + 4);
            assert!(ext.start <= ext.end && ext.end == h.payload_start);
        }
        None => assert!(buf[0] & 0x10 == 0 && usize::from(h.payload_start) == csrc_end),
    }
    assert_eq!(h.csrc_count, buf[0] & 0x0f);
    assert_eq!(h.csrcs(buf).count(), usize::from(h.csrc_count));

    // The fields are the bytes': writing them back gives the fixed header received.
    let mut head = [0u8; FIXED_HEADER_LEN];
    write_fixed_header(
        &mut head,
        buf[0],
        h.marker,
        h.payload_type,
        h.seq,
        h.timestamp,
        h.ssrc,
    );
    assert_eq!(head, buf[..FIXED_HEADER_LEN]);

    // Extension elements lie inside the block, in order.
    let block = h
        .extension
        .map_or(0..0, |e| usize::from(e.start)..usize::from(e.end));
    let mut floor = block.start;
    for e in h.extensions(buf) {
        let at = e.data.as_ptr() as usize - buf.as_ptr() as usize;
        assert!(at >= floor && at + e.data.len() <= block.end);
        floor = at + e.data.len();
    }
    assert_eq!(h.payload(buf).len(), usize::from(h.payload_len()));

    let theirs = foreign(|| rtp::packet::Packet::unmarshal(&mut Bytes::copy_from_slice(buf)));
    if let Some(Ok(theirs)) = theirs {
        let t = &theirs.header;
        assert_eq!(
            (h.marker, h.payload_type, h.seq.0, h.timestamp.0, h.ssrc.0),
            (
                t.marker,
                t.payload_type,
                t.sequence_number,
                t.timestamp,
                t.ssrc
            )
        );
        let csrcs: Vec<u32> = h.csrcs(buf).map(|c| c.0).collect();
        assert_eq!(csrcs, t.csrc);
        if rfc8285_block_is_exact(buf, &h) {
            assert_eq!(h.payload(buf), &theirs.payload[..]);
            let ours: Vec<(u8, &[u8])> = h.extensions(buf).map(|e| (e.id, e.data)).collect();
            if matches!(t.extension_profile, 0xBEDE | 0x1000) {
                let theirs: Vec<(u8, &[u8])> = t
                    .extensions
                    .iter()
                    .map(|e| (e.id, &e.payload[..]))
                    .collect();
                assert_eq!(ours, theirs);
            }
        }
    }
});

/// The RFC 8285 elements of the packet's extension block (in the profiles webrtc-rs walks)
/// end exactly at the block's end, with no reserved ID 15. webrtc-rs reads the payload from
/// wherever its walk stops, so only then must it find the payload where we do.
fn rfc8285_block_is_exact(buf: &[u8], h: &RtpHeader) -> bool {
    let Some(ext) = h.extension else {
        return true;
    };
    let two_byte = match ext.profile {
        0xBEDE => false,
        0x1000 => true,
        _ => return true,
    };
    let (mut at, end) = (usize::from(ext.start), usize::from(ext.end));
    while at < end {
        let b = buf[at];
        at += 1;
        if b == 0 {
            continue;
        }
        if two_byte {
            let Some(&len) = buf.get(at) else {
                return false;
            };
            at += 1 + usize::from(len);
        } else if b >> 4 == 15 {
            return false;
        } else {
            at += usize::from(b & 0x0f) + 1;
        }
    }
    at == end
}

/// A refused packet is refused for a reason its bytes show.
fn check_refusal(buf: &[u8], e: RtpError) {
    match e {
        RtpError::TooShort => assert!(buf.len() < FIXED_HEADER_LEN),
        RtpError::TooLong => assert!(buf.len() > usize::from(u16::MAX)),
        RtpError::BadVersion => assert_ne!(buf[0] >> 6, 2),
        RtpError::CsrcOverrun => {
            assert!(FIXED_HEADER_LEN + 4 * usize::from(buf[0] & 0x0f) > buf.len())
        }
        RtpError::ExtensionOverrun => assert!(buf[0] & 0x10 != 0),
        RtpError::BadPadding => assert!(buf[0] & 0x20 != 0),
    }
}
