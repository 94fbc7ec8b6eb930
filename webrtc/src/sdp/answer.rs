//! The SDP answer corecast returns to a WHEP offer, written with the `sdp` crate: ICE-lite,
//! one BUNDLE of the accepted m-lines, send-only, DTLS passive, host candidates on the shard's
//! socket.

use std::net::{IpAddr, SocketAddr};

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use super::credentials::{Fingerprint, IceCredentials};
use super::negotiate::{AcceptedMedia, MediaAnswer, Negotiated, RejectedMedia};
use super::offer::MediaKind;

/// Everything an answer says beyond the negotiation.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// What [`negotiate`](super::negotiate) decided.
    pub negotiated: &'a Negotiated,
    /// corecast's ICE credentials for this viewer.
    pub local_ice: &'a IceCredentials,
    /// The fingerprint of corecast's DTLS certificate (`sha-256`).
    pub local_fingerprint: &'a Fingerprint,
    /// Host candidates: the shard socket's address as viewers reach it (IPv4 and IPv6). The
    /// first is also written on `m=` and `c=`.
    pub candidates: &'a [SocketAddr],
    /// The SSRC of the viewer's video track.
    pub video_ssrc: u32,
    /// The SSRC of its RFC 4588 retransmissions, when corecast sends them: the answer then
    /// accepts the offer's `rtx` payload type for the video codec (if it had one) and groups
    /// the two SSRCs (`a=ssrc-group:FID`).
    pub video_rtx_ssrc: Option<u32>,
    /// The SSRC of the viewer's audio track.
    pub audio_ssrc: u32,
    /// The RTCP CNAME of both tracks (one, so the browser syncs them).
    pub cname: &'a str,
    /// The MediaStream id both tracks belong to (`a=msid:<stream> <track>`).
    pub stream_id: &'a str,
    /// `o=`'s session id.
    pub session_id: u64,
    /// `o=`'s session version.
    pub session_version: u64,
}

/// RFC 8445 §5.1.2.1 host priority: type preference 126, local preference from 65535 down in
/// the order given, component 1.
fn host_priority(index: usize) -> u32 {
    let local = 65_535u32.saturating_sub(index as u32);
    (126 << 24) | (local << 8) | (256 - 1)
}

fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn connection(ip: IpAddr) -> ConnectionInformation {
    ConnectionInformation {
        network_type: "IN".into(),
        address_type: address_type(ip).into(),
        address: Some(Address {
            address: ip.to_string(),
            ttl: None,
            range: None,
        }),
    }
}

fn attr(key: &str, value: impl Into<String>) -> Attribute {
    Attribute::new(key.into(), Some(value.into()))
}

fn flag(key: &str) -> Attribute {
    Attribute::new(key.into(), None)
}

