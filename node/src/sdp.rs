//! The SDP of one subscriber (`GET /v1/subscribers/{id}/sdp`): what a plain-RTP receiver at the
//! subscriber's destination (ffmpeg/ffplay, VLC, GStreamer's `sdpdemux`) opens as is to play it.
//!
//! It describes the stream as the subscriber receives it, not as the source sends it: the
//! node's output payload type for the codec (fixed, so it holds across switches), the clock rate,
//! and for H.264/H.265 the parameter sets of the subscriber's current source known so far (the
//! ones its keyframes' preludes carry). Written with webrtc-rs's `sdp` crate, which issue 13's
//! WHEP answers will parse and write with too.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use corecast_engine::Codec;
use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

/// The subscriber's current source, as the SDP names it.
#[derive(Clone, Copy, Debug)]
pub struct SdpSource<'a> {
    pub id: u32,
    pub name: &'a str,
    /// H.264/H.265 parameter sets in decoding order ((VPS,) SPS, PPS); empty while none are
    /// known.
    pub parameter_sets: &'a [Vec<u8>],
}

/// Everything one subscriber's SDP says.
#[derive(Clone, Copy, Debug)]
pub struct SubscriberSdp<'a> {
    /// The node's `--node-name`.
    pub node: &'a str,
    /// `None` for the SDP of a subscriber not added yet (`GET /v1/sources/{id}/sdp?dest=`).
    pub subscriber: Option<u32>,
    /// Where the receiver listens: the SDP's `c=` and `m=`.
    pub dest: SocketAddr,
    /// Where the media comes from (the shard's socket): the `o=` address.
    pub media_from: SocketAddr,
    pub codec: Codec,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// `None` while the subscriber is detached (its source was deleted).
    pub source: Option<SdpSource<'a>>,
    /// The node answers generic NACKs (its shards keep histories): `a=rtcp-fb:PT nack`, which
    /// makes receivers that can (ffmpeg) ask for what they lost.
    pub nack: bool,
    pub generated: SystemTime,
}

