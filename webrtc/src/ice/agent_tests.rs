//! The agent over virtual time, against a client built with the `stun` crate the way a browser
//! sends its checks.

use std::net::SocketAddr;

use corecast_engine::Nanos;
use stun::agent::TransactionId;
use stun::attributes::{
    RawAttribute, ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME,
    ATTR_USE_CANDIDATE,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Setter, BINDING_REQUEST, BINDING_SUCCESS, CLASS_INDICATION,
    METHOD_BINDING,
};
use stun::textattrs::Username;
use stun::xoraddr::XorMappedAddress;

use super::{AddError, Checked, Credentials, IceConfig, IceEvent, IceLite, StunDrop, ViewerKey};

const SECOND: u64 = 1_000_000_000;
const LOCAL_UFRAG: &str = "cc01";
const LOCAL_PWD: &str = "corecast-local-password-24";
const REMOTE_UFRAG: &str = "brws";

fn at(seconds: u64) -> Nanos {
    Nanos(seconds * SECOND)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], port))
}

/// What goes into one check; the defaults are a browser's nominating check.
#[derive(Clone)]
struct Check {
    username: String,
    pwd: String,
    use_candidate: bool,
    role: Option<stun::attributes::AttrType>,
    integrity: bool,
    fingerprint: bool,
    typ: MessageType,
}

impl Check {
    fn browser() -> Check {
        Check {
            username: format!("{LOCAL_UFRAG}:{REMOTE_UFRAG}"),
            pwd: LOCAL_PWD.into(),
            use_candidate: true,
            role: Some(ATTR_ICE_CONTROLLING),
            integrity: true,
            fingerprint: true,
            typ: BINDING_REQUEST,
        }
    }

    fn plain() -> Check {
        Check {
            use_candidate: false,
            ..Check::browser()
        }
    }

    /// The request's bytes and transaction id.
    fn build(&self) -> (Vec<u8>, TransactionId) {
        let mut m = Message::new();
        let transaction_id = TransactionId::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(self.typ),
            Box::new(transaction_id),
            Box::new(Username::new(ATTR_USERNAME, self.username.clone())),
            Box::new(RawAttribute {
                typ: ATTR_PRIORITY,
                length: 4,
                value: 0x6e7f_1eff_u32.to_be_bytes().to_vec(),
            }),
        ];
        if let Some(role) = self.role {
            setters.push(Box::new(RawAttribute {
                typ: role,
                length: 8,
                value: 0x1234_5678_9abc_def0_u64.to_be_bytes().to_vec(),
            }));
        }
        if self.use_candidate {
            setters.push(Box::new(RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: Vec::new(),
            }));
        }
        if self.integrity {
            setters.push(Box::new(MessageIntegrity::new_short_term_integrity(
                self.pwd.clone(),
            )));
        }
        if self.fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        m.build(&setters).expect("client request builds");
        (m.raw, transaction_id)
    }
}

/// Verifies an answer as the browser would: success, same transaction, FINGERPRINT,
/// MESSAGE-INTEGRITY under the local password, XOR-MAPPED-ADDRESS = where it came from.
fn assert_answer(response: &[u8], transaction_id: TransactionId, from: SocketAddr) {
    let mut m = Message::new();
    m.unmarshal_binary(response).expect("response decodes");
    assert_eq!(m.typ, BINDING_SUCCESS);
    assert_eq!(m.transaction_id, transaction_id);
    FINGERPRINT.check(&m).expect("response FINGERPRINT");
    MessageIntegrity::new_short_term_integrity(LOCAL_PWD.into())
        .check(&mut m)
        .expect("response MESSAGE-INTEGRITY under the local password");
    assert!(
        MessageIntegrity::new_short_term_integrity("not-the-password".into())
            .check(&mut m)
            .is_err(),
        "the response is signed, not merely carrying an attribute"
    );
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&m).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
}

fn agent_with_viewer(now: Nanos) -> IceLite {
    let mut agent = IceLite::new(IceConfig::default());
    agent
        .add(
            ViewerKey(7),
            Credentials {
                ufrag: LOCAL_UFRAG.into(),
                pwd: LOCAL_PWD.into(),
            },
            REMOTE_UFRAG,
            now,
        )
        .unwrap();
    agent
}

