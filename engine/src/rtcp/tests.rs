use super::*;
use proptest::prelude::*;

/// One RTCP packet with a correct length field; `body` must be word-aligned.
fn pkt(count: u8, pt: u8, body: &[u8]) -> Vec<u8> {
    assert_eq!(body.len() % 4, 0, "test bodies are word-aligned");
    let words = u16::try_from(body.len() / 4).unwrap();
    let mut out = vec![0x80 | count, pt];
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Like [`pkt`], with the padding bit set and `pad` octets appended (count in the last one).
fn padded_pkt(count: u8, pt: u8, body: &[u8], pad: u8) -> Vec<u8> {
    let mut padded = body.to_vec();
    padded.resize(body.len() + usize::from(pad) - 1, 0);
    padded.push(pad);
    let mut out = pkt(count, pt, &padded);
    out[0] |= 0x20;
    out
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn block(
    ssrc: u32,
    fraction: u8,
    lost24: u32,
    highest: u32,
    jitter: u32,
    lsr: u32,
    dlsr: u32,
) -> Vec<u8> {
    words(&[
        ssrc,
        u32::from(fraction) << 24 | (lost24 & 0x00ff_ffff),
        highest,
        jitter,
        lsr,
        dlsr,
    ])
}

fn sr_body(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut body = words(&[0x1111_2222, 0xe000_0001, 0x8000_0000, 90_000, 42, 4200]);
    blocks.iter().for_each(|b| body.extend_from_slice(b));
    body
}

fn sdes_cname() -> Vec<u8> {
    // One chunk: SSRC, CNAME item of 8 octets, end-of-list, padded to a word.
    let mut body = 0x1111_2222u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[1, 8]);
    body.extend_from_slice(b"corecast");
    body.extend_from_slice(&[0, 0]);
    pkt(1, PT_SDES, &body)
}

fn fb(fmt: u8, pt: u8, sender: u32, media: u32, fci: &[u8]) -> Vec<u8> {
    let mut body = words(&[sender, media]);
    body.extend_from_slice(fci);
    pkt(fmt, pt, &body)
}

fn collect(buf: &[u8]) -> Vec<Result<RtcpPacket<'_>, RtcpError>> {
    packets(buf).collect()
}

#[test]
fn sender_report_then_sdes() {
    let mut buf = pkt(
        1,
        PT_SR,
        &sr_body(&[block(
            0xabcd,
            25,
            7,
            0x0001_0005,
            12,
            0x1234_5678,
            0x0001_8000,
        )]),
    );
    buf.extend(sdes_cname());
    let parsed = collect(&buf);
    assert_eq!(parsed.len(), 2);
    let Ok(RtcpPacket::SenderReport {
        ssrc,
        ntp,
        rtp_ts,
        packet_count,
        octet_count,
        reports,
    }) = parsed[0]
    else {
        panic!("expected SR, got {:?}", parsed[0]);
    };
    assert_eq!(ssrc, Ssrc(0x1111_2222));
    assert_eq!(ntp, NtpTime(0xe000_0001_8000_0000));
    assert_eq!(ntp.compact(), NtpShort(0x0001_8000));
    assert_eq!(rtp_ts, RtpTime(90_000));
    assert_eq!((packet_count, octet_count), (42, 4200));
    let blocks: Vec<_> = reports.iter().collect();
    assert_eq!(
        blocks,
        [ReportBlock {
            ssrc: Ssrc(0xabcd),
            fraction_lost: 25,
            cumulative_lost: 7,
            highest_seq: 0x0001_0005,
            jitter: 12,
            lsr: NtpShort(0x1234_5678),
            dlsr: NtpShort(0x0001_8000),
        }]
    );
    assert_eq!(
        parsed[1],
        Ok(RtcpPacket::Other {
            pt: PT_SDES,
            count: 1
        })
    );
}

