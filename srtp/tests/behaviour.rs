//! ROC rollover, replay rejection, bad tags and malformed input, for every profile.

mod common;
use common::rtp;
use corecast_srtp::{Error, Profile, SrtpContext};

fn pair(profile: Profile) -> (SrtpContext, SrtpContext) {
    let key = vec![0x11; profile.key_len()];
    let salt = vec![0x22; profile.salt_len()];
    (
        SrtpContext::new(profile, &key, &salt, 2).unwrap(),
        SrtpContext::new(profile, &key, &salt, 2).unwrap(),
    )
}

fn protect(ctx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; packet.len() + 16];
    let len = ctx.protect_rtp(&[packet], &mut out).unwrap();
    out.truncate(len);
    out
}

#[test]
fn roc_rolls_over_from_65535_to_0_and_receiver_follows() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        for i in 0..200u32 {
            let seq = (65_500 + i) as u16;
            let plain = rtp(seq, 7, &i.to_be_bytes());
            let mut wire = protect(&mut tx, &plain);
            let len = rx.unprotect_rtp(&mut wire).unwrap();
            assert_eq!(&wire[..len], &plain[..], "{profile:?} seq {seq}");
        }
        assert_eq!(tx.roc(7), Some(1), "{profile:?} sender");
        assert_eq!(rx.roc(7), Some(1), "{profile:?} receiver");
    }
}

#[test]
fn late_packet_from_before_the_wrap_keeps_its_old_roc() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let before = protect(&mut tx, &rtp(65_534, 7, b"a"));
        let late = protect(&mut tx, &rtp(65_535, 7, b"b"));
        let after = protect(&mut tx, &rtp(1, 7, b"c"));
        for mut wire in [before, after, late] {
            rx.unprotect_rtp(&mut wire).unwrap();
        }
        assert_eq!(rx.roc(7), Some(1));
        // A retransmission the sender protects again keeps the old ROC as well.
        let mut again = protect(&mut tx, &rtp(65_535, 7, b"b"));
        assert_eq!(rx.unprotect_rtp(&mut again), Err(Error::Replayed));
    }
}

#[test]
fn replayed_and_too_old_packets_are_rejected() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let first = protect(&mut tx, &rtp(10, 7, b"first"));
        rx.unprotect_rtp(&mut first.clone()).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&mut first.clone()),
            Err(Error::Replayed),
            "{profile:?}"
        );
        for seq in 11..400 {
            rx.unprotect_rtp(&mut protect(&mut tx, &rtp(seq, 7, b"x")))
                .unwrap();
        }
        assert_eq!(
            rx.unprotect_rtp(&mut first.clone()),
            Err(Error::TooOld),
            "{profile:?}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_the_tag_and_moves_no_state() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let wire = protect(&mut tx, &rtp(5, 7, b"payload of some length"));
        for at in 0..wire.len() {
            if at < 2 || (8..12).contains(&at) {
                continue; // version/CSRC-count and SSRC bits change what is parsed, not only the tag
            }
            let mut bad = wire.clone();
            bad[at] ^= 0x04;
            assert_eq!(
                rx.unprotect_rtp(&mut bad),
                Err(Error::BadTag),
                "{profile:?} octet {at}"
            );
        }
        // The forgeries left no trace: the genuine packet is still accepted.
        rx.unprotect_rtp(&mut wire.clone()).unwrap();
    }
}

#[test]
fn srtcp_round_trips_and_rejects_replays_and_bad_tags() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let rr = [
            0x81, 201, 0, 7, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        ];
        let mut out = [0u8; 128];
        let len = tx.protect_rtcp(&[&rr[..8], &rr[8..]], &mut out).unwrap();
        assert_eq!(len, rr.len() + profile.rtcp_overhead());
        assert_ne!(&out[8..rr.len()], &rr[8..], "{profile:?} body is encrypted");
        let wire = out[..len].to_vec();
        let mut bad = wire.clone();
        bad[12] ^= 1;
        assert_eq!(
            rx.unprotect_rtcp(&mut bad),
            Err(Error::BadTag),
            "{profile:?}"
        );
        let mut buf = wire.clone();
        let plain = rx.unprotect_rtcp(&mut buf).unwrap();
        assert_eq!(&buf[..plain], &rr[..]);
        assert_eq!(
            rx.unprotect_rtcp(&mut wire.clone()),
            Err(Error::Replayed),
            "{profile:?}"
        );
    }
}

