//! Cross-checks `corecast_engine::rtcp` against the webrtc-rs `rtcp` crate: packets it marshals
//! must read back with the same fields here, and packets built by hand here must read the same
//! there. An independent implementation catches misread offsets and bit orders that tests
//! written from our own reading of the RFCs would share.

use ::rtcp as webrtc;
use corecast_engine::rtcp::{self, NtpShort, NtpTime, RtcpPacket};
use corecast_engine::types::{RtpTime, SeqNo, Ssrc};
use proptest::prelude::*;
use webrtc::packet::Packet;
use webrtc::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use webrtc::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::receiver_report::ReceiverReport;
use webrtc::reception_report::ReceptionReport;
use webrtc::sender_report::SenderReport;
use webrtc::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use webrtc::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, NackPair, TransportLayerNack,
};

type Boxed = Box<dyn Packet + Send + Sync>;

fn marshal(packets: Vec<Boxed>) -> Vec<u8> {
    webrtc::packet::marshal(&packets)
        .expect("webrtc-rs marshals")
        .to_vec()
}

fn parse(buf: &[u8]) -> Vec<RtcpPacket<'_>> {
    rtcp::packets(buf)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e} in {buf:02x?}"))
}

fn unmarshal(buf: &[u8]) -> Vec<Boxed> {
    webrtc::packet::unmarshal(&mut &buf[..]).expect("webrtc-rs unmarshals")
}

fn downcast<T: 'static>(p: &Boxed) -> &T {
    p.as_any()
        .downcast_ref::<T>()
        .expect("packet of the expected type")
}

fn assert_blocks(ours: rtcp::ReportBlocks<'_>, theirs: &[ReceptionReport]) {
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.ssrc, Ssrc(t.ssrc));
        assert_eq!(o.fraction_lost, t.fraction_lost);
        // webrtc-rs keeps the 24-bit field unsigned; the RFC makes it signed.
        assert_eq!(o.cumulative_lost, ((t.total_lost << 8) as i32) >> 8);
        assert_eq!(o.highest_seq, t.last_sequence_number);
        assert_eq!(o.jitter, t.jitter);
        assert_eq!(o.lsr, NtpShort(t.last_sender_report));
        assert_eq!(o.dlsr, NtpShort(t.delay));
    }
}

fn check_same(ours: &RtcpPacket<'_>, theirs: &Boxed) {
    match *ours {
        RtcpPacket::SenderReport {
            ssrc,
            ntp,
            rtp_ts,
            packet_count,
            octet_count,
            reports,
        } => {
            let t: &SenderReport = downcast(theirs);
            assert_eq!(ssrc, Ssrc(t.ssrc));
            assert_eq!(ntp, NtpTime(t.ntp_time));
            assert_eq!(rtp_ts, RtpTime(t.rtp_time));
            assert_eq!((packet_count, octet_count), (t.packet_count, t.octet_count));
            assert_blocks(reports, &t.reports);
        }
        RtcpPacket::ReceiverReport { ssrc, reports } => {
            let t: &ReceiverReport = downcast(theirs);
            assert_eq!(ssrc, Ssrc(t.ssrc));
            assert_blocks(reports, &t.reports);
        }
        RtcpPacket::Pli {
            sender_ssrc,
            media_ssrc,
        } => {
            let t: &PictureLossIndication = downcast(theirs);
            assert_eq!(
                (sender_ssrc, media_ssrc),
                (Ssrc(t.sender_ssrc), Ssrc(t.media_ssrc))
            );
        }
        RtcpPacket::Fir {
            sender_ssrc,
            entries,
        } => {
            let t: &FullIntraRequest = downcast(theirs);
            assert_eq!(sender_ssrc, Ssrc(t.sender_ssrc));
            let theirs: Vec<_> = t
                .fir
                .iter()
                .map(|e| (Ssrc(e.ssrc), e.sequence_number))
                .collect();
            let ours: Vec<_> = entries.iter().map(|e| (e.ssrc, e.seq_nr)).collect();
            assert_eq!(ours, theirs);
        }
        RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            pairs,
        } => {
            let t: &TransportLayerNack = downcast(theirs);
            assert_eq!(
                (sender_ssrc, media_ssrc),
                (Ssrc(t.sender_ssrc), Ssrc(t.media_ssrc))
            );
            let their_pairs: Vec<_> = t
                .nacks
                .iter()
                .map(|n| (SeqNo(n.packet_id), n.lost_packets))
                .collect();
            let our_pairs: Vec<_> = pairs.iter().map(|p| (p.pid, p.blp)).collect();
            assert_eq!(our_pairs, their_pairs);
            let their_lost: Vec<_> = t
                .nacks
                .iter()
                .flat_map(|n| n.packet_list())
                .map(SeqNo)
                .collect();
            assert_eq!(pairs.lost().collect::<Vec<_>>(), their_lost);
        }
        RtcpPacket::Other { pt, count } => {
            let h = theirs.header();
            assert_eq!((pt, count), (h.packet_type as u8, h.count));
        }
    }
}

