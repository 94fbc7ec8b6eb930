//! What a node is started with: [`NodeConfig`], typed values read from `corecast serve`'s flags
//! ([`ServeArgs`], which stays the command line's type), and where its shards run
//! ([`Placement`]).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{PortRange, ServeArgs};
use crate::events::{HandlerConfig, JsonLinesConfig, ParseError, WebhookConfig};

/// Everything a node needs to start, in the types it uses them as.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address of the HTTP control API (`--http`); port 0 picks one.
    pub http: SocketAddr,
    /// Bearer token every /v1 request must carry (`--token`).
    pub token: Option<String>,
    /// Bearer token WHEP viewers present (`--viewer-token`).
    pub viewer_token: Option<String>,
    /// Host candidate address for WHEP answers (`--public-ip`).
    pub public_ip: Option<IpAddr>,
    /// A viewer without consent checks this long is removed (`--consent-timeout`).
    pub consent_timeout: Duration,
    /// The SRTP profiles viewers may get, most preferred first (`--srtp-profiles`).
    pub dtls: corecast_webrtc::dtls::ServerConfig,
    /// Name of this node in events and SDPs (`--node-name`).
    pub node_name: String,
    /// Address media is received and sent on (`--rtp-ip`).
    pub rtp_ip: IpAddr,
    /// Ingest ports for sources that do not ask for one (`--rtp-ports`).
    pub rtp_ports: PortRange,
    /// Where each shard runs.
    pub placement: Placement,
    /// Packets per send batch (`--batch`).
    pub batch: usize,
    /// Whether shards send with UDP GSO (`--gso`).
    pub gso: crate::config::GsoMode,
    /// Copies per GSO message at most (`--gso-segments`).
    pub gso_segments: usize,
    /// Packets each shard's receive queue holds (`--queue-depth`).
    pub queue_depth: usize,
    /// Receive buffer asked of the kernel for each ingest socket, in bytes (`--rcvbuf`).
    pub rcvbuf: usize,
    /// Send buffer asked of the kernel for each shard's socket, in bytes (`--sndbuf`).
    pub sndbuf: usize,
    /// Most subscribers the node accepts (`--max-subscribers`).
    pub max_subscribers: usize,
    /// Most sources the node accepts (`--max-sources`).
    pub max_sources: usize,
    /// What each shard keeps of a video source for resends (`--history-ms`,
    /// `--history-packets`); `None` with `--history-ms 0`.
    pub history: Option<corecast_engine::history::HistoryConfig>,
    /// How subscribers join sources that do not say (`--join`, `--replay-pace`).
    pub join: corecast_engine::JoinPolicy,
    /// The pace of replays of sources that ask for them (`--replay-pace`).
    pub replay_pace: u32,
    /// Least time between two keyframe requests to one source (`--pli-interval`).
    pub pli_interval: Duration,
    /// A switch not done after this long is cancelled (`--switch-timeout`).
    pub switch_timeout: Duration,
    /// How long an idle shard busy-polls before it parks (`--spin-us`).
    pub spin: Duration,
    /// Time between counter snapshots (`--stats-interval`).
    pub stats_interval: Duration,
    /// A source silent this long is idle and its sender unlatched (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Packets in sequence a new stream needs to replace a source's (`--probation`).
    pub probation: u32,
    /// Silence of the current stream before a new one replaces it (`--takeover-silence`).
    pub takeover_silence: Duration,
    /// Per-subscriber series in /metrics (`--metrics-per-subscriber`).
    pub metrics_per_subscriber: bool,
    /// Where events go (`--webhook`, `--events-jsonl`).
    pub event_handlers: Vec<HandlerConfig>,
}