#[test]
fn malformed_short_and_unknown_input_is_an_error_not_a_panic() {
    for profile in Profile::ALL {
        let (mut tx, mut rx) = pair(profile);
        for len in 0..40 {
            let mut junk = vec![0x80u8; len];
            assert!(rx.unprotect_rtp(&mut junk).is_err());
            let mut junk = vec![0x90u8; len];
            assert!(rx.unprotect_rtcp(&mut junk).is_err());
        }
        assert_eq!(rx.unprotect_rtp(&mut [0x40; 40]), Err(Error::Malformed));
        let mut small = [0u8; 20];
        assert!(matches!(
            tx.protect_rtp(&[&rtp(1, 7, &[0; 10])], &mut small),
            Err(Error::BufferTooSmall { .. })
        ));
        // The context tracks two SSRCs; a third is refused on both sides.
        let mut big = [0u8; 64];
        tx.protect_rtp(&[&rtp(1, 1, b"x")], &mut big).unwrap();
        tx.protect_rtp(&[&rtp(1, 2, b"x")], &mut big).unwrap();
        assert_eq!(
            tx.protect_rtp(&[&rtp(1, 3, b"x")], &mut big),
            Err(Error::TooManySsrcs)
        );
        assert!(SrtpContext::new(profile, &[0; 5], &vec![0; profile.salt_len()], 2).is_err());
    }
}

#[test]
fn an_rtcp_only_context_reads_srtcp_and_refuses_srtp() {
    for profile in [
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
        Profile::Aes128CmHmacSha1_80,
    ] {
        let key = vec![7u8; profile.key_len()];
        let salt = vec![9u8; profile.salt_len()];
        let mut sender = SrtpContext::new(profile, &key, &salt, 2).unwrap();
        let mut receiver = SrtpContext::new_rtcp_only(profile, &key, &salt, 2).unwrap();
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        let mut buf = [0u8; 256];
        let len = sender.protect_rtcp(&[&pli], &mut buf).unwrap();
        assert_eq!(receiver.unprotect_rtcp(&mut buf[..len]), Ok(pli.len()));
        assert_eq!(&buf[..pli.len()], &pli);
        // SRTP it has no keys for, either way, and nothing moves.
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3];
        let len = sender.protect_rtp(&[&rtp], &mut buf).unwrap();
        assert_eq!(
            receiver.unprotect_rtp(&mut buf[..len]),
            Err(Error::NoRtpKeys)
        );
        assert_eq!(
            receiver.protect_rtp(&[&rtp], &mut buf),
            Err(Error::NoRtpKeys)
        );
        assert_eq!(Error::NoRtpKeys.reason(), "no_rtp_keys");
    }
}

#[test]
fn a_packet_seals_the_same_however_it_is_cut_into_parts() {
    // The last part is encrypted from where it lies when it is payload only, and gathered
    // first when the header runs into it: both ways must give the same octets.
    let mut packet = vec![0x92, 96, 0, 7, 0, 0, 0, 9, 0, 0, 0, 5]; // one CSRC, an extension
    packet.extend_from_slice(&[0xaa; 4]);
    packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x33, 0, 0]);
    packet.extend((0..333u16).map(|i| (i * 7) as u8));
    for profile in Profile::ALL {
        let whole = protect(&mut pair(profile).0, &packet);
        for a in 0..=packet.len() {
            for b in [a, a + 1, a + 17, packet.len()] {
                let b = b.min(packet.len());
                let parts = [&packet[..a], &packet[a..b], &packet[b..]];
                let mut out = vec![0u8; packet.len() + 16];
                let len = pair(profile).0.protect_rtp(&parts, &mut out).unwrap();
                assert_eq!(out[..len], whole[..], "{profile:?} cut at {a} and {b}");
            }
        }
    }
}
