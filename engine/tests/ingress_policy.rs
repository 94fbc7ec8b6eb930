//! Ingress policy over virtual time: latching a source's sender (and taking a new one after the
//! old went silent), and keyframe requests coalesced and rate limited per source.

use std::net::SocketAddr;

use corecast_engine::rtcp::{self, RtcpPacket};
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, DropReason, IngressConfig, KeyframeRequest, Nanos, SourceId, SourceIngress, Ssrc,
};

const IDLE: Nanos = Nanos::from_millis(2_000);
const PLI_INTERVAL: Nanos = Nanos::from_millis(500);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ingress(config: IngressConfig) -> SourceIngress {
    SourceIngress::with_config(SourceId(1), Codec::Vp8, 90_000, config)
}

fn config() -> IngressConfig {
    IngressConfig {
        idle: IDLE,
        pli_interval: PLI_INTERVAL,
        rtcp_ssrc: Ssrc(0xc0c0),
        ..IngressConfig::default()
    }
}

/// Offer the stream's next packet from `from` at `at_ms`; what `accept` said.
fn offer(
    ing: &mut SourceIngress,
    stream: &mut Vp8Stream,
    from: Option<&str>,
    at_ms: u64,
) -> Result<bool, DropReason> {
    let mut buf = Vec::new();
    stream.next_packet(&mut buf);
    ing.accept(&buf, from.map(addr), Nanos::from_millis(at_ms))
        .map(|p| p.is_some())
}

fn stream() -> Vp8Stream {
    Vp8Stream::new(Ssrc(0x1234), 100, 0, VideoShape::default())
}

#[test]
fn a_latched_source_drops_and_counts_other_senders_until_its_sender_is_silent() {
    let mut ing = ingress(config());
    let mut s = stream();
    let (a, b) = ("10.0.0.1:4000", "10.0.0.2:4000");
    assert_eq!(offer(&mut ing, &mut s, Some(a), 0), Ok(true));
    assert_eq!(ing.sender(), Some(addr(a)));
    // Another address while the sender keeps sending: dropped, every time, and counted.
    for ms in 1..=5 {
        assert_eq!(
            offer(&mut ing, &mut s, Some(b), ms * 10),
            Err(DropReason::WrongSender)
        );
        assert_eq!(offer(&mut ing, &mut s, Some(a), ms * 10 + 1), Ok(true));
    }
    // A packet whose address the I/O layer could not tell is taken and latches nothing.
    assert_eq!(offer(&mut ing, &mut s, None, 60), Ok(true));
    assert_eq!(ing.sender(), Some(addr(a)));
    // Just short of the idle time since the sender's last packet: still refused.
    let last = 60;
    assert_eq!(
        offer(&mut ing, &mut s, Some(b), last + IDLE.0 / 1_000_000 - 1),
        Err(DropReason::WrongSender)
    );
    // A refused packet does not keep the latch alive: at the idle time, the new one takes over.
    assert_eq!(
        offer(&mut ing, &mut s, Some(b), last + IDLE.0 / 1_000_000),
        Ok(true)
    );
    assert_eq!(ing.sender(), Some(addr(b)));
    assert_eq!(
        offer(&mut ing, &mut s, Some(a), last + IDLE.0 / 1_000_000 + 1),
        Err(DropReason::WrongSender),
        "the old sender is now the stranger"
    );

    let c = ing.counters();
    assert_eq!(c.drops.get(DropReason::WrongSender), 7);
    // Wrong-sender packets are not the source's: `packets` leaves them out.
    assert_eq!((c.packets, c.accepted), (8, 8));
    assert_eq!(
        c.packets + c.drops.get(DropReason::WrongSender),
        c.accepted + c.drops.total() + c.held
    );
}

#[test]
fn a_source_that_does_not_latch_takes_every_sender_and_follows_the_last() {
    let mut ing = ingress(IngressConfig {
        latch: false,
        ..config()
    });
    let mut s = stream();
    for (ms, from) in [
        (0, "10.0.0.1:4000"),
        (1, "10.0.0.2:5000"),
        (2, "10.0.0.1:4000"),
    ] {
        assert_eq!(offer(&mut ing, &mut s, Some(from), ms), Ok(true));
        assert_eq!(ing.sender(), Some(addr(from)));
    }
    assert_eq!(offer(&mut ing, &mut s, None, 3), Ok(true));
    assert_eq!(ing.sender(), Some(addr("10.0.0.1:4000")), "kept");
    assert_eq!(ing.counters().drops.get(DropReason::WrongSender), 0);
}