impl SubscriberSdp<'_> {
    /// The SDP text, CRLF line endings.
    pub fn render(&self) -> String {
        let generated = self
            .generated
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let from = match self.source {
            Some(s) => format!("source {} ({})", s.id, s.name),
            None => "no source (its source was deleted; switch it to play again)".to_string(),
        };
        let (subscriber, session_id) = match self.subscriber {
            Some(id) => (format!("subscriber {id}"), u64::from(id)),
            // Not the id of any subscriber, so it cannot be mistaken for one's session.
            None => (
                format!("a subscriber at {} not added yet", self.dest),
                u64::from(u32::MAX) + 1 + self.source.map_or(0, |s| u64::from(s.id)),
            ),
        };
        let mut media = MediaDescription {
            media_name: MediaName {
                media: if self.codec.is_audio() {
                    "audio"
                } else {
                    "video"
                }
                .into(),
                port: RangedPort {
                    value: self.dest.port() as isize,
                    range: None,
                },
                protos: vec!["RTP".into(), "AVP".into()],
                formats: vec![self.payload_type.to_string()],
            },
            media_title: self.missing_parameter_sets(),
            ..Default::default()
        };
        let attr = |key: &str, value: Option<String>| Attribute::new(key.into(), value);
        media.attributes.push(attr(
            "rtpmap",
            Some(format!("{} {}", self.payload_type, self.encoding())),
        ));
        if let Some(fmtp) = self.fmtp() {
            media
                .attributes
                .push(attr("fmtp", Some(format!("{} {fmtp}", self.payload_type))));
        }
        // The node takes a subscriber's RTCP from its destination port (rtcp-mux) or the port
        // after it (RFC 3550 §11), where receivers without rtcp-mux, which plain-RTP players
        // are, send theirs. Port 65535 has no port after it: only rtcp-mux is left.
        match self.dest.port().checked_add(1) {
            Some(rtcp) => media.attributes.push(attr("rtcp", Some(rtcp.to_string()))),
            None => media.attributes.push(attr("rtcp-mux", None)),
        }
        // RFC 4585 feedback the node acts on: NACKs (with a history) and PLIs. Audio has no
        // keyframes to ask for.
        let pt = self.payload_type;
        if self.nack {
            media
                .attributes
                .push(attr("rtcp-fb", Some(format!("{pt} nack"))));
        }
        if !self.codec.is_audio() {
            media
                .attributes
                .push(attr("rtcp-fb", Some(format!("{pt} nack pli"))));
        }
        media.attributes.push(attr("recvonly", None));
        let description = SessionDescription {
            version: 0,
            origin: Origin {
                username: "-".into(),
                // RFC 4566 §5.2: unique per session, and a version that grows when it changes.
                session_id,
                session_version: generated.as_micros() as u64,
                network_type: "IN".into(),
                address_type: address_type(self.media_from.ip()).into(),
                unicast_address: self.media_from.ip().to_string(),
            },
            session_name: format!("corecast {subscriber}"),
            session_information: Some(format!(
                "node {}, {subscriber}, {from}, generated {}",
                self.node,
                httpdate::fmt_http_date(self.generated)
            )),
            connection_information: Some(ConnectionInformation {
                network_type: "IN".into(),
                address_type: address_type(self.dest.ip()).into(),
                address: Some(Address {
                    address: self.dest.ip().to_string(),
                    ttl: None,
                    range: None,
                }),
            }),
            time_descriptions: vec![TimeDescription {
                timing: Timing {
                    start_time: 0,
                    stop_time: 0,
                },
                repeat_times: Vec::new(),
            }],
            attributes: vec![attr(
                "tool",
                Some(format!("corecast {}", env!("CARGO_PKG_VERSION"))),
            )],
            media_descriptions: vec![media],
            ..Default::default()
        };
        description.marshal()
    }

    /// `encoding/clock[/channels]` for `a=rtpmap`.
    fn encoding(&self) -> String {
        let name = match self.codec {
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
            Codec::H265 => "H265",
            Codec::Av1 => "AV1",
            // RFC 7587 §7: always two channels in the rtpmap, whatever the stream carries.
            Codec::Opus => return format!("opus/{}/2", self.clock_rate),
        };
        format!("{name}/{}", self.clock_rate)
    }

    fn known_sets(&self) -> &[Vec<u8>] {
        let sets = self.source.map(|s| s.parameter_sets).unwrap_or_default();
        let complete = match self.codec {
            Codec::H264 => sets.len() == 2,
            Codec::H265 => sets.len() == 3,
            _ => false,
        };
        if complete && sets.iter().all(|unit| !unit.is_empty()) {
            sets
        } else {
            &[]
        }
    }

    /// `a=fmtp` parameters, where the codec has some the receiver needs.
    fn fmtp(&self) -> Option<String> {
        let b64 = |unit: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(unit);
        let sets = self.known_sets();
        match self.codec {
            Codec::H264 => {
                // Non-interleaved (RFC 6184 §6.3): single NAL units, STAP-A and FU-A, which is
                // what the node forwards and the prelude it adds is.
                let mut fmtp = "packetization-mode=1".to_string();
                if let [sps, pps] = sets {
                    // RFC 6184 §8.1: profile_idc, the constraint flags and level_idc, the three
                    // bytes after the SPS's NAL header.
                    if let Some(profile) = sps.get(1..4) {
                        fmtp += &format!(";profile-level-id={}", hex::encode(profile));
                    }
                    fmtp += &format!(";sprop-parameter-sets={},{}", b64(sps), b64(pps));
                }
                Some(fmtp)
            }
            Codec::H265 => match sets {
                [vps, sps, pps] => Some(format!(
                    "sprop-vps={};sprop-sps={};sprop-pps={}",
                    b64(vps),
                    b64(sps),
                    b64(pps)
                )),
                _ => None,
            },
            _ => None,
        }
    }

    /// The media-level `i=` for an H.264/H.265 stream whose parameter sets are not known yet.
    fn missing_parameter_sets(&self) -> Option<String> {
        let (codec, kinds) = match self.codec {
            Codec::H264 => ("H.264", "SPS/PPS"),
            Codec::H265 => ("H.265", "VPS/SPS/PPS"),
            _ => return None,
        };
        if !self.known_sets().is_empty() {
            return None;
        }
        Some(match self.source {
            Some(s) => format!(
                "no {codec} parameter sets ({kinds}) known yet for source {}: it has sent none \
                 in-band and none were given with it; players that need them in the SDP should \
                 fetch it again after the source's first keyframe",
                s.id
            ),
            None => format!("no {codec} parameter sets ({kinds}): no source"),
        })
    }
}

fn address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

#[cfg(test)]
mod tests;