impl NodeConfig {
    /// The configuration `args` describe, with the shards placed by [`Placement::choose`].
    pub fn from_args(args: &ServeArgs) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_args_placed(args, Placement::choose(args)?)
    }

    /// The configuration `args` describe, with the shards where `placement` puts them.
    pub fn from_args_placed(
        args: &ServeArgs,
        placement: Placement,
    ) -> Result<NodeConfig, ConfigError> {
        let ms = Duration::from_millis;
        if args.join == "replay" && args.history_ms == 0 {
            return Err(ConfigError::ReplayWithoutHistory);
        }
        Ok(NodeConfig {
            http: args.http,
            token: args.token.clone(),
            viewer_token: args.viewer_token.clone(),
            public_ip: args.public_ip,
            consent_timeout: ms(args.consent_timeout),
            dtls: {
                let profiles: Vec<_> = args.srtp_profiles.iter().map(|p| p.profile()).collect();
                corecast_webrtc::dtls::ServerConfig::new(&profiles)
                    .map_err(|e| ConfigError::SrtpProfiles(e.to_string()))?
            },
            node_name: args.node_name.clone(),
            rtp_ip: args.rtp_ip,
            rtp_ports: args.rtp_ports,
            placement,
            batch: args.batch as usize,
            gso: args.gso,
            gso_segments: args.gso_segments as usize,
            queue_depth: args.queue_depth as usize,
            rcvbuf: args.rcvbuf,
            sndbuf: args.sndbuf,
            max_subscribers: args.max_subscribers,
            max_sources: args.max_sources as usize,
            history: (args.history_ms > 0).then(|| corecast_engine::history::HistoryConfig {
                span: corecast_engine::Nanos::from_millis(args.history_ms),
                max_packets: args.history_packets as usize,
            }),
            join: match args.join.as_str() {
                "replay" => corecast_engine::JoinPolicy::Replay {
                    pace: args.replay_pace,
                },
                _ => corecast_engine::JoinPolicy::Keyframe,
            },
            replay_pace: args.replay_pace,
            pli_interval: ms(args.pli_interval),
            switch_timeout: ms(args.switch_timeout),
            spin: Duration::from_micros(args.spin_us),
            stats_interval: ms(args.stats_interval),
            idle_timeout: ms(args.idle_timeout),
            probation: args.probation,
            takeover_silence: ms(args.takeover_silence),
            metrics_per_subscriber: args.metrics_per_subscriber,
            event_handlers: event_handlers(args)?,
        })
    }
}

/// The event handlers named by `--webhook` and `--events-jsonl`.
fn event_handlers(args: &ServeArgs) -> Result<Vec<HandlerConfig>, ConfigError> {
    fn bad<'a>(flag: &'static str, value: &'a str) -> impl FnOnce(ParseError) -> ConfigError + 'a {
        move |error| ConfigError::EventHandler {
            flag,
            value: value.to_string(),
            error,
        }
    }
    let mut handlers = Vec::new();
    for w in &args.webhook {
        let config: WebhookConfig = w.parse().map_err(bad("--webhook", w))?;
        handlers.push(HandlerConfig::Webhook(config));
    }
    for j in &args.events_jsonl {
        let config: JsonLinesConfig = j.parse().map_err(bad("--events-jsonl", j))?;
        handlers.push(HandlerConfig::JsonLines(config));
    }
    Ok(handlers)
}