/// Sends `check` from `from` at `now` and verifies the answer.
fn send(agent: &mut IceLite, check: &Check, from: SocketAddr, now: Nanos) -> Checked {
    let (bytes, transaction_id) = check.build();
    let mut response = Vec::new();
    let checked = agent
        .handle_stun(&bytes, from, now, &mut response)
        .expect("check answered");
    assert_answer(&response, transaction_id, from);
    checked
}

/// Runs the agent's timers up to `now` as the node would: every due `poll_timeout` in order.
fn run_timers(agent: &mut IceLite, now: Nanos) -> Vec<IceEvent> {
    let mut events = Vec::new();
    while let Some(due) = agent.poll_timeout() {
        if due > now {
            break;
        }
        agent.handle_timeout(due);
        events.extend(std::iter::from_fn(|| agent.poll_event()));
    }
    agent.handle_timeout(now);
    events.extend(std::iter::from_fn(|| agent.poll_event()));
    events
}

#[test]
fn nominating_check_is_answered_and_selects_its_address() {
    let mut agent = agent_with_viewer(at(0));
    let checked = send(&mut agent, &Check::browser(), addr(5000), at(1));
    assert_eq!(
        checked,
        Checked {
            viewer: ViewerKey(7),
            nominated: true,
            selected_changed: true
        }
    );
    assert_eq!(
        agent.poll_event(),
        Some(IceEvent::Selected {
            viewer: ViewerKey(7),
            addr: addr(5000)
        })
    );
    assert_eq!(agent.poll_event(), None);
    assert_eq!(agent.selected(ViewerKey(7)), Some(addr(5000)));
    assert_eq!(agent.viewer_at(addr(5000)), Some(ViewerKey(7)));
    assert_eq!(agent.viewer_at(addr(5001)), None);

    // Nominating the same address again changes nothing.
    let again = send(&mut agent, &Check::browser(), addr(5000), at(2));
    assert!(again.nominated && !again.selected_changed);
    assert_eq!(agent.poll_event(), None);
    assert_eq!(agent.counters().answered, 2);
}

#[test]
fn plain_check_is_answered_and_routes_without_selecting() {
    let mut agent = agent_with_viewer(at(0));
    let checked = send(&mut agent, &Check::plain(), addr(5000), at(1));
    assert!(!checked.nominated && !checked.selected_changed);
    assert_eq!(agent.poll_event(), None);
    assert_eq!(agent.selected(ViewerKey(7)), None);
    assert_eq!(agent.viewer_at(addr(5000)), Some(ViewerKey(7)));
}

#[test]
fn consent_every_5s_for_2_minutes_never_expires() {
    let mut agent = agent_with_viewer(at(0));
    send(&mut agent, &Check::browser(), addr(5000), at(0));
    assert!(matches!(
        agent.poll_event(),
        Some(IceEvent::Selected { .. })
    ));
    for t in (5..=120).step_by(5) {
        assert_eq!(run_timers(&mut agent, at(t)), vec![], "at {t} s");
        send(&mut agent, &Check::plain(), addr(5000), at(t));
    }
    assert!(agent.contains(ViewerKey(7)));
    // Lazy rechecks keep one live queue entry per viewer however often consent is refreshed.
    assert!(
        agent.queued_deadlines() <= 2,
        "{}",
        agent.queued_deadlines()
    );
}

#[test]
fn consent_expires_exactly_30s_after_the_last_check() {
    let mut agent = agent_with_viewer(at(0));
    send(&mut agent, &Check::browser(), addr(5000), at(0));
    agent.poll_event();
    let last = Nanos(17 * SECOND + 123);
    send(&mut agent, &Check::plain(), addr(5000), last);
    let deadline = Nanos(last.0 + 30 * SECOND);

    assert_eq!(run_timers(&mut agent, Nanos(deadline.0 - 1)), vec![]);
    assert!(agent.contains(ViewerKey(7)));
    assert_eq!(
        agent.poll_timeout(),
        Some(deadline),
        "the next wake-up is the real deadline"
    );

    assert_eq!(
        run_timers(&mut agent, deadline),
        vec![IceEvent::ConsentExpired {
            viewer: ViewerKey(7)
        }]
    );
    assert!(!agent.contains(ViewerKey(7)));
    assert_eq!(agent.viewer_at(addr(5000)), None);
    assert_eq!(agent.selected(ViewerKey(7)), None);
    // Removed means its credentials are gone too.
    let (bytes, _) = Check::plain().build();
    let mut response = Vec::new();
    assert_eq!(
        agent.handle_stun(&bytes, addr(5000), deadline, &mut response),
        Err(StunDrop::UnknownUsername)
    );
}

