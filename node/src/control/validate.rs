//! Requests checked and parsed before anything changes: what comes out of here is typed and
//! known to be usable, so the code that changes the topology has nothing left to refuse but what
//! depends on the moment (a full queue, a port the kernel will not bind).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::{Codec, SourceId};
use corecast_signaling::api::{CreateChannel, CreateSource, CreateSubscriber};

use super::error::{Conflict, NodeError, What};
use super::topology::{ChannelEntry, ChannelId, SourceEntry};

/// A `CreateSource` whose every field can be used.
pub(super) struct SourceRequest {
    pub name: String,
    pub codec: Codec,
    pub clock_rate: u32,
    /// The port asked for, if any (not checked against the others yet: binding does that).
    pub port: Option<u16>,
    pub latch: bool,
    pub feedback: Option<SocketAddr>,
    pub parameter_sets: Option<ParameterSets>,
    pub payload_type: Option<u8>,
    pub rtx_payload_type: Option<u8>,
    /// `join`: `Some(true)` replay, `Some(false)` keyframe, `None` the node's default.
    pub replay: Option<bool>,
    /// An existing source of the same codec without a fallback of its own.
    pub fallback: Option<SourceId>,
}

/// A `CreateSubscriber` of a source the node has, to an address it can send to.
#[derive(Clone, Copy)]
pub(super) struct SubscriberRequest {
    pub source: SourceId,
    pub dest: SocketAddr,
}

/// A `CreateChannel` whose sources exist and are of the kind their slot takes.
pub(super) struct ChannelRequest {
    pub name: String,
    pub video: Option<SourceId>,
    pub audio: Option<SourceId>,
}

fn bad(message: String) -> NodeError {
    NodeError::BadRequest(message)
}

/// Checks `req` against itself and the existing `sources` (whose names it must not take).
/// `history`: the node keeps histories (`--history-ms` above 0), which `join: replay` needs.
pub(super) fn source(
    req: &CreateSource,
    sources: &BTreeMap<SourceId, SourceEntry>,
    history: bool,
) -> Result<SourceRequest, NodeError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(bad("`name` must be 1 to 128 characters".into()));
    }
    if sources.values().any(|s| s.name == name) {
        return Err(Conflict::SourceName(name.to_string()).into());
    }
    let codec = Codec::from_name(&req.codec).ok_or_else(|| {
        bad(format!(
            "unknown codec `{}`; use one of vp8, vp9, h264, h265, av1, opus",
            req.codec
        ))
    })?;
    let clock_rate = req.clock_rate.unwrap_or(codec.default_clock_rate());
    if !(1_000..=1_000_000).contains(&clock_rate) {
        return Err(bad(format!(
            "`clock_rate` {clock_rate} is outside 1000..=1000000"
        )));
    }
    let feedback = match &req.feedback {
        None => None,
        Some(text) => Some(
            text.parse::<SocketAddr>()
                .map_err(|_| bad(format!("`feedback` `{text}` is not an ip:port address")))?,
        ),
    };
    let parameter_sets = req
        .parameter_sets
        .as_deref()
        .map(|text| configured_parameter_sets(codec, text))
        .transpose()?;
    for (field, pt) in [
        ("payload_type", req.payload_type),
        ("rtx_payload_type", req.rtx_payload_type),
    ] {
        if let Some(pt) = pt.filter(|&pt| pt > 127) {
            return Err(bad(format!("`{field}` {pt} is outside 0..=127")));
        }
    }
    if req.payload_type.is_some() && req.payload_type == req.rtx_payload_type {
        return Err(bad(
            "`payload_type` and `rtx_payload_type` must differ".into()
        ));
    }
    let replay = match req.join.as_deref() {
        None => None,
        Some("keyframe") => Some(false),
        Some("replay") if !history => {
            return Err(bad(
                "`join` `replay` needs a history: the node runs with `--history-ms 0`".into(),
            ))
        }
        Some("replay") => Some(true),
        Some(other) => {
            return Err(bad(format!(
                "`join` `{other}` is not one of keyframe, replay"
            )))
        }
    };
    let fallback = req
        .fallback
        .map(|id| fallback(SourceId(id), codec, sources))
        .transpose()?;
    Ok(SourceRequest {
        name: name.to_string(),
        replay,
        fallback,
        codec,
        clock_rate,
        port: req.port,
        latch: req.latch.unwrap_or(true),
        feedback,
        parameter_sets,
        payload_type: req.payload_type,
        rtx_payload_type: req.rtx_payload_type,
    })
}