#[test]
fn receiver_report_two_blocks() {
    let buf = pkt(
        2,
        PT_RR,
        &[
            words(&[0x0bad_cafe]),
            block(1, 0, 0x00ff_fffe, 0xffff, 1, 0, 0),
            block(2, 255, 0x007f_ffff, 0x0003_0000, 99, 5, 6),
        ]
        .concat(),
    );
    let parsed = collect(&buf);
    let [Ok(RtcpPacket::ReceiverReport { ssrc, reports })] = parsed[..] else {
        panic!("expected one RR, got {parsed:?}");
    };
    assert_eq!(ssrc, Ssrc(0x0bad_cafe));
    assert_eq!(reports.len(), 2);
    assert_eq!(reports.iter().len(), 2);
    let first = reports.get(0).unwrap();
    assert_eq!(
        (first.ssrc, first.cumulative_lost, first.highest_seq),
        (Ssrc(1), -2, 0xffff)
    );
    let second = reports.get(1).unwrap();
    assert_eq!(second.fraction_lost, 255);
    assert_eq!(second.cumulative_lost, 0x7f_ffff);
    assert_eq!(
        (second.jitter, second.lsr, second.dlsr),
        (99, NtpShort(5), NtpShort(6))
    );
    assert_eq!(reports.get(2), None);
    assert_eq!(reports.get(usize::MAX), None);
    assert_eq!(
        reports.into_iter().map(|b| b.ssrc).collect::<Vec<_>>(),
        [Ssrc(1), Ssrc(2)]
    );
}

#[test]
fn empty_receiver_report() {
    let buf = pkt(0, PT_RR, &words(&[7]));
    let parsed = collect(&buf);
    let [Ok(RtcpPacket::ReceiverReport {
        ssrc: Ssrc(7),
        reports,
    })] = parsed[..]
    else {
        panic!("{parsed:?}");
    };
    assert!(reports.is_empty());
}

#[test]
fn sender_report_profile_extension_is_skipped() {
    let mut body = sr_body(&[block(3, 0, 0, 0, 0, 0, 0)]);
    body.extend(words(&[0xdead_beef]));
    let buf = pkt(1, PT_SR, &body);
    let parsed = collect(&buf);
    let [Ok(RtcpPacket::SenderReport { reports, .. })] = parsed[..] else {
        panic!("{parsed:?}")
    };
    assert_eq!(reports.len(), 1);
}

#[test]
fn pli() {
    let buf = fb(FMT_PLI, PT_PSFB, 10, 20, &[]);
    assert_eq!(
        collect(&buf),
        [Ok(RtcpPacket::Pli {
            sender_ssrc: Ssrc(10),
            media_ssrc: Ssrc(20)
        })]
    );
}

#[test]
fn fir_two_entries() {
    let fci = words(&[0xaaaa, 0x0700_0000, 0xbbbb, 0xff12_3456]);
    let buf = fb(FMT_FIR, PT_PSFB, 10, 0, &fci);
    let parsed = collect(&buf);
    let [Ok(RtcpPacket::Fir {
        sender_ssrc,
        entries,
    })] = parsed[..]
    else {
        panic!("{parsed:?}")
    };
    assert_eq!(sender_ssrc, Ssrc(10));
    assert_eq!(
        entries.iter().collect::<Vec<_>>(),
        [
            FirEntry {
                ssrc: Ssrc(0xaaaa),
                seq_nr: 7
            },
            FirEntry {
                ssrc: Ssrc(0xbbbb),
                seq_nr: 0xff
            },
        ]
    );
}

#[test]
fn nack_lost_list() {
    let fci = words(&[
        100 << 16 | 0b1000_0000_0000_0101,
        65534 << 16 | 0b11,
        7 << 16,
    ]);
    let buf = fb(FMT_NACK, PT_RTPFB, 1, 2, &fci);
    let parsed = collect(&buf);
    let [Ok(RtcpPacket::Nack {
        sender_ssrc,
        media_ssrc,
        pairs,
    })] = parsed[..]
    else {
        panic!("{parsed:?}")
    };
    assert_eq!((sender_ssrc, media_ssrc), (Ssrc(1), Ssrc(2)));
    assert_eq!(pairs.len(), 3);
    let first = pairs.get(0).unwrap();
    assert_eq!(
        first,
        NackPair {
            pid: SeqNo(100),
            blp: 0x8005
        }
    );
    assert_eq!(first.lost().len(), 4);
    assert_eq!(
        first.lost().collect::<Vec<_>>(),
        [SeqNo(100), SeqNo(101), SeqNo(103), SeqNo(116)]
    );
    // The bitmask wraps with the sequence space.
    let lost: Vec<u16> = pairs.lost().map(|s| s.0).collect();
    assert_eq!(lost, [100, 101, 103, 116, 65534, 65535, 0, 7]);
}