/// Why the flags do not make a configuration a node can start with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `--cores` names a core this process may not run on.
    CoreUnavailable { core: usize, available: Vec<usize> },
    /// `--shards 0`.
    NoShards,
    /// Pinning was asked for, but the cores this process may use cannot be read.
    CoresUnknown,
    /// More shards than a source's shard mask has bits.
    TooManyShards(usize),
    /// `--join replay` with `--history-ms 0`: nothing to replay from.
    ReplayWithoutHistory,
    /// `--srtp-profiles` lists none, or one twice (the reason).
    SrtpProfiles(String),
    /// An event handler's description (`flag value`) does not parse.
    EventHandler {
        flag: &'static str,
        value: String,
        error: ParseError,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::CoreUnavailable { core, available } => write!(
                f,
                "core {core} is not available to this process (available: {available:?})"
            ),
            ConfigError::NoShards => f.write_str("--shards must be at least 1"),
            ConfigError::ReplayWithoutHistory => {
                f.write_str("--join replay needs a history to replay: set --history-ms above 0")
            }
            ConfigError::CoresUnknown => {
                f.write_str("cannot read which cores this process may use; pass --no-pin")
            }
            ConfigError::TooManyShards(n) => {
                write!(f, "{n} shards requested; at most 64 are supported")
            }
            ConfigError::SrtpProfiles(reason) => write!(f, "--srtp-profiles: {reason}"),
            ConfigError::EventHandler { flag, value, error } => {
                write!(f, "{flag} {value}: {error}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where each shard runs, and how a shard thread pins itself there.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Core per shard, or `None` per shard when not pinning.
    pub cores: Vec<Option<usize>>,
    /// Pins the calling thread to a core: [`pin_current_thread`], unless a test puts a stand-in
    /// here to make a shard fail to pin (the real call cannot be made to fail on demand, since
    /// [`Placement::choose`] only picks cores the process may use).
    pub pin: fn(usize) -> io::Result<()>,
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        // core_affinity says only whether it worked; on Linux that is one sched_setaffinity
        // call, whose errno is the kernel's reason.
        Err(io::Error::last_os_error())
    }
}

impl Placement {
    /// One shard per `--cores` entry, or `--shards N` (default: the cores available to this
    /// process) spread over the available cores. Pinning is asked for unless `--no-pin`.
    pub fn choose(args: &ServeArgs) -> Result<Placement, ConfigError> {
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let cores: Vec<usize> = match (&args.cores, args.shards) {
            (Some(list), _) => {
                if !args.no_pin {
                    if let Some(&core) = list.0.iter().find(|c| !available.contains(c)) {
                        return Err(ConfigError::CoreUnavailable { core, available });
                    }
                }
                list.0.clone()
            }
            (None, n) => {
                let n = n
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                if n == 0 {
                    return Err(ConfigError::NoShards);
                }
                if available.is_empty() && !args.no_pin {
                    return Err(ConfigError::CoresUnknown);
                }
                (0..n)
                    .map(|i| {
                        available
                            .get(i % available.len().max(1))
                            .copied()
                            .unwrap_or(i)
                    })
                    .collect()
            }
        };
        if cores.len() > 64 {
            return Err(ConfigError::TooManyShards(cores.len()));
        }
        Ok(Placement {
            cores: cores
                .into_iter()
                .map(|c| (!args.no_pin).then_some(c))
                .collect(),
            pin: pin_current_thread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_serve;

    fn args(argv: &[&str]) -> ServeArgs {
        parse_serve(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_become_typed_values() {
        let config = NodeConfig::from_args(&args(&[
            "--no-pin",
            "--shards",
            "3",
            "--switch-timeout",
            "1500",
            "--spin-us",
            "40",
            "--queue-depth",
            "64",
            "--events-jsonl",
            "-",
        ]))
        .unwrap();
        assert_eq!(config.switch_timeout, Duration::from_millis(1500));
        assert_eq!(config.spin, Duration::from_micros(40));
        assert_eq!(config.pli_interval, Duration::from_millis(500));
        assert_eq!(config.queue_depth, 64);
        assert_eq!(config.placement.cores, [None, None, None]);
        assert_eq!(config.event_handlers.len(), 1);
        use corecast_srtp::Profile;
        assert_eq!(config.dtls.profiles(), &Profile::ALL);
        let config = NodeConfig::from_args(&args(&[
            "--no-pin",
            "--srtp-profiles",
            "aead-aes-256-gcm,aes-cm-128-hmac-sha1-80",
        ]))
        .unwrap();
        let order = [Profile::AeadAes256Gcm, Profile::Aes128CmHmacSha1_80];
        assert_eq!(config.dtls.profiles(), &order);
    }

    #[test]
    fn flags_a_node_cannot_start_with_say_which() {
        let e = NodeConfig::from_args(&args(&["--no-pin", "--shards", "0"])).unwrap_err();
        assert_eq!(e, ConfigError::NoShards);
        assert_eq!(e.to_string(), "--shards must be at least 1");
        let e = NodeConfig::from_args(&args(&["--no-pin", "--shards", "65"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "65 shards requested; at most 64 are supported"
        );
        let e = NodeConfig::from_args(&args(&["--no-pin", "--webhook", "ftp://x"])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::EventHandler { flag: "--webhook", value, .. } if value == "ftp://x"),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("--webhook ftp://x: "), "{e}");
        let twice = "aead-aes-128-gcm,aead-aes-256-gcm,aead-aes-128-gcm";
        let e = NodeConfig::from_args(&args(&["--no-pin", "--srtp-profiles", twice])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--srtp-profiles: SRTP profile AeadAes128Gcm is listed twice"
        );
        let unknown = parse_serve(&["--srtp-profiles".into(), "aes-256-ctr".into()]);
        assert!(unknown.is_err(), "an unknown profile name is refused");
    }
}