/// Both parsers read `buf` as the same sequence of packets with the same fields.
fn check_both(buf: &[u8]) {
    let ours = parse(buf);
    let theirs = unmarshal(buf);
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(&theirs).for_each(|(o, t)| check_same(o, t));
}

fn report(ssrc: u32, total_lost: u32) -> ReceptionReport {
    ReceptionReport {
        ssrc,
        fraction_lost: 0x40,
        total_lost,
        last_sequence_number: 0x0002_fff0,
        jitter: 273,
        last_sender_report: 0x9f36_432a,
        delay: 150_137,
    }
}

fn sender_report() -> SenderReport {
    SenderReport {
        ssrc: 0x902f_9e2e,
        ntp_time: 0xda8b_d1fc_dddd_a05a,
        rtp_time: 0xaaf4_edd5,
        packet_count: 1,
        octet_count: 2,
        reports: vec![report(0xbc5e_9a40, 0x00ff_fffd), report(7, 12)],
        ..Default::default()
    }
}

fn cname(source: u32) -> SourceDescription {
    SourceDescription {
        chunks: vec![SourceDescriptionChunk {
            source,
            items: vec![SourceDescriptionItem {
                sdes_type: SdesType::SdesCname,
                text: "corecast.example".into(),
            }],
        }],
    }
}

#[test]
fn sender_report_from_webrtc() {
    let buf = marshal(vec![Box::new(sender_report())]);
    check_both(&buf);
    let [RtcpPacket::SenderReport { reports, .. }] = parse(&buf)[..] else {
        panic!()
    };
    assert_eq!(reports.get(0).map(|b| b.cumulative_lost), Some(-3));
}

#[test]
fn sender_report_with_unaligned_extension_is_padded() {
    let sr = SenderReport {
        profile_extensions: vec![1, 2, 3, 4, 5].into(),
        ..sender_report()
    };
    let buf = marshal(vec![Box::new(sr)]);
    assert_ne!(buf[0] & 0x20, 0, "webrtc-rs pads the unaligned extension");
    let [RtcpPacket::SenderReport { reports, .. }] = parse(&buf)[..] else {
        panic!()
    };
    assert_eq!(reports.len(), 2);
}

#[test]
fn receiver_report_from_webrtc() {
    let rr = ReceiverReport {
        ssrc: 0x902f_9e2e,
        reports: vec![report(1, 0), report(2, 0x80_0000)],
        ..Default::default()
    };
    check_both(&marshal(vec![Box::new(rr)]));
}

#[test]
fn feedback_from_webrtc() {
    let pli = PictureLossIndication {
        sender_ssrc: 0x902f_9e2e,
        media_ssrc: 0x902f_9e2f,
    };
    let fir = FullIntraRequest {
        sender_ssrc: 1,
        media_ssrc: 0,
        fir: vec![
            FirEntry {
                ssrc: 0x1234,
                sequence_number: 42,
            },
            FirEntry {
                ssrc: 0x5678,
                sequence_number: 255,
            },
        ],
    };
    let nack = TransportLayerNack {
        sender_ssrc: 3,
        media_ssrc: 4,
        nacks: vec![
            NackPair {
                packet_id: 0xfffe,
                lost_packets: 0x8001,
            },
            NackPair {
                packet_id: 10,
                lost_packets: 0,
            },
        ],
    };
    for p in [Box::new(pli) as Boxed, Box::new(fir), Box::new(nack)] {
        check_both(&marshal(vec![p]));
    }
}

