//! The viewer's ICE side: STUN Binding requests as a controlling browser sends them
//! (USERNAME `server:client`, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE on the first,
//! MESSAGE-INTEGRITY under the node's password, FINGERPRINT), and the check of the answer.

use stun::agent::TransactionId;
use stun::attributes::{
    RawAttribute, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use stun::textattrs::Username;

/// RFC 8445 §5.1.2.1 priority of a host candidate (type preference 126, component 1), as the
/// viewer's own candidate would have.
const PRIORITY: u32 = (126 << 24) | (65_535 << 8) | 255;

/// A Binding request from the viewer (`client_ufrag`) to the node (`server_ufrag`, `server_pwd`);
/// `nominate` adds USE-CANDIDATE. Returns its bytes and transaction id.
pub fn binding_request(
    server_ufrag: &str,
    client_ufrag: &str,
    server_pwd: &str,
    tie_breaker: u64,
    nominate: bool,
) -> (Vec<u8>, TransactionId) {
    let mut m = Message::new();
    let transaction_id = TransactionId::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(transaction_id),
        Box::new(Username::new(
            ATTR_USERNAME,
            format!("{server_ufrag}:{client_ufrag}"),
        )),
        Box::new(RawAttribute {
            typ: ATTR_PRIORITY,
            length: 4,
            value: PRIORITY.to_be_bytes().to_vec(),
        }),
        Box::new(RawAttribute {
            typ: ATTR_ICE_CONTROLLING,
            length: 8,
            value: tie_breaker.to_be_bytes().to_vec(),
        }),
    ];
    if nominate {
        setters.push(Box::new(RawAttribute {
            typ: ATTR_USE_CANDIDATE,
            length: 0,
            value: Vec::new(),
        }));
    }
    setters.push(Box::new(MessageIntegrity::new_short_term_integrity(
        server_pwd.to_string(),
    )));
    setters.push(Box::new(FINGERPRINT));
    // Every attribute is well formed and the sizes are fixed: building cannot fail, and a
    // message that somehow did would be refused by the node, not crash us.
    let _ = m.build(&setters);
    (m.raw, transaction_id)
}

/// Whether `datagram` is the node's success answer to `transaction_id`: Binding success,
/// FINGERPRINT valid, MESSAGE-INTEGRITY under `server_pwd`.
pub fn is_success(datagram: &[u8], transaction_id: TransactionId, server_pwd: &str) -> bool {
    let mut m = Message::new();
    if m.unmarshal_binary(datagram).is_err() {
        return false;
    }
    m.typ == BINDING_SUCCESS
        && m.transaction_id == transaction_id
        && FINGERPRINT.check(&m).is_ok()
        && MessageIntegrity::new_short_term_integrity(server_pwd.to_string())
            .check(&mut m)
            .is_ok()
}

/// RFC 7983: a first byte of 0–3 is STUN.
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|&b| b <= 3)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use corecast_engine::Nanos;
    use corecast_webrtc::ice::{Credentials, IceConfig, IceLite, ViewerKey};

    use super::*;

    const NODE_UFRAG: &str = "node";
    const NODE_PWD: &str = "node-password-0123456789";

    fn agent() -> IceLite {
        let mut agent = IceLite::new(IceConfig::default());
        agent
            .add(
                ViewerKey(1),
                Credentials {
                    ufrag: NODE_UFRAG.into(),
                    pwd: NODE_PWD.into(),
                },
                "view",
                Nanos(0),
            )
            .unwrap();
        agent
    }

    #[test]
    fn the_node_agent_answers_our_nominating_check_and_we_accept_its_answer() {
        let mut agent = agent();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (req, tid) = binding_request(NODE_UFRAG, "view", NODE_PWD, 42, true);
        let mut response = Vec::new();
        agent
            .handle_stun(&req, from, Nanos(1), &mut response)
            .expect("the node's agent accepts the check");
        assert!(looks_like_stun(&response));
        assert!(is_success(&response, tid, NODE_PWD));
        assert_eq!(agent.selected(ViewerKey(1)), Some(from), "nominated");
        assert!(!is_success(&response, TransactionId::new(), NODE_PWD));
        assert!(!is_success(&response, tid, "another-password-000000"));
        let mut tampered = response.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(!is_success(&tampered, tid, NODE_PWD));
        assert!(!is_success(&[], tid, NODE_PWD));
    }

    #[test]
    fn a_check_under_the_wrong_password_is_refused_by_the_node() {
        let mut agent = agent();
        let (req, _) = binding_request(NODE_UFRAG, "view", "wrong-password-0123456789", 1, true);
        let mut response = Vec::new();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(agent
            .handle_stun(&req, from, Nanos(1), &mut response)
            .is_err());
        assert_eq!(agent.selected(ViewerKey(1)), None);
    }
}