/// A source's `fallback`: one that exists, of the same codec, that does not fail over itself
/// (a chain would move subscribers twice, and a cycle forever).
fn fallback(
    id: SourceId,
    codec: Codec,
    sources: &BTreeMap<SourceId, SourceEntry>,
) -> Result<SourceId, NodeError> {
    let entry = sources
        .get(&id)
        .ok_or_else(|| bad(format!("`fallback` {}: there is no such source", id.0)))?;
    if entry.codec != codec {
        return Err(bad(format!(
            "`fallback` {} is {}, not {codec}: subscribers can only be switched to a source \
             of their codec",
            id.0, entry.codec
        )));
    }
    if let Some((of_its_own, _)) = entry.fallback {
        return Err(bad(format!(
            "`fallback` {} has a fallback of its own ({}); fallbacks do not chain",
            id.0, of_its_own.0
        )));
    }
    Ok(id)
}

/// Checks each of `reqs` against the `sources` it names; an error names the entry of a batch.
pub(super) fn subscribers(
    reqs: &[CreateSubscriber],
    sources: &BTreeMap<SourceId, SourceEntry>,
) -> Result<Vec<SubscriberRequest>, NodeError> {
    reqs.iter()
        .enumerate()
        .map(|(i, req)| subscriber(req, sources).map_err(|e| e.in_entry(i, reqs.len())))
        .collect()
}

fn subscriber(
    req: &CreateSubscriber,
    sources: &BTreeMap<SourceId, SourceEntry>,
) -> Result<SubscriberRequest, NodeError> {
    let source = SourceId(req.source);
    if !sources.contains_key(&source) {
        return Err(NodeError::NotFound(What::Source(source)));
    }
    let dest: SocketAddr = req
        .dest
        .parse()
        .map_err(|_| bad(format!("`dest` `{}` is not an ip:port address", req.dest)))?;
    if dest.port() == 0 || dest.ip().is_unspecified() {
        return Err(bad(format!(
            "`dest` `{dest}` needs a real address and a non-zero port"
        )));
    }
    Ok(SubscriberRequest { source, dest })
}

/// Checks `req` against the `sources` it names and the existing `channels` (whose names it must
/// not take). An unknown source is `404` as for a subscriber; each refusal names its field.
pub(super) fn channel(
    req: &CreateChannel,
    sources: &BTreeMap<SourceId, SourceEntry>,
    channels: &BTreeMap<ChannelId, ChannelEntry>,
) -> Result<ChannelRequest, NodeError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(bad("`name` must be 1 to 128 characters".into()));
    }
    if req.video.is_none() && req.audio.is_none() {
        return Err(bad(
            "a channel needs `video`, `audio` or both: the ids of its sources".into(),
        ));
    }
    if channels.values().any(|c| c.name == name) {
        return Err(Conflict::ChannelName(name.to_string())
            .into_error()
            .in_field("name"));
    }
    let slot = |field: &'static str, id: Option<u32>, audio: bool| {
        let Some(id) = id.map(SourceId) else {
            return Ok(None);
        };
        let entry = sources
            .get(&id)
            .ok_or(NodeError::NotFound(What::Source(id)).in_field(field))?;
        if entry.codec.is_audio() != audio {
            let wanted = if audio { "audio" } else { "video" };
            return Err(Conflict::TrackKind {
                source: id,
                is: entry.codec,
                wanted,
            }
            .into_error()
            .in_field(field));
        }
        Ok(Some(id))
    };
    Ok(ChannelRequest {
        name: name.to_string(),
        video: slot("video", req.video, false)?,
        audio: slot("audio", req.audio, true)?,
    })
}