#[test]
fn other_types_are_framed_not_parsed() {
    let remb = fb(
        15,
        PT_PSFB,
        1,
        0,
        &words(&[u32::from_be_bytes(*b"REMB"), 0x0100_0000, 5]),
    );
    let twcc = fb(15, PT_RTPFB, 1, 2, &words(&[0, 0]));
    let bye = pkt(1, PT_BYE, &words(&[9]));
    let app = pkt(3, PT_APP, &words(&[9, u32::from_be_bytes(*b"test")]));
    let xr = pkt(0, PT_XR, &words(&[9]));
    let ij = pkt(0, 195, &[]);
    let buf = [remb, twcc, bye, app, xr, ij].concat();
    let kinds: Vec<_> = packets(&buf)
        .map(|p| {
            p.map(|p| match p {
                RtcpPacket::Other { pt, count } => (pt, count),
                other => panic!("{other:?}"),
            })
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Ok((206, 15)),
            Ok((205, 15)),
            Ok((203, 1)),
            Ok((204, 3)),
            Ok((207, 0)),
            Ok((195, 0))
        ]
    );
}

#[test]
fn padding() {
    let rr = words(&[5]);
    let buf = [pkt(0, PT_RR, &rr), padded_pkt(0, PT_RR, &rr, 4)].concat();
    assert_eq!(collect(&buf).len(), 2);
    assert!(collect(&buf).iter().all(Result::is_ok));

    // Padding eating into the fixed fields leaves a body too short for them.
    let eaten = padded_pkt(0, PT_RR, &[], 8);
    assert_eq!(
        collect(&eaten),
        [Err(RtcpError::BodyTooShort {
            pt: PT_RR,
            count: 0
        })]
    );

    let not_last = [padded_pkt(0, PT_RR, &rr, 4), pkt(0, PT_RR, &rr)].concat();
    assert_eq!(collect(&not_last), [Err(RtcpError::PaddingNotLast)]);

    let mut zero = padded_pkt(0, PT_RR, &rr, 4);
    *zero.last_mut().unwrap() = 0;
    assert_eq!(collect(&zero), [Err(RtcpError::BadPadding(0))]);

    let mut too_long = padded_pkt(0, PT_RR, &rr, 4);
    *too_long.last_mut().unwrap() = 9;
    assert_eq!(collect(&too_long), [Err(RtcpError::BadPadding(9))]);

    // Padding bit with an empty payload has no count octet to read.
    let mut empty = pkt(0, PT_BYE, &[]);
    empty[0] |= 0x20;
    assert_eq!(collect(&empty), [Err(RtcpError::BadPadding(0))]);

    // A count that leaves a ragged NACK FCI is caught by the FCI check.
    let mut nack = fb(FMT_NACK, PT_RTPFB, 1, 2, &words(&[3 << 16]));
    nack.extend([0, 0, 0, 2]);
    nack[0] |= 0x20;
    nack[3] += 1;
    assert_eq!(
        collect(&nack),
        [Err(RtcpError::BadFciLength {
            pt: PT_RTPFB,
            fmt: FMT_NACK,
            len: 6
        })]
    );
}

#[test]
fn header_errors() {
    assert_eq!(collect(&[]), []);
    assert_eq!(
        collect(&[0x80, 200, 0]),
        [Err(RtcpError::TruncatedHeader { remaining: 3 })]
    );
    assert_eq!(collect(&[0x40, 200, 0, 0]), [Err(RtcpError::BadVersion(1))]);
    assert_eq!(
        collect(&[0x80, 201, 0, 1, 0, 0]),
        [Err(RtcpError::LengthOverrun {
            declared: 8,
            remaining: 6
        })]
    );
    // A good packet is still yielded before the bad one, and nothing after it.
    let buf = [
        pkt(0, PT_RR, &words(&[1])),
        vec![0xc0, 201, 0, 0],
        pkt(0, PT_RR, &words(&[2])),
    ]
    .concat();
    let parsed = collect(&buf);
    assert_eq!(parsed.len(), 2);
    assert!(parsed[0].is_ok());
    assert_eq!(parsed[1], Err(RtcpError::BadVersion(3)));
}

