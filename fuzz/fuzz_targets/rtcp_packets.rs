//! `rtcp::packets` on any datagram: the packets it yields are the compound's, framed by their
//! length fields (an independent framer here), every entry view lies inside the packet that holds
//! it, iteration ends after the first error, and a compound it reads whole reads the same in the
//! webrtc-rs `rtcp` crate (as `engine/tests/rtcp_crosscheck.rs` checks on built packets).
//! `rtcp::sender_report_of` (what ingest takes from a source) agrees: an error exactly when the
//! compound has one, else the last SR of the SSRC asked for.
#![no_main]

use corecast_engine::rtcp::{self as ours, RtcpPacket};
use corecast_fuzz::foreign;
use libfuzzer_sys::fuzz_target;

/// Byte range of each packet of the compound, as its length fields say, up to the first that
/// cannot be framed.
fn frame(buf: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut packets = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 4 && buf[at] >> 6 == 2 {
        let end = at + 4 + 4 * usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        if end > buf.len() {
            break;
        }
        packets.push(at..end);
        at = end;
    }
    packets
}

/// `inner` lies inside `outer`, a range of `buf`, past its 4-byte header.
fn check_inside(buf: &[u8], inner: &[u8], outer: &std::ops::Range<usize>) {
    let at = inner.as_ptr() as usize - buf.as_ptr() as usize;
    assert!(
        at >= outer.start + 4 && at + inner.len() <= outer.end,
        "entries at {at}..{} outside their packet {outer:?}",
        at + inner.len()
    );
}

fn check_records<T: ours::Record + PartialEq + std::fmt::Debug>(
    buf: &[u8],
    records: ours::Records<'_, T>,
    extent: &std::ops::Range<usize>,
) {
    let bytes = records.as_bytes();
    check_inside(buf, bytes, extent);
    assert_eq!(bytes.len(), records.len() * T::SIZE);
    assert_eq!(records.iter().count(), records.len());
    assert_eq!(records.get(records.len()), None);
    if let Some(last) = records.len().checked_sub(1) {
        assert_eq!(records.get(last), records.iter().last());
    }
}

fuzz_target!(|buf: &[u8]| {
    let framed = frame(buf);
    let mut iter = ours::packets(buf);
    let mut ours = Vec::new();
    let mut failed = false;
    for item in iter.by_ref() {
        let Ok(packet) = item else {
            failed = true;
            break;
        };
        let extent = framed
            .get(ours.len())
            .unwrap_or_else(|| panic!("packet {} yielded past the framing", ours.len()))
            .clone();
        match packet {
            RtcpPacket::SenderReport { reports, .. }
            | RtcpPacket::ReceiverReport { reports, .. } => check_records(buf, reports, &extent),
            RtcpPacket::Fir { entries, .. } => check_records(buf, entries, &extent),
            RtcpPacket::Nack { pairs, .. } => {
                check_records(buf, pairs, &extent);
                let lost: usize = pairs.iter().map(|p| 1 + p.blp.count_ones() as usize).sum();
                assert_eq!(pairs.lost().count(), lost);
            }
            RtcpPacket::Pli { .. } | RtcpPacket::Other { .. } => {}
        }
        ours.push(packet);
    }
    assert!(iter.next().is_none(), "iteration goes on after an error");
    // Asked for the first SR's SSRC (or any, without one).
    let wanted = ours
        .iter()
        .find_map(|p| match p {
            RtcpPacket::SenderReport { ssrc, .. } => Some(*ssrc),
            _ => None,
        })
        .unwrap_or(corecast_engine::Ssrc(0));
    let last_of_wanted = ours.iter().rev().find_map(|p| match *p {
        RtcpPacket::SenderReport {
            ssrc, ntp, rtp_ts, ..
        } if ssrc == wanted => Some((ntp, rtp_ts)),
        _ => None,
    });
    match ours::sender_report_of(buf, wanted) {
        Err(_) => assert!(failed, "an error only where the compound has one"),
        Ok(found) => {
            assert!(!failed, "the compound's error is reported");
            assert_eq!(found, last_of_wanted);
        }
    }
    if failed {
        return;
    }
    // Read whole: the framing covered every byte.
    assert_eq!(ours.len(), framed.len());
    assert_eq!(framed.last().map_or(0, |r| r.end), buf.len());
    if ours.is_empty() {
        return;
    }
    // webrtc-rs `rtcp` 0.17 reads a packet's padding octets (P bit, RFC 3550 §6.4.1) as entries
    // (a padded NACK gains pairs); ours excludes them, as the RFC says.
    if framed.iter().any(|r| buf[r.start] & 0x20 != 0) {
        return;
    }
    let Some(Ok(theirs)) = foreign(|| ::rtcp::packet::unmarshal(&mut &buf[..])) else {
        return;
    };
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        check_same(o, t.as_ref());
    }
});