#[test]
fn a_viewer_that_never_checks_times_out_at_connect_timeout() {
    let mut agent = agent_with_viewer(at(3));
    assert_eq!(agent.poll_timeout(), Some(at(33)));
    assert_eq!(run_timers(&mut agent, Nanos(at(33).0 - 1)), vec![]);
    assert_eq!(
        run_timers(&mut agent, at(33)),
        vec![IceEvent::ConnectTimedOut {
            viewer: ViewerKey(7)
        }]
    );
    assert!(agent.is_empty());
    assert_eq!(agent.poll_timeout(), None);
}

#[test]
fn a_viewer_that_checks_but_never_nominates_times_out_too() {
    let mut agent = agent_with_viewer(at(0));
    for t in [1, 10, 20, 29] {
        send(&mut agent, &Check::plain(), addr(5000), at(t));
    }
    assert_eq!(
        run_timers(&mut agent, at(30)),
        vec![IceEvent::ConnectTimedOut {
            viewer: ViewerKey(7)
        }]
    );
}

#[test]
fn a_short_consent_timeout_after_nomination_is_not_delayed_by_the_connect_timeout() {
    let mut agent = IceLite::new(IceConfig {
        consent_timeout: at(5),
        connect_timeout: at(60),
        max_addresses_per_viewer: 4,
    });
    agent
        .add(
            ViewerKey(1),
            Credentials {
                ufrag: LOCAL_UFRAG.into(),
                pwd: LOCAL_PWD.into(),
            },
            REMOTE_UFRAG,
            at(0),
        )
        .unwrap();
    send(&mut agent, &Check::browser(), addr(5000), at(1));
    agent.poll_event();
    assert_eq!(agent.poll_timeout(), Some(at(6)));
    assert_eq!(
        run_timers(&mut agent, at(6)),
        vec![IceEvent::ConsentExpired {
            viewer: ViewerKey(1)
        }]
    );
}

#[test]
fn address_change_selects_again_and_consent_follows_the_new_address() {
    let mut agent = agent_with_viewer(at(0));
    send(&mut agent, &Check::browser(), addr(5000), at(0));
    agent.poll_event();

    let moved = send(&mut agent, &Check::browser(), addr(6000), at(10));
    assert!(moved.selected_changed);
    assert_eq!(
        agent.poll_event(),
        Some(IceEvent::Selected {
            viewer: ViewerKey(7),
            addr: addr(6000)
        })
    );
    assert_eq!(agent.selected(ViewerKey(7)), Some(addr(6000)));
    // Both addresses passed checks, so both route to the viewer.
    assert_eq!(agent.viewer_at(addr(5000)), Some(ViewerKey(7)));
    assert_eq!(agent.viewer_at(addr(6000)), Some(ViewerKey(7)));

    // Checks from the old address are answered but no longer keep consent.
    for t in [15, 20, 25, 30, 35] {
        assert_eq!(run_timers(&mut agent, at(t)), vec![]);
        send(&mut agent, &Check::plain(), addr(5000), at(t));
    }
    assert_eq!(run_timers(&mut agent, Nanos(at(40).0 - 1)), vec![]);
    assert_eq!(
        run_timers(&mut agent, at(40)),
        vec![IceEvent::ConsentExpired {
            viewer: ViewerKey(7)
        }]
    );
}

#[test]
fn checks_from_the_new_address_keep_consent() {
    let mut agent = agent_with_viewer(at(0));
    send(&mut agent, &Check::browser(), addr(5000), at(0));
    send(&mut agent, &Check::browser(), addr(6000), at(10));
    for t in (15..=100).step_by(5) {
        assert_eq!(
            run_timers(&mut agent, at(t))
                .iter()
                .filter(|e| !matches!(e, IceEvent::Selected { .. }))
                .count(),
            0
        );
        send(&mut agent, &Check::plain(), addr(6000), at(t));
    }
    assert!(agent.contains(ViewerKey(7)));
}