/// Why configured parameter sets (`CreateSource::parameter_sets`, `check --parameter-sets`)
/// cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSetsError {
    /// What is wrong, naming the unit.
    pub message: String,
}

impl std::fmt::Display for ParameterSetsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParameterSetsError {}

impl From<ParameterSetsError> for NodeError {
    fn from(e: ParameterSetsError) -> NodeError {
        NodeError::BadRequest(e.message)
    }
}

/// Parse `CreateSource::parameter_sets`: base64 NAL units separated by commas, checked to be a
/// complete set for `codec`. Public for the fuzz target
/// `fuzz/fuzz_targets/api_json.rs`.
pub fn configured_parameter_sets(
    codec: Codec,
    text: &str,
) -> Result<ParameterSets, ParameterSetsError> {
    let bad = |message| ParameterSetsError { message };
    let units =
        corecast_signaling::api::parameter_set_units(text).map_err(|e| bad(e.to_string()))?;
    let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
    ParameterSets::configured(codec, &refs).map_err(|e| bad(format!("`parameter_sets`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp8() -> CreateSource {
        CreateSource {
            name: "cam".into(),
            codec: "vp8".into(),
            ..CreateSource::default()
        }
    }

    fn refusal(req: CreateSource) -> String {
        match source(&req, &BTreeMap::new(), true) {
            Err(NodeError::BadRequest(message)) => message,
            Err(other) => panic!("not a bad request: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_source_request_is_refused_for_its_first_bad_field() {
        let rows: [(CreateSource, &str); 6] = [
            (
                CreateSource {
                    name: "  ".into(),
                    ..vp8()
                },
                "`name` must be 1 to 128 characters",
            ),
            (
                CreateSource {
                    codec: "mjpeg".into(),
                    ..vp8()
                },
                "unknown codec `mjpeg`",
            ),
            (
                CreateSource {
                    clock_rate: Some(999),
                    ..vp8()
                },
                "`clock_rate` 999 is outside 1000..=1000000",
            ),
            (
                CreateSource {
                    feedback: Some("here".into()),
                    ..vp8()
                },
                "`feedback` `here` is not an ip:port address",
            ),
            (
                CreateSource {
                    rtx_payload_type: Some(128),
                    join: None,
                    payload_type: Some(200),
                    ..vp8()
                },
                "`payload_type` 200 is outside 0..=127",
            ),
            (
                CreateSource {
                    payload_type: Some(97),
                    rtx_payload_type: Some(97),
                    join: None,
                    ..vp8()
                },
                "`payload_type` and `rtx_payload_type` must differ",
            ),
        ];
        for (req, expected) in rows {
            let message = refusal(req);
            assert!(message.starts_with(expected), "{message}");
        }
    }

    #[test]
    fn a_valid_source_request_comes_out_typed_with_its_defaults() {
        let req = source(
            &CreateSource {
                name: " cam ".into(),
                feedback: Some("127.0.0.1:5004".into()),
                ..vp8()
            },
            &BTreeMap::new(),
            true,
        )
        .unwrap();
        assert_eq!(req.name, "cam");
        assert_eq!(
            (req.codec, req.clock_rate, req.latch),
            (Codec::Vp8, 90_000, true)
        );
        assert_eq!(req.feedback, Some("127.0.0.1:5004".parse().unwrap()));
    }

    #[test]
    fn a_subscriber_batch_names_the_entry_it_refuses() {
        let reqs = [
            CreateSubscriber {
                source: 1,
                dest: "127.0.0.1:6000".into(),
            },
            CreateSubscriber {
                source: 1,
                dest: "127.0.0.1:6002".into(),
            },
        ];
        // No source 1: the first entry is refused, and says so.
        let e = subscribers(&reqs, &BTreeMap::new()).err().unwrap();
        assert_eq!(e.to_string(), "entry 0: no source 1");
        // Alone, it is not an entry of anything.
        let e = subscribers(&reqs[..1], &BTreeMap::new()).err().unwrap();
        assert_eq!(e.to_string(), "no source 1");
    }
}