fn downcast<T: 'static>(p: &(dyn ::rtcp::packet::Packet + Send + Sync)) -> &T {
    p.as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("webrtc-rs read another packet type: {p:?}"))
}

fn check_same(ours: &RtcpPacket<'_>, theirs: &(dyn ::rtcp::packet::Packet + Send + Sync)) {
    use ::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use ::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use ::rtcp::receiver_report::ReceiverReport;
    use ::rtcp::sender_report::SenderReport;
    use ::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    let blocks = |b: ours::ReportBlocks<'_>| -> Vec<(u32, u32, u32)> {
        b.iter()
            .map(|r| (r.ssrc.0, r.highest_seq, r.jitter))
            .collect()
    };
    let their_blocks = |b: &[::rtcp::reception_report::ReceptionReport]| -> Vec<(u32, u32, u32)> {
        b.iter()
            .map(|r| (r.ssrc, r.last_sequence_number, r.jitter))
            .collect()
    };
    match *ours {
        RtcpPacket::SenderReport {
            ssrc,
            ntp,
            rtp_ts,
            reports,
            ..
        } => {
            let t: &SenderReport = downcast(theirs);
            assert_eq!((ssrc.0, ntp.0, rtp_ts.0), (t.ssrc, t.ntp_time, t.rtp_time));
            assert_eq!(blocks(reports), their_blocks(&t.reports));
        }
        RtcpPacket::ReceiverReport { ssrc, reports } => {
            let t: &ReceiverReport = downcast(theirs);
            assert_eq!(ssrc.0, t.ssrc);
            assert_eq!(blocks(reports), their_blocks(&t.reports));
        }
        RtcpPacket::Pli {
            sender_ssrc,
            media_ssrc,
        } => {
            let t: &PictureLossIndication = downcast(theirs);
            assert_eq!((sender_ssrc.0, media_ssrc.0), (t.sender_ssrc, t.media_ssrc));
        }
        RtcpPacket::Fir {
            sender_ssrc,
            entries,
        } => {
            let t: &FullIntraRequest = downcast(theirs);
            assert_eq!(sender_ssrc.0, t.sender_ssrc);
            let ours: Vec<_> = entries.iter().map(|e| (e.ssrc.0, e.seq_nr)).collect();
            let theirs: Vec<_> = t.fir.iter().map(|e| (e.ssrc, e.sequence_number)).collect();
            assert_eq!(ours, theirs);
        }
        RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            pairs,
        } => {
            let t: &TransportLayerNack = downcast(theirs);
            assert_eq!((sender_ssrc.0, media_ssrc.0), (t.sender_ssrc, t.media_ssrc));
            let ours: Vec<_> = pairs.iter().map(|p| (p.pid.0, p.blp)).collect();
            let theirs: Vec<_> = t
                .nacks
                .iter()
                .map(|n| (n.packet_id, n.lost_packets))
                .collect();
            assert_eq!(ours, theirs);
        }
        RtcpPacket::Other { pt, .. } => {
            // webrtc-rs reads types it does not know as `Unsupported` (0).
            let their_pt = theirs.header().packet_type as u8;
            assert!(their_pt == pt || their_pt == 0, "{pt} read as {their_pt}");
        }
    }
}
