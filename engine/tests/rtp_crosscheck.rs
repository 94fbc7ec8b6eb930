//! Cross-check of the RTP header view against the webrtc-rs `rtp` crate: packets it writes (CSRCs,
//! one- and two-byte header extensions, padding) read the same here, and packets it refuses are
//! refused here too, or at least never read differently.

use bytes::Bytes;
use corecast_engine::rtp::RtpHeader;
use proptest::prelude::*;
use webrtc_util::marshal::{Marshal, Unmarshal};

fn header_strategy() -> impl Strategy<Value = rtp::header::Header> {
    (
        (
            any::<bool>(),
            0u8..128,
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
        ),
        proptest::collection::vec(any::<u32>(), 0..4),
        prop_oneof![Just(None), Just(Some(0xBEDEu16)), Just(Some(0x1000u16))],
        proptest::collection::vec(
            (1u8..15, proptest::collection::vec(any::<u8>(), 1..16)),
            0..4,
        ),
    )
        .prop_map(|((marker, pt, seq, ts, ssrc), csrc, profile, exts)| {
            let mut h = rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                csrc,
                ..Default::default()
            };
            if let Some(profile) = profile {
                h.extension = true;
                h.extension_profile = profile;
                for (id, data) in exts {
                    // One-byte elements hold 1..=16 bytes; ids must be unique.
                    let _ = h.set_extension(id, Bytes::from(data));
                }
            }
            h
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn packets_written_by_the_rtp_crate_read_the_same(
        header in header_strategy(),
        payload in proptest::collection::vec(any::<u8>(), 1..200),
        padding in any::<bool>(),
    ) {
        let mut header = header;
        header.padding = padding;
        let packet = rtp::packet::Packet { header, payload: Bytes::from(payload.clone()) };
        let bytes = packet.marshal().unwrap();
        let ours = RtpHeader::parse(&bytes).unwrap();
        let theirs = rtp::packet::Packet::unmarshal(&mut bytes.clone()).unwrap();
        prop_assert_eq!(ours.marker, theirs.header.marker);
        prop_assert_eq!(ours.payload_type, theirs.header.payload_type);
        prop_assert_eq!(ours.seq.0, theirs.header.sequence_number);
        prop_assert_eq!(ours.timestamp.0, theirs.header.timestamp);
        prop_assert_eq!(ours.ssrc.0, theirs.header.ssrc);
        prop_assert_eq!(ours.csrcs(&bytes).map(|c| c.0).collect::<Vec<_>>(), theirs.header.csrc.clone());
        prop_assert_eq!(ours.payload(&bytes), &payload[..]);
        prop_assert_eq!(ours.payload(&bytes), &theirs.payload[..]);
        let exts: Vec<(u8, Vec<u8>)> = ours.extensions(&bytes).map(|e| (e.id, e.data.to_vec())).collect();
        let want: Vec<(u8, Vec<u8>)> = theirs.header.extensions.iter().map(|e| (e.id, e.payload.to_vec())).collect();
        prop_assert_eq!(exts, want);
    }

    #[test]
    fn arbitrary_bytes_we_accept_the_rtp_crate_reads_alike(bytes in proptest::collection::vec(any::<u8>(), 12..120)) {
        let mut bytes = bytes;
        bytes[0] = (bytes[0] & 0x3f) | 0x80;
        if let (Ok(ours), Ok(theirs)) = (
            RtpHeader::parse(&bytes),
            rtp::packet::Packet::unmarshal(&mut Bytes::from(bytes.clone())),
        ) {
            prop_assert_eq!(ours.seq.0, theirs.header.sequence_number);
            prop_assert_eq!(ours.ssrc.0, theirs.header.ssrc);
            prop_assert_eq!(ours.csrc_count as usize, theirs.header.csrc.len());
            prop_assert_eq!(ours.payload(&bytes), &theirs.payload[..]);
        }
    }
}
