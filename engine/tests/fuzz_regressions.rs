//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found that the engine must keep reading
//! as it does, or that broke it, each written out by hand through the public API so it reads as
//! the scenario it is. The raw inputs are kept in `fuzz/regressions/<target>/`, which
//! `scripts/fuzz.sh` replays before fuzzing.

use corecast_engine::rtp::RtpHeader;

/// Found by the `rtp_header` target, where the webrtc-rs `rtp` crate read this packet's payload
/// from a different offset: a one-byte extension element that claims more bytes than its block
/// holds. The block's length field bounds it (RFC 3550 §5.3.1), so the payload starts at the
/// block's end whatever the elements say, and the element walk stops at the bad one (RFC 8285
/// §4.2); webrtc-rs walks on past the block into the payload.
#[test]
fn an_extension_element_overrunning_its_block_does_not_move_the_payload() {
    let mut packet = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
    // Profile 0xBEDE, one word: an element with ID 1 and 4 bytes of data, only 3 in the block.
    packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x13, 0xaa, 0xbb, 0xcc]);
    packet.extend_from_slice(&[0xdd, 0xee, 0xff]);
    let h = RtpHeader::parse(&packet).unwrap();
    assert_eq!(h.payload(&packet), &[0xdd, 0xee, 0xff]);
    assert_eq!(h.extensions(&packet).count(), 0);
}
