//! What a viewer needs from the node's SDP answer, read with the `sdp` crate: the host
//! candidate to send STUN and DTLS to, the node's ICE credentials, its certificate fingerprint
//! and the SSRC the media will carry.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use corecast_webrtc::dtls::Fingerprint;
use corecast_webrtc::sdp::Candidate;
use sdp::description::session::SessionDescription;

/// The parts of an answer a load-generator viewer uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAnswer {
    /// The first UDP host candidate with an IP address.
    pub candidate: SocketAddr,
    /// The node's ICE ufrag (the first half of our STUN USERNAME).
    pub ufrag: String,
    /// The node's ICE password (our checks' MESSAGE-INTEGRITY key).
    pub pwd: String,
    /// What the node's DTLS certificate must hash to.
    pub fingerprint: Fingerprint,
    /// `a=ssrc` of the accepted m-line.
    pub ssrc: u32,
    /// The accepted m-line's payload type.
    pub payload_type: u8,
}

/// A media-level attribute, else the session-level one.
fn attribute<'a>(
    session: &'a SessionDescription,
    media: &'a sdp::description::media::MediaDescription,
    key: &str,
) -> Option<&'a str> {
    media
        .attribute(key)
        .flatten()
        .or_else(|| session.attribute(key).map(String::as_str))
}

/// Read `text`; the error names what is missing.
pub fn parse_answer(text: &str) -> Result<ParsedAnswer, String> {
    let session = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| format!("the answer is not SDP: {e}"))?;
    let media = session
        .media_descriptions
        .iter()
        .find(|m| m.media_name.port.value != 0)
        .ok_or("the answer accepts no m-line")?;
    let ufrag = attribute(&session, media, "ice-ufrag").ok_or("no a=ice-ufrag")?;
    let pwd = attribute(&session, media, "ice-pwd").ok_or("no a=ice-pwd")?;
    let fingerprint = attribute(&session, media, "fingerprint").ok_or("no a=fingerprint")?;
    let (hash, value) = fingerprint
        .split_once(' ')
        .ok_or("a=fingerprint has no hash name")?;
    let fingerprint = Fingerprint::parse(hash, value)
        .map_err(|e| format!("a=fingerprint is not a sha-256 fingerprint: {e:?}"))?;
    let candidate = media
        .attributes
        .iter()
        .filter(|a| a.key == "candidate")
        .filter_map(|a| Candidate::parse(a.value.as_deref()?))
        .filter(|c| c.transport == "udp" && c.component == 1)
        .find_map(|c| Some(SocketAddr::new(c.ip()?, c.port)))
        .ok_or("no UDP host candidate with an IP address")?;
    let ssrc = media
        .attributes
        .iter()
        .filter(|a| a.key == "ssrc")
        .find_map(|a| a.value.as_deref()?.split(' ').next()?.parse::<u32>().ok())
        .ok_or("no a=ssrc")?;
    let payload_type = media
        .media_name
        .formats
        .first()
        .and_then(|f| f.parse::<u8>().ok())
        .ok_or("the m-line has no payload type")?;
    Ok(ParsedAnswer {
        candidate: unmap(candidate),
        ufrag: ufrag.to_string(),
        pwd: pwd.to_string(),
        fingerprint,
        ssrc,
        payload_type,
    })
}

/// An IPv4-mapped IPv6 candidate as the IPv4 address our sockets use.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use corecast_engine::Codec;
    use corecast_webrtc::dtls::Certificate;
    use corecast_webrtc::sdp::{self as wsdp, Answer, IceCredentials, Offer, Wanted, WantedVideo};

    use super::*;
    use crate::whep::offer::{build_offer, ViewerIce};

    /// The answer the node's own writer gives to our offer.
    fn node_answer(node_fingerprint: &Fingerprint) -> String {
        let cert = Certificate::generate().unwrap();
        let offer = build_offer(Codec::Vp8, &ViewerIce::random(), &cert.fingerprint());
        let offer = Offer::parse(&offer).unwrap();
        let negotiated = wsdp::negotiate(
            &offer,
            &Wanted {
                video: Some(WantedVideo {
                    codec: Codec::Vp8,
                    h264: None,
                }),
                audio: false,
            },
        )
        .unwrap();
        Answer {
            negotiated: &negotiated,
            local_ice: &IceCredentials {
                ufrag: "node".into(),
                pwd: "node-password-0123456789".into(),
            },
            local_fingerprint: &wsdp::Fingerprint::sha256(*node_fingerprint.as_bytes()),
            candidates: &["127.0.0.1:40123".parse().unwrap()],
            video_ssrc: 0xdead_beef,
            video_rtx_ssrc: None,
            audio_ssrc: 7,
            cname: "corecast-1",
            stream_id: "corecast-1",
            session_id: 1,
            session_version: 1,
        }
        .render()
    }

    #[test]
    fn reads_what_the_node_writes() {
        let node_cert = Certificate::generate().unwrap();
        let text = node_answer(&node_cert.fingerprint());
        let a = parse_answer(&text).expect("our parser reads the node's answer");
        assert_eq!(a.candidate, "127.0.0.1:40123".parse().unwrap());
        assert_eq!(a.ufrag, "node");
        assert_eq!(a.pwd, "node-password-0123456789");
        assert_eq!(a.fingerprint, node_cert.fingerprint());
        assert_eq!(a.ssrc, 0xdead_beef);
        assert_eq!(a.payload_type, 96);
    }

    #[test]
    fn a_missing_part_is_named_not_guessed() {
        let node_cert = Certificate::generate().unwrap();
        let text = node_answer(&node_cert.fingerprint());
        for (line, named) in [
            ("a=ice-pwd:", "ice-pwd"),
            ("a=fingerprint:", "fingerprint"),
            ("a=candidate:", "candidate"),
            ("a=ssrc:", "ssrc"),
        ] {
            let cut: String = text
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(line))
                .collect();
            let err = parse_answer(&cut).unwrap_err();
            assert!(err.contains(named), "{line}: {err}");
        }
        assert!(parse_answer("not sdp at all").is_err());
        assert!(parse_answer("").is_err());
    }
}