#[test]
fn remembered_addresses_are_bounded_and_keep_the_selected_one() {
    let mut agent = agent_with_viewer(at(0));
    send(&mut agent, &Check::browser(), addr(5000), at(0));
    for port in 5001..5020 {
        send(&mut agent, &Check::plain(), addr(port), at(1));
    }
    let routed: Vec<u16> = (5000..5020)
        .filter(|p| agent.viewer_at(addr(*p)) == Some(ViewerKey(7)))
        .collect();
    assert_eq!(routed, vec![5000, 5017, 5018, 5019]);
}

#[test]
fn add_refuses_duplicates_and_bad_credentials_and_remove_frees_the_ufrag() {
    let mut agent = agent_with_viewer(at(0));
    let creds = |ufrag: &str| Credentials {
        ufrag: ufrag.into(),
        pwd: LOCAL_PWD.into(),
    };
    assert_eq!(
        agent.add(ViewerKey(8), creds(LOCAL_UFRAG), "x", at(0)),
        Err(AddError::DuplicateUfrag)
    );
    assert_eq!(
        agent.add(ViewerKey(7), creds("other"), "x", at(0)),
        Err(AddError::DuplicateViewer)
    );
    for (ufrag, remote) in [("a:b", "x"), ("", "x"), ("ok", ""), ("ok", "x:y")] {
        assert_eq!(
            agent.add(ViewerKey(9), creds(ufrag), remote, at(0)),
            Err(AddError::InvalidCredentials),
            "{ufrag:?} {remote:?}"
        );
    }
    assert_eq!(AddError::DuplicateUfrag.reason(), "duplicate_ufrag");

    send(&mut agent, &Check::browser(), addr(5000), at(1));
    assert!(agent.remove(ViewerKey(7)));
    assert!(!agent.remove(ViewerKey(7)));
    assert_eq!(agent.viewer_at(addr(5000)), None);
    agent
        .add(ViewerKey(8), creds(LOCAL_UFRAG), REMOTE_UFRAG, at(2))
        .unwrap();
    let checked = send(&mut agent, &Check::browser(), addr(5000), at(3));
    assert_eq!(checked.viewer, ViewerKey(8));
    // The removed viewer's stale queue entry (due at 30 s) does not expire the new one early.
    assert_eq!(
        run_timers(&mut agent, at(32))
            .iter()
            .filter(|e| !matches!(e, IceEvent::Selected { .. }))
            .count(),
        0
    );
    assert!(agent.contains(ViewerKey(8)));
}

