//! Datagrams into an ICE-lite agent with one known viewer: raw bytes, and the viewer's own
//! checks (nominating or not, from one of a few addresses) bent by a byte flip with or without
//! a re-sealed FINGERPRINT, with time passing between them. After every step:
//! - nothing panics; `answered + drops` equals the datagrams handed in;
//! - a refusal leaves `response` empty; an answer is a Binding success for the same transaction,
//!   signed with the viewer's password, whose XOR-MAPPED-ADDRESS is the sender, and the sender
//!   then routes to the viewer;
//! - a check that changed the selected address queued `Selected` for it;
//! - the viewer expires exactly when a model of its deadline says, and the next wake-up is
//!   never in the past.
//!
//! Input: a two-octet length and that many octets of a first raw datagram (the seeds are the
//! RFC 5769 test vectors, written by `scripts/fuzz.sh`), then the steps through `arbitrary`.
#![no_main]

use std::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use corecast_engine::Nanos;
use corecast_webrtc::ice::{Credentials, IceConfig, IceEvent, IceLite, ViewerKey};
use libfuzzer_sys::fuzz_target;
use stun::agent::TransactionId;
use stun::attributes::{
    RawAttribute, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use stun::fingerprint::{fingerprint_value, FINGERPRINT};
use stun::integrity::MessageIntegrity;
use stun::message::{Getter, Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use stun::textattrs::Username;
use stun::xoraddr::XorMappedAddress;

const VIEWER: ViewerKey = ViewerKey(1);
const UFRAG: &str = "cc01";
const PWD: &str = "corecast-local-password-24";
const REMOTE: &str = "brws";
const TIMEOUT: Nanos = Nanos::from_millis(30_000);

#[derive(Arbitrary, Debug)]
struct Input {
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Raw {
        bytes: Vec<u8>,
        from: u8,
    },
    Check {
        nominate: bool,
        from: u8,
        flip: Option<(u8, u8)>,
        reseal: bool,
    },
    Wait {
        ms: u16,
    },
}

fn addr(from: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 1 + from % 3], 4000 + u16::from(from % 5)))
}

fn check(nominate: bool) -> (Vec<u8>, TransactionId) {
    let transaction_id = TransactionId::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(transaction_id),
        Box::new(Username::new(ATTR_USERNAME, format!("{UFRAG}:{REMOTE}"))),
        Box::new(RawAttribute {
            typ: ATTR_PRIORITY,
            length: 4,
            value: vec![0x6e, 0, 1, 0xff],
        }),
        Box::new(RawAttribute {
            typ: ATTR_ICE_CONTROLLING,
            length: 8,
            value: vec![7; 8],
        }),
    ];
    if nominate {
        setters.push(Box::new(RawAttribute {
            typ: ATTR_USE_CANDIDATE,
            length: 0,
            value: vec![],
        }));
    }
    setters.push(Box::new(MessageIntegrity::new_short_term_integrity(
        PWD.into(),
    )));
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).expect("check builds");
    (m.raw, transaction_id)
}

fn assert_answer(response: &[u8], from: SocketAddr, transaction_id: Option<TransactionId>) {
    let mut m = Message::new();
    m.unmarshal_binary(response).expect("answer decodes");
    assert_eq!(m.typ, BINDING_SUCCESS);
    if let Some(id) = transaction_id {
        assert_eq!(m.transaction_id, id);
    }
    FINGERPRINT.check(&m).expect("answer FINGERPRINT");
    MessageIntegrity::new_short_term_integrity(PWD.into())
        .check(&mut m)
        .expect("answer signed with the viewer's password");
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&m).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
}

fuzz_target!(|data: &[u8]| {
    // Octets 0-1: the length of a datagram handed in first, as is, from the first address (how
    // the RFC 5769 vectors are seeded); the rest: the steps.
    let (first, rest) = match data {
        [hi, lo, rest @ ..] => {
            rest.split_at(usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len()))
        }
        _ => return,
    };
    let Ok(mut input) = Input::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    if !first.is_empty() {
        input.steps.insert(
            0,
            Step::Raw {
                bytes: first.to_vec(),
                from: 0,
            },
        );
    }
    let mut agent = IceLite::new(IceConfig::default());
    let mut now = Nanos::ZERO;
    agent
        .add(
            VIEWER,
            Credentials {
                ufrag: UFRAG.into(),
                pwd: PWD.into(),
            },
            REMOTE,
            now,
        )
        .unwrap();
    let mut handed_in = 0u64;
    let mut response = Vec::new();
    // The model: the selected address and the deadline it implies.
    let mut selected: Option<SocketAddr> = None;
    let mut deadline = TIMEOUT;
    let mut alive = true;

    for step in input.steps.into_iter().take(256) {
        let (bytes, from, transaction_id) = match step {
            Step::Wait { ms } => {
                now = now.saturating_add(Nanos::from_millis(u64::from(ms) * 10));
                agent.handle_timeout(now);
                if let Some(next) = agent.poll_timeout() {
                    assert!(next > now, "wake-up in the past");
                }
                let mut expired = false;
                while let Some(event) = agent.poll_event() {
                    match event {
                        IceEvent::ConsentExpired { viewer }
                        | IceEvent::ConnectTimedOut { viewer } => {
                            assert_eq!(viewer, VIEWER);
                            assert!(alive && now >= deadline, "expired early");
                            assert_eq!(
                                matches!(event, IceEvent::ConsentExpired { .. }),
                                selected.is_some()
                            );
                            expired = true;
                        }
                        IceEvent::Selected { .. } => panic!("Selected without a check"),
                    }
                }
                if alive && now >= deadline {
                    assert!(expired, "deadline passed without expiry");
                    alive = false;
                }
                assert_eq!(agent.contains(VIEWER), alive);
                continue;
            }
            Step::Raw { bytes, from } => (bytes, addr(from), None),
            Step::Check {
                nominate,
                from,
                flip,
                reseal,
            } => {
                let (mut bytes, id) = check(nominate);
                if let Some((at, mask)) = flip {
                    let at = usize::from(at) % bytes.len();
                    bytes[at] ^= mask;
                    if reseal && bytes.len() >= 28 {
                        let end = bytes.len() - 4;
                        let value = fingerprint_value(&bytes[..end - 4]);
                        bytes[end..].copy_from_slice(&value.to_be_bytes());
                    }
                }
                (bytes, addr(from), Some(id))
            }
        };
        handed_in += 1;
        match agent.handle_stun(&bytes, from, now, &mut response) {
            Ok(checked) => {
                assert!(alive);
                assert_eq!(checked.viewer, VIEWER);
                assert_answer(&response, from, transaction_id);
                assert_eq!(agent.viewer_at(from), Some(VIEWER));
                if checked.selected_changed {
                    assert!(checked.nominated && selected != Some(from));
                    assert_eq!(
                        agent.poll_event(),
                        Some(IceEvent::Selected {
                            viewer: VIEWER,
                            addr: from
                        })
                    );
                    selected = Some(from);
                }
                if selected == Some(from) {
                    deadline = now.saturating_add(TIMEOUT);
                }
                assert_eq!(agent.selected(VIEWER), selected);
            }
            Err(reason) => {
                assert!(response.is_empty());
                assert!(!reason.reason().is_empty());
            }
        }
        assert_eq!(agent.poll_event(), None);
        let counters = agent.counters();
        assert_eq!(counters.answered + counters.total_drops(), handed_in);
    }
});