#[test]
fn body_errors() {
    let rr_short = pkt(
        2,
        PT_RR,
        &[words(&[1]), block(1, 0, 0, 0, 0, 0, 0)].concat(),
    );
    assert_eq!(
        collect(&rr_short),
        [Err(RtcpError::BodyTooShort {
            pt: PT_RR,
            count: 2
        })]
    );
    let sr_short = pkt(0, PT_SR, &words(&[1, 2, 3, 4, 5]));
    assert_eq!(
        collect(&sr_short),
        [Err(RtcpError::BodyTooShort {
            pt: PT_SR,
            count: 0
        })]
    );
    let pli_short = pkt(FMT_PLI, PT_PSFB, &words(&[1]));
    assert_eq!(
        collect(&pli_short),
        [Err(RtcpError::BodyTooShort {
            pt: PT_PSFB,
            count: FMT_PLI
        })]
    );
    let fir_ragged = fb(FMT_FIR, PT_PSFB, 1, 0, &words(&[5]));
    assert_eq!(
        collect(&fir_ragged),
        [Err(RtcpError::BadFciLength {
            pt: PT_PSFB,
            fmt: FMT_FIR,
            len: 4
        })]
    );
    let nack_empty = fb(FMT_NACK, PT_RTPFB, 1, 2, &[]);
    assert_eq!(
        collect(&nack_empty),
        [Err(RtcpError::BadFciLength {
            pt: PT_RTPFB,
            fmt: FMT_NACK,
            len: 0
        })]
    );
    for e in [collect(&rr_short), collect(&nack_empty)].concat() {
        assert!(!e.unwrap_err().to_string().is_empty());
    }
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_compound() {
    let parts = [
        pkt(1, PT_SR, &sr_body(&[block(1, 2, 3, 4, 5, 6, 7)])),
        sdes_cname(),
        fb(FMT_PLI, PT_PSFB, 1, 2, &[]),
        fb(FMT_NACK, PT_RTPFB, 1, 2, &words(&[0x0010_0003])),
        padded_pkt(0, PT_BYE, &words(&[1]), 4),
    ];
    let buf = parts.concat();
    assert!(collect(&buf).iter().all(Result::is_ok));
    // boundaries[k] is where the first k packets end.
    let boundaries: Vec<usize> = std::iter::once(0)
        .chain(parts.iter().scan(0, |end, p| {
            *end += p.len();
            Some(*end)
        }))
        .collect();
    for cut in 0..buf.len() {
        let parsed = collect(&buf[..cut]);
        if let Some(whole) = boundaries.iter().position(|&b| b == cut) {
            assert_eq!(parsed.len(), whole, "cut {cut}");
            assert!(parsed.iter().all(Result::is_ok), "cut {cut}: {parsed:?}");
        } else {
            let (last, good) = parsed
                .split_last()
                .unwrap_or_else(|| panic!("cut {cut}: nothing"));
            assert!(last.is_err(), "cut {cut}: {parsed:?}");
            assert!(good.iter().all(Result::is_ok), "cut {cut}: {parsed:?}");
        }
    }
}

#[test]
fn errors_end_iteration() {
    let mut it = packets(&[0x00, 0, 0, 0, 0x80, 201, 0, 0]);
    assert_eq!(it.next(), Some(Err(RtcpError::BadVersion(0))));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
}

#[test]
fn demux() {
    let cases: &[(&[u8], bool)] = &[
        (&[0x80, 200, 0, 6], true),
        (&[0x81, 201, 0, 7], true),
        (&[0x80, 192, 0, 0], true),
        (&[0x80, 223, 0, 0], true),
        (&[0xa0, 207, 0, 0], true),
        // RTP: payload type 111 with and without marker, and 96 with marker.
        (&[0x80, 111, 0, 1], false),
        (&[0x80, 0xef, 0, 1], false),
        (&[0x80, 0xe0, 0, 1], false),
        (&[0x80, 191, 0, 0], false),
        (&[0x80, 224, 0, 0], false),
        // Wrong version, STUN, DTLS, too short.
        (&[0x40, 200, 0, 0], false),
        (&[0x00, 0x01, 0, 0], false),
        (&[0x16, 0xfe, 0xfd, 0], false),
        (&[0x80, 200, 0], false),
        (&[], false),
    ];
    for &(packet, expected) in cases {
        assert_eq!(is_rtcp(packet), expected, "{packet:?}");
    }
}

#[test]
fn ntp_short_as_duration() {
    assert_eq!(NtpShort(0x0001_8000).to_nanos(), Nanos(1_500_000_000));
    assert_eq!(NtpShort(1).to_nanos(), Nanos(15_258));
    assert_eq!(NtpShort(u32::MAX).to_nanos(), Nanos(65_535_999_984_741));
}

/// Walks every view so lazily-decoded fields are exercised too.
fn drain(buf: &[u8]) -> usize {
    let mut items = 0;
    let mut errors = 0;
    for p in packets(buf) {
        items += 1;
        match p {
            Ok(
                RtcpPacket::SenderReport { reports, .. }
                | RtcpPacket::ReceiverReport { reports, .. },
            ) => {
                assert_eq!(reports.iter().count(), reports.len());
            }
            Ok(RtcpPacket::Fir { entries, .. }) => {
                assert!(!entries.is_empty());
                assert_eq!(entries.iter().count(), entries.len());
            }
            Ok(RtcpPacket::Nack { pairs, .. }) => {
                let from_pairs: usize = pairs.iter().map(|p| p.lost().len()).sum();
                assert_eq!(pairs.lost().count(), from_pairs);
            }
            Ok(RtcpPacket::Pli { .. } | RtcpPacket::Other { .. }) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    // Every yielded packet consumed at least a header, and at most one error follows.
    assert!(items <= buf.len() / HEADER_LEN + 1);
    items
}

/// Compounds that frame correctly more often than random bytes do, so the body parsers get
/// exercised, then damaged at one byte.
fn plausible_compound() -> impl Strategy<Value = Vec<u8>> {
    let pt = prop_oneof![200u8..=207, any::<u8>()];
    let part = (
        pt,
        prop_oneof![0u8..5, 0u8..32],
        prop::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(|(pt, count, body)| pkt(count, pt, &body[..body.len() / 4 * 4]));
    (
        prop::collection::vec(part, 1..5),
        any::<usize>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(parts, at, byte, damage)| {
            let mut buf = parts.concat();
            if damage {
                let i = at % buf.len();
                buf[i] = byte;
            }
            buf
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_terminate(buf in prop::collection::vec(any::<u8>(), 0..256)) {
        drain(&buf);
        let _ = is_rtcp(&buf);
    }

    #[test]
    fn arbitrary_rtcp_headers_terminate(mut buf in prop::collection::vec(any::<u8>(), 0..256), b0 in 0x80u8..0xc0) {
        if let Some(first) = buf.first_mut() {
            *first = b0;
        }
        drain(&buf);
    }

    #[test]
    fn plausible_compounds_terminate(buf in plausible_compound()) {
        drain(&buf);
    }
}

#[test]
fn written_pli_parses_back() {
    let mut out = [0u8; PLI_LEN];
    write_pli(&mut out, Ssrc(7), Ssrc(0xdead_beef));
    assert!(is_rtcp(&out));
    let parsed: Vec<_> = packets(&out).collect();
    assert_eq!(parsed.len(), 1);
    match parsed[0] {
        Ok(RtcpPacket::Pli {
            sender_ssrc,
            media_ssrc,
        }) => {
            assert_eq!((sender_ssrc, media_ssrc), (Ssrc(7), Ssrc(0xdead_beef)));
        }
        ref other => panic!("not a PLI: {other:?}"),
    }
}

#[test]
fn a_written_nack_parses_back_to_the_numbers_it_names() {
    let cases: Vec<Vec<u16>> = vec![
        vec![7],
        vec![65_530, 65_535, 0, 3, 9],
        vec![1, 2, 3, 40, 41, 100],
        (0..300).map(|i| i * 2).collect(),
    ];
    for lost in cases {
        let mut out = [0u8; NACK_MAX_LEN];
        let n = write_nack(&mut out, Ssrc(1), Ssrc(2), lost.iter().map(|&s| SeqNo(s)))
            .expect("something to name");
        let parsed: Vec<_> = packets(&out[..n]).collect();
        assert_eq!(parsed.len(), 1, "{lost:?}");
        let Ok(RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            pairs,
        }) = parsed[0]
        else {
            panic!("a NACK: {:?}", parsed[0]);
        };
        assert_eq!((sender_ssrc, media_ssrc), (Ssrc(1), Ssrc(2)));
        let named: Vec<u16> = pairs.lost().map(|s| s.0).collect();
        if pairs.len() < NACK_MAX_PAIRS {
            assert_eq!(named, lost);
        } else {
            // Capped: a prefix of what was lost.
            assert_eq!(named[..], lost[..named.len()]);
            assert!(named.len() < lost.len());
        }
    }
    let mut out = [0u8; NACK_MAX_LEN];
    assert_eq!(write_nack(&mut out, Ssrc(1), Ssrc(2), []), None);
}