/// Wrong credentials, missing and corrupt checksums, truncations and garbage: each its reason,
/// nothing answered, nothing routed, and the counters add up to what was handed in.
#[test]
fn bad_requests_are_refused_with_their_reason_and_counted() {
    let mut agent = agent_with_viewer(at(0));
    let from = addr(5000);
    let mut handed_in = 0u64;
    let mut expect = |agent: &mut IceLite, bytes: &[u8], reason: StunDrop| {
        let mut response = vec![0xaa; 64];
        assert_eq!(
            agent.handle_stun(bytes, from, at(1), &mut response),
            Err(reason),
            "{bytes:02x?}"
        );
        assert!(response.is_empty());
        handed_in += 1;
    };

    let wrong_pwd = Check {
        pwd: "wrong-password".into(),
        ..Check::browser()
    };
    expect(&mut agent, &wrong_pwd.build().0, StunDrop::BadIntegrity);
    for username in [
        format!("nope:{REMOTE_UFRAG}"),
        format!("{LOCAL_UFRAG}:nope"),
        LOCAL_UFRAG.to_string(),
        format!("{REMOTE_UFRAG}:{LOCAL_UFRAG}"),
    ] {
        let check = Check {
            username,
            ..Check::browser()
        };
        expect(&mut agent, &check.build().0, StunDrop::UnknownUsername);
    }
    let no_fingerprint = Check {
        fingerprint: false,
        ..Check::browser()
    };
    expect(
        &mut agent,
        &no_fingerprint.build().0,
        StunDrop::MissingFingerprint,
    );
    let mut bad_fingerprint = Check::browser().build().0;
    let last = bad_fingerprint.len() - 1;
    bad_fingerprint[last] ^= 0x40;
    expect(&mut agent, &bad_fingerprint, StunDrop::BadFingerprint);
    let no_integrity = Check {
        integrity: false,
        ..Check::browser()
    };
    expect(
        &mut agent,
        &no_integrity.build().0,
        StunDrop::MissingIntegrity,
    );
    let controlled = Check {
        role: Some(ATTR_ICE_CONTROLLED),
        ..Check::browser()
    };
    expect(&mut agent, &controlled.build().0, StunDrop::RoleConflict);
    let no_role = Check {
        role: None,
        ..Check::browser()
    };
    expect(&mut agent, &no_role.build().0, StunDrop::MissingRole);
    for typ in [
        BINDING_SUCCESS,
        MessageType::new(METHOD_BINDING, CLASS_INDICATION),
    ] {
        let check = Check {
            typ,
            ..Check::browser()
        };
        expect(&mut agent, &check.build().0, StunDrop::NotBindingRequest);
    }
    // A request without USERNAME, as a STUN server would get.
    let mut m = Message::new();
    m.build(&[
        Box::new(BINDING_REQUEST) as Box<dyn Setter>,
        Box::new(TransactionId::new()),
        Box::new(FINGERPRINT),
    ])
    .unwrap();
    expect(&mut agent, &m.raw, StunDrop::MissingUsername);

    let good = Check::browser().build().0;
    for len in 0..good.len() {
        expect(&mut agent, &good[..len], StunDrop::Malformed);
    }
    // Garbage: RTP- and DTLS-looking bytes, and random bytes behind a valid STUN header.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..500 {
        let len = (next() % 120) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 && bytes.len() >= 20 {
            bytes[..20].copy_from_slice(&good[..20]);
            let body = (bytes.len() - 20) as u16;
            bytes[2..4].copy_from_slice(&body.to_be_bytes());
        }
        let mut response = Vec::new();
        let result = agent.handle_stun(&bytes, from, at(1), &mut response);
        assert!(result.is_err(), "garbage answered: {bytes:02x?}");
        assert!(response.is_empty());
        handed_in += 1;
    }

    // One good check among them.
    send(&mut agent, &Check::browser(), from, at(1));
    handed_in += 1;

    let counters = agent.counters();
    assert_eq!(counters.answered, 1);
    assert_eq!(counters.answered + counters.total_drops(), handed_in);
    assert_eq!(counters.drops(StunDrop::UnknownUsername), 4);
    assert_eq!(counters.drops(StunDrop::BadIntegrity), 1);
    assert_eq!(counters.drops(StunDrop::NotBindingRequest), 2);
    let names: Vec<&str> = counters.drops_by_reason().map(|(name, _)| name).collect();
    assert!(names.contains(&"role_conflict") && names.contains(&"malformed"));
    assert_eq!(
        counters.drops_by_reason().map(|(_, n)| n).sum::<u64>(),
        counters.total_drops()
    );
}

#[test]
fn ten_thousand_viewers_time_out_through_the_queue() {
    let mut agent = IceLite::new(IceConfig::default());
    for i in 0..10_000u64 {
        agent
            .add(
                ViewerKey(i),
                Credentials {
                    ufrag: format!("u{i}"),
                    pwd: LOCAL_PWD.into(),
                },
                REMOTE_UFRAG,
                Nanos(i * 1_000_000),
            )
            .unwrap();
    }
    // Half of them nominate and refresh at 20 s, so they outlive the connect timeout.
    for i in (0..10_000u64).step_by(2) {
        let check = Check {
            username: format!("u{i}:{REMOTE_UFRAG}"),
            ..Check::browser()
        };
        send(&mut agent, &check, addr(10_000 + i as u16), at(20));
    }
    let events = run_timers(&mut agent, at(45));
    let timed_out = events
        .iter()
        .filter(|e| matches!(e, IceEvent::ConnectTimedOut { .. }))
        .count();
    assert_eq!(timed_out, 5_000);
    assert_eq!(agent.len(), 5_000);
    let expired = run_timers(&mut agent, at(50))
        .iter()
        .filter(|e| matches!(e, IceEvent::ConsentExpired { .. }))
        .count();
    assert_eq!(expired, 5_000);
    assert!(agent.is_empty());
    assert_eq!(agent.poll_timeout(), None);
}

#[test]
fn a_viewer_costs_well_under_the_memory_budget() {
    let agent = IceLite::new(IceConfig::default());
    // Chrome's ufrag is 4 characters and its password 24; corecast's own are the local ones.
    let bytes = agent.bytes_per_viewer(16, 24);
    println!("ICE-lite bytes per viewer (16-char ufrags, 24-char pwd, 4 addresses): {bytes}");
    assert!(bytes < 1024, "{bytes} bytes per viewer");
}