impl Answer<'_> {
    /// The answer's text (CRLF line endings).
    pub fn render(&self) -> String {
        let any_ip = self
            .candidates
            .first()
            .map(|c| c.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let bundle: Vec<&str> = self.negotiated.accepted().map(|m| m.mid.as_str()).collect();
        let mut attributes = vec![flag("ice-lite")];
        if !bundle.is_empty() {
            attributes.push(attr("group", format!("BUNDLE {}", bundle.join(" "))));
        }
        attributes.push(attr("msid-semantic", format!("WMS {}", self.stream_id)));
        let session = SessionDescription {
            version: 0,
            origin: Origin {
                username: "-".into(),
                session_id: self.session_id,
                session_version: self.session_version,
                network_type: "IN".into(),
                address_type: address_type(any_ip).into(),
                unicast_address: any_ip.to_string(),
            },
            session_name: "corecast".into(),
            session_information: None,
            uri: None,
            email_address: None,
            phone_number: None,
            connection_information: None,
            bandwidth: vec![],
            time_descriptions: vec![TimeDescription {
                timing: Timing {
                    start_time: 0,
                    stop_time: 0,
                },
                repeat_times: vec![],
            }],
            time_zones: vec![],
            encryption_key: None,
            attributes,
            media_descriptions: self
                .negotiated
                .media
                .iter()
                .map(|m| match m {
                    MediaAnswer::Accepted(a) => self.accepted(a, any_ip),
                    MediaAnswer::Rejected(r) => rejected(r, any_ip),
                })
                .collect(),
        };
        session.marshal()
    }

    fn accepted(&self, m: &AcceptedMedia, any_ip: IpAddr) -> MediaDescription {
        let port = self.candidates.first().map_or(9, |c| c.port());
        let pt = m.payload_type;
        let ssrc = if m.kind == MediaKind::Video {
            self.video_ssrc
        } else {
            self.audio_ssrc
        };
        let track = format!("{}-{}", self.stream_id, m.kind);
        let mut a = vec![
            attr("mid", m.mid.clone()),
            flag("sendonly"),
            flag("rtcp-mux"),
            attr("ice-ufrag", self.local_ice.ufrag.clone()),
            attr("ice-pwd", self.local_ice.pwd.clone()),
            attr("fingerprint", self.local_fingerprint.to_string()),
            attr("setup", "passive"),
        ];
        let rtpmap = match m.channels {
            Some(ch) => format!("{pt} {}/{}/{ch}", m.encoding_name, m.clock_rate),
            None => format!("{pt} {}/{}", m.encoding_name, m.clock_rate),
        };
        a.push(attr("rtpmap", rtpmap));
        if let Some(fmtp) = &m.fmtp {
            a.push(attr("fmtp", format!("{pt} {fmtp}")));
        }
        for fb in m.feedback.values() {
            a.push(attr("rtcp-fb", format!("{pt} {fb}")));
        }
        let mut formats = vec![pt.to_string()];
        let rtx = m
            .rtx_payload_type
            .zip(self.video_rtx_ssrc.filter(|_| m.kind == MediaKind::Video));
        if let Some((rtx_pt, _)) = rtx {
            formats.push(rtx_pt.to_string());
            a.push(attr("rtpmap", format!("{rtx_pt} rtx/{}", m.clock_rate)));
            a.push(attr("fmtp", format!("{rtx_pt} apt={pt}")));
        }
        a.push(attr("msid", format!("{} {track}", self.stream_id)));
        if let Some((_, rtx_ssrc)) = rtx {
            a.push(attr("ssrc-group", format!("FID {ssrc} {rtx_ssrc}")));
        }
        for s in std::iter::once(ssrc).chain(rtx.map(|(_, s)| s)) {
            a.push(attr("ssrc", format!("{s} cname:{}", self.cname)));
            a.push(attr("ssrc", format!("{s} msid:{} {track}", self.stream_id)));
        }
        for (i, c) in self.candidates.iter().enumerate() {
            a.push(attr(
                "candidate",
                format!(
                    "{} 1 udp {} {} {} typ host",
                    i + 1,
                    host_priority(i),
                    c.ip(),
                    c.port()
                ),
            ));
        }
        a.push(flag("end-of-candidates"));
        MediaDescription {
            media_name: MediaName {
                media: m.kind.to_string(),
                port: RangedPort {
                    value: port as isize,
                    range: None,
                },
                protos: vec!["UDP".into(), "TLS".into(), "RTP".into(), "SAVPF".into()],
                formats,
            },
            media_title: None,
            connection_information: Some(connection(any_ip)),
            bandwidth: vec![],
            encryption_key: None,
            attributes: a,
        }
    }
}

fn rejected(m: &RejectedMedia, any_ip: IpAddr) -> MediaDescription {
    let mut formats = m.formats.clone();
    if formats.is_empty() {
        // m= needs at least one format; RTP's 0 is as good as any for a refused line.
        formats.push("0".into());
    }
    MediaDescription {
        media_name: MediaName {
            media: m.kind.to_string(),
            port: RangedPort {
                value: 0,
                range: None,
            },
            protos: m.proto.split('/').map(str::to_owned).collect(),
            formats,
        },
        media_title: None,
        connection_information: Some(connection(any_ip)),
        bandwidth: vec![],
        encryption_key: None,
        attributes: m.mid.iter().map(|mid| attr("mid", mid.clone())).collect(),
    }
}