#[test]
fn compound_from_webrtc() {
    let nack = TransportLayerNack {
        sender_ssrc: 3,
        media_ssrc: 4,
        nacks: nack_pairs_from_sequence_numbers(&[100, 101, 104, 117, 200]),
    };
    let buf = marshal(vec![
        Box::new(sender_report()),
        Box::new(cname(0x902f_9e2e)),
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        }),
        Box::new(nack),
        Box::new(webrtc::goodbye::Goodbye {
            sources: vec![0x902f_9e2e],
            reason: "bye".into(),
        }),
    ]);
    check_both(&buf);
    let kinds: Vec<_> = parse(&buf)
        .iter()
        .map(|p| match p {
            RtcpPacket::Other { pt, .. } => *pt,
            RtcpPacket::SenderReport { .. } => rtcp::PT_SR,
            RtcpPacket::Pli { .. } => rtcp::PT_PSFB,
            RtcpPacket::Nack { pairs, .. } => {
                assert_eq!(
                    pairs.lost().map(|s| s.0).collect::<Vec<_>>(),
                    [100, 101, 104, 117, 200]
                );
                rtcp::PT_RTPFB
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            rtcp::PT_SR,
            rtcp::PT_SDES,
            rtcp::PT_PSFB,
            rtcp::PT_RTPFB,
            rtcp::PT_BYE
        ]
    );
    assert!(rtcp::is_rtcp(&buf));
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// RR + SDES + FIR + NACK + padded PLI, written out by hand from the RFC diagrams.
fn hand_built_compound() -> Vec<u8> {
    [
        // RR, RC=1, length 7: SSRC, then one block with cumulative lost -1.
        words(&[
            0x81c9_0007,
            0x0000_0001,
            0x0000_0002,
            0x10ff_ffff,
            0x0001_0203,
            5,
            6,
            7,
        ]),
        // SDES, SC=1, length 3: SSRC, CNAME "ab", END, pad to a word.
        words(&[0x81ca_0003, 0x0000_0001]),
        vec![1, 2, b'a', b'b', 0, 0, 0, 0],
        // FIR, FMT=4, length 6: sender, unused media SSRC, two entries.
        words(&[
            0x84ce_0006,
            1,
            0,
            0x0000_0aaa,
            0x0900_0000,
            0x0000_0bbb,
            0x0a00_0000,
        ]),
        // Generic NACK, FMT=1, length 3: PID 500, BLP 0b101.
        words(&[0x81cd_0003, 1, 2, 0x01f4_0005]),
        // PLI, FMT=1, padding bit, length 3: SSRCs then 4 octets of padding.
        words(&[0xa1ce_0003, 1, 2, 0x0000_0004]),
    ]
    .concat()
}

#[test]
fn hand_built_compound_reads_the_same_in_webrtc() {
    let buf = hand_built_compound();
    check_both(&buf);
    let ours = parse(&buf);
    assert_eq!(ours.len(), 5);
    let RtcpPacket::ReceiverReport { reports, .. } = ours[0] else {
        panic!()
    };
    assert_eq!(reports.get(0).map(|b| b.cumulative_lost), Some(-1));
    let RtcpPacket::Nack { pairs, .. } = ours[3] else {
        panic!()
    };
    assert_eq!(
        pairs.lost().collect::<Vec<_>>(),
        [SeqNo(500), SeqNo(501), SeqNo(503)]
    );
    let theirs = unmarshal(&buf);
    let sdes: &SourceDescription = downcast(&theirs[1]);
    assert_eq!(&sdes.chunks[0].items[0].text[..], b"ab");
}

fn arb_report() -> impl Strategy<Value = ReceptionReport> {
    (
        any::<u32>(),
        any::<u8>(),
        0u32..1 << 24,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, total_lost, last_sequence_number, jitter, lsr, delay)| {
                ReceptionReport {
                    ssrc,
                    fraction_lost,
                    total_lost,
                    last_sequence_number,
                    jitter,
                    last_sender_report: lsr,
                    delay,
                }
            },
        )
}

fn arb_packet() -> impl Strategy<Value = Boxed> {
    let reports = || prop::collection::vec(arb_report(), 0..5);
    prop_oneof![
        (any::<[u32; 4]>(), any::<u64>(), reports()).prop_map(
            |([ssrc, rtp, pc, oc], ntp, reports)| {
                Box::new(SenderReport {
                    ssrc,
                    ntp_time: ntp,
                    rtp_time: rtp,
                    packet_count: pc,
                    octet_count: oc,
                    reports,
                    ..Default::default()
                }) as Boxed
            }
        ),
        (any::<u32>(), reports()).prop_map(|(ssrc, reports)| Box::new(ReceiverReport {
            ssrc,
            reports,
            ..Default::default()
        }) as Boxed),
        (any::<u32>(), any::<u32>()).prop_map(|(sender_ssrc, media_ssrc)| {
            Box::new(PictureLossIndication {
                sender_ssrc,
                media_ssrc,
            }) as Boxed
        }),
        (
            any::<u32>(),
            prop::collection::vec((any::<u32>(), any::<u8>()), 1..5)
        )
            .prop_map(|(sender_ssrc, e)| {
                let fir = e
                    .into_iter()
                    .map(|(ssrc, sequence_number)| FirEntry {
                        ssrc,
                        sequence_number,
                    })
                    .collect();
                Box::new(FullIntraRequest {
                    sender_ssrc,
                    media_ssrc: 0,
                    fir,
                }) as Boxed
            }),
        (
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(any::<u16>(), 1..40)
        )
            .prop_map(|(s, m, mut seqs)| {
                seqs.sort_unstable();
                let nacks = nack_pairs_from_sequence_numbers(&seqs);
                Box::new(TransportLayerNack {
                    sender_ssrc: s,
                    media_ssrc: m,
                    nacks,
                }) as Boxed
            }),
        any::<u32>().prop_map(|s| Box::new(cname(s)) as Boxed),
    ]
}

proptest! {
    #[test]
    fn webrtc_compounds_read_the_same(packets in prop::collection::vec(arb_packet(), 1..6)) {
        check_both(&marshal(packets));
    }

    #[test]
    fn nack_lost_list_matches_the_sequence_numbers(mut seqs in prop::collection::vec(any::<u16>(), 1..64)) {
        seqs.sort_unstable();
        seqs.dedup();
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: nack_pairs_from_sequence_numbers(&seqs),
        };
        let buf = marshal(vec![Box::new(nack)]);
        let [RtcpPacket::Nack { pairs, .. }] = parse(&buf)[..] else { panic!() };
        let lost: Vec<u16> = pairs.lost().map(|s| s.0).collect();
        prop_assert_eq!(lost, seqs);
    }
}