/// The PLI `req` carries: (sender SSRC, media SSRC).
fn pli(req: &KeyframeRequest) -> (Ssrc, Ssrc) {
    match rtcp::packets(&req.bytes).next() {
        Some(Ok(RtcpPacket::Pli {
            sender_ssrc,
            media_ssrc,
        })) => (sender_ssrc, media_ssrc),
        other => panic!("not a PLI: {other:?}"),
    }
}

#[test]
fn keyframe_requests_are_coalesced_and_sent_once_per_interval() {
    let mut ing = ingress(config());
    let mut s = stream();
    // Before the source has sent, there is nowhere to send a request: it is dropped (the first
    // packets carry a keyframe anyway), not kept for later.
    ing.request_keyframe();
    assert_eq!(ing.poll_transmit(Nanos::ZERO), None);
    assert_eq!(ing.poll_timeout(), None);
    offer(&mut ing, &mut s, Some("10.0.0.1:4000"), 0).unwrap();
    assert_eq!(
        ing.poll_transmit(Nanos::ZERO),
        None,
        "nothing was asked since"
    );

    // Requests every millisecond for 5 s: one PLI per interval, sent when the interval ends.
    let mut sent = Vec::new();
    for ms in 0..5_000u64 {
        let now = Nanos::from_millis(ms);
        ing.request_keyframe();
        if let Some(at) = ing.poll_timeout() {
            assert!(at <= now.saturating_add(PLI_INTERVAL), "wakes up in time");
        }
        while let Some(req) = ing.poll_transmit(now) {
            assert_eq!(req.to, addr("10.0.0.1:4000"));
            assert_eq!(pli(&req), (Ssrc(0xc0c0), Ssrc(0x1234)));
            sent.push(ms);
        }
    }
    assert_eq!(sent, (0..10).map(|k| k * 500).collect::<Vec<_>>());
    assert_eq!(ing.counters().keyframe_requests_sent, 10);
    // The last request (at 4999 ms) waits for the interval's end, and then goes.
    assert_eq!(ing.poll_timeout(), Some(Nanos::from_millis(5_000)));
    assert_eq!(ing.poll_transmit(Nanos::from_millis(4_999)), None);
    assert!(ing.poll_transmit(Nanos::from_millis(5_000)).is_some());
    assert_eq!(ing.poll_timeout(), None, "nothing waits");
}

#[test]
fn keyframe_requests_go_to_the_feedback_address_and_an_unsent_one_is_not_counted() {
    let mut ing = ingress(IngressConfig {
        feedback: Some(addr("10.9.9.9:6000")),
        ..config()
    });
    let mut s = stream();
    offer(&mut ing, &mut s, Some("10.0.0.1:4000"), 0).unwrap();
    ing.request_keyframe();
    let req = ing.poll_transmit(Nanos::from_millis(1)).unwrap();
    assert_eq!(req.to, addr("10.9.9.9:6000"));
    assert_eq!(ing.counters().keyframe_requests_sent, 1);
    // The I/O layer could not send it: not counted, and the interval does not run from it.
    ing.record_keyframe_request_failure();
    assert_eq!(ing.counters().keyframe_requests_sent, 0);
    ing.request_keyframe();
    assert!(ing.poll_transmit(Nanos::from_millis(2)).is_some());
    assert_eq!(ing.counters().keyframe_requests_sent, 1);
}

#[test]
fn the_timeout_covers_a_stream_on_probation_and_handling_it_gives_the_stream_up() {
    let mut ing = ingress(IngressConfig {
        probation: 3,
        ..config()
    });
    let mut s = stream();
    offer(&mut ing, &mut s, None, 0).unwrap();
    // One packet of another stream is held on probation.
    let mut other = Vp8Stream::new(Ssrc(0x9999), 40_000, 0, VideoShape::default());
    assert_eq!(offer(&mut ing, &mut other, None, 10), Ok(false));
    assert_eq!(ing.counters().held, 1);
    let at = ing.poll_timeout().expect("the probation has a deadline");
    assert_eq!(
        at,
        Nanos::from_millis(10).saturating_add(config().takeover_silence)
    );
    ing.handle_timeout(Nanos(at.0 - 1));
    assert_eq!(ing.counters().held, 1, "not yet");
    ing.handle_timeout(at);
    assert_eq!(ing.counters().held, 0);
    assert_eq!(ing.counters().drops.get(DropReason::OtherSsrc), 1);
    assert_eq!(ing.poll_timeout(), None);
}
