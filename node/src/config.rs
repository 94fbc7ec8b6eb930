//! `corecast serve` configuration: every flag also reads an environment variable (`CORECAST_` +
//! the flag's name) and a TOML file given with `--config`, whose keys are the flag names. The
//! command line wins over the environment, which wins over the file, which wins over defaults.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

/// `--rtp-ports`' type, shared with `corecast demo` (which cannot depend on this library).
pub use corecast_udp::PortRange;

/// A list of CPU core ids, written like `0,2,4-7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

impl FromStr for CoreList {
    type Err = String;

    fn from_str(s: &str) -> Result<CoreList, String> {
        let mut cores = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = |p: &str| {
                p.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("`{p}` is not a core id"))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (id(a)?, id(b)?);
                    if a > b {
                        return Err(format!("core range {a}-{b} is empty"));
                    }
                    cores.extend(a..=b);
                }
                None => cores.push(id(part)?),
            }
        }
        if cores.is_empty() {
            return Err("the core list is empty".into());
        }
        let mut sorted = cores.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != cores.len() {
            return Err(format!("core list `{s}` names a core twice"));
        }
        Ok(CoreList(cores))
    }
}

impl fmt::Display for CoreList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&ids.join(","))
    }
}

/// How `serve` writes its logs (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, for a person reading a terminal or a file.
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// The value as `--log-format` takes it (`text`, `json`).
impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self
            .to_possible_value()
            .expect("LogFormat has no skipped variants");
        f.write_str(value.get_name())
    }
}

/// An SRTP protection profile, as `--srtp-profiles` names it (RFC 5764 and RFC 7714's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SrtpProfileName {
    /// AEAD_AES_128_GCM: AES-128-GCM, a 16-octet tag.
    #[value(name = "aead-aes-128-gcm")]
    AeadAes128Gcm,
    /// AEAD_AES_256_GCM: AES-256-GCM, a 16-octet tag.
    #[value(name = "aead-aes-256-gcm")]
    AeadAes256Gcm,
    /// SRTP_AES128_CM_HMAC_SHA1_80: AES-128 counter mode, an 80-bit HMAC-SHA1 tag.
    #[value(name = "aes-cm-128-hmac-sha1-80")]
    Aes128CmHmacSha1_80,
}

impl SrtpProfileName {
    /// The profile this names.
    pub fn profile(self) -> corecast_srtp::Profile {
        match self {
            SrtpProfileName::AeadAes128Gcm => corecast_srtp::Profile::AeadAes128Gcm,
            SrtpProfileName::AeadAes256Gcm => corecast_srtp::Profile::AeadAes256Gcm,
            SrtpProfileName::Aes128CmHmacSha1_80 => corecast_srtp::Profile::Aes128CmHmacSha1_80,
        }
    }
}

/// Whether shards send a subscriber's copies of a run as one UDP GSO message (`--gso`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GsoMode {
    /// Where each shard socket takes GSO; where one does not, that shard sends one datagram
    /// per copy, with a warning that says why.
    Auto,
    /// Always: a shard socket that does not take it fails the start.
    On,
    /// Never: one datagram per copy, one packet at a time.
    Off,
}

/// The value as `--gso` takes it (`auto`, `on`, `off`).
impl fmt::Display for GsoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self
            .to_possible_value()
            .expect("GsoMode has no skipped variants");
        f.write_str(value.get_name())
    }
}

/// Flags of `corecast serve`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys are the flag names, e.g. `rtp-ports`).
    #[arg(long, env = "CORECAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP control API.
    #[arg(long, env = "CORECAST_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Address media is received and sent on.
    #[arg(long, env = "CORECAST_RTP_IP", default_value = "127.0.0.1")]
    pub rtp_ip: IpAddr,
    /// Ingest ports given to sources that do not ask for one.
    #[arg(long, env = "CORECAST_RTP_PORTS", default_value = "40000-40999")]
    pub rtp_ports: PortRange,
    /// Number of shards (worker threads); default: one per core available to the process.
    #[arg(long, env = "CORECAST_SHARDS", conflicts_with = "cores")]
    pub shards: Option<usize>,
    /// Cores to run shards on, one shard per core (e.g. `0,2-5`).
    #[arg(long, env = "CORECAST_CORES")]
    pub cores: Option<CoreList>,
    /// Do not pin shard threads to cores.
    #[arg(long, env = "CORECAST_NO_PIN")]
    pub no_pin: bool,
    /// Packets per send batch (one sendmmsg).
    #[arg(long, env = "CORECAST_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=1024))]
    pub batch: u32,
    /// Send each subscriber's copies of a run of packets (what a source sent back to back and
    /// the shard's queue holds together) as one UDP GSO message: one trip into the kernel per
    /// subscriber and run instead of one per copy.
    #[arg(long, env = "CORECAST_GSO", value_enum, default_value = "auto")]
    pub gso: GsoMode,
    /// Copies in one GSO message at most (the packets of a run); the kernel takes up to 64.
    #[arg(long, env = "CORECAST_GSO_SEGMENTS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub gso_segments: u32,
    /// Packets each shard's receive queue holds; when full, packets are dropped and counted.
    #[arg(long, env = "CORECAST_QUEUE_DEPTH", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub queue_depth: u32,
    /// Receive buffer asked of the kernel for each ingest socket and each shard socket (which
    /// subscribers' RTCP and viewers' STUN and DTLS reach), in bytes.
    #[arg(long, env = "CORECAST_RCVBUF", default_value_t = 4 << 20)]
    pub rcvbuf: usize,
    /// Send buffer asked of the kernel for each shard's socket, in bytes.
    #[arg(long, env = "CORECAST_SNDBUF", default_value_t = 4 << 20)]
    pub sndbuf: usize,
    /// Bearer token every /v1 request must carry.
    #[arg(long, env = "CORECAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Bearer token WHEP viewers present (`POST /v1/channels/{id}/whep` and their own
    /// resource): lets viewers in without the admin `--token`. Unset: viewers need no token.
    #[arg(long, env = "CORECAST_VIEWER_TOKEN", hide_env_values = true)]
    pub viewer_token: Option<String>,
    /// Address WHEP answers give viewers as the host candidate, when the shard sockets' own
    /// (`--rtp-ip`) is not one they can reach (behind NAT, or bound to every address).
    #[arg(long, env = "CORECAST_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// SRTP protection profiles WebRTC viewers may get, most preferred first: the node's DTLS
    /// server picks the first one the viewer offers (browsers offer all three). AES-128-GCM
    /// costs the shard least per copy; leave out `aes-cm-128-hmac-sha1-80` to refuse viewers
    /// that offer nothing better.
    #[arg(
        long,
        env = "CORECAST_SRTP_PROFILES",
        value_delimiter = ',',
        default_value = "aead-aes-128-gcm,aead-aes-256-gcm,aes-cm-128-hmac-sha1-80"
    )]
    pub srtp_profiles: Vec<SrtpProfileName>,
    /// A WebRTC viewer whose STUN consent checks stop for this many milliseconds is removed
    /// (RFC 7675 says 30 s); one that never passes a check in that time too.
    #[arg(long, env = "CORECAST_CONSENT_TIMEOUT", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    pub consent_timeout: u64,
    /// How long each shard keeps the packets it forwarded, to resend what subscribers NACK, in
    /// milliseconds (audio: half as long); 0 keeps nothing and answers no NACK.
    #[arg(long, env = "CORECAST_HISTORY_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=30_000))]
    pub history_ms: u64,
    /// Most packets kept per source (each shard's history of it points at the same pool
    /// slots); the packet pool is sized for `--max-sources` histories this long.
    #[arg(long, env = "CORECAST_HISTORY_PACKETS", default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(16..=65_536))]
    pub history_packets: u64,
    /// How a subscriber that joins a video source (or switches to it) starts, where the source
    /// does not say (`join` in `POST /v1/sources`): `keyframe` waits for the source's next
    /// keyframe (asked for); `replay` starts at once from the history (its newest keyframe
    /// on, so `--history-ms` must span a GOP), sent `--replay-pace` times faster than real time
    /// with timestamps compressed as much, until it reaches live.
    #[arg(long, env = "CORECAST_JOIN", default_value = "keyframe", value_parser = ["keyframe", "replay"])]
    pub join: String,
    /// How many times faster than real time a replay is sent (`--join replay`).
    #[arg(long, env = "CORECAST_REPLAY_PACE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=16))]
    pub replay_pace: u32,
    /// Most sources the node accepts.
    #[arg(long, env = "CORECAST_MAX_SOURCES", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4_096))]
    pub max_sources: u64,
    /// Most subscribers the node accepts (WHEP viewers included).
    #[arg(long, env = "CORECAST_MAX_SUBSCRIBERS", default_value_t = 100_000)]
    pub max_subscribers: usize,
    /// Least time between two keyframe requests to one source, in milliseconds.
    #[arg(long, env = "CORECAST_PLI_INTERVAL", default_value_t = 500)]
    pub pli_interval: u64,
    /// A switch not done after this many milliseconds is cancelled.
    #[arg(long, env = "CORECAST_SWITCH_TIMEOUT", default_value_t = 5000)]
    pub switch_timeout: u64,
    /// Microseconds an idle shard busy-polls before it parks (lower latency, more CPU).
    #[arg(long, env = "CORECAST_SPIN_US", default_value_t = 0)]
    pub spin_us: u64,
    /// Log lines as plain text or as JSON objects (colours only when stderr is a terminal).
    #[arg(long, env = "CORECAST_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Milliseconds between counter snapshots (shards to the telemetry thread, `stats` events).
    #[arg(long, env = "CORECAST_STATS_INTERVAL", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub stats_interval: u64,
    /// A source with no packets for this many milliseconds is idle (`source.idle`), and its
    /// latched sender is released, so a sender restarting from a new address is taken.
    #[arg(long, env = "CORECAST_IDLE_TIMEOUT", default_value_t = 2000)]
    pub idle_timeout: u64,
    /// Packets in sequence a new stream (another SSRC, or a jump in sequence numbers) must send
    /// on a source's port before it can replace the source's stream (RFC 3550's probation).
    #[arg(long, env = "CORECAST_PROBATION", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub probation: u32,
    /// Milliseconds the source's stream must have been silent before a new one replaces it: a
    /// sender that restarts stops its old stream, a multiplexed one (RTX, FEC) never does. The
    /// new stream's packets are held meanwhile and forwarded once it takes over.
    #[arg(long, env = "CORECAST_TAKEOVER_SILENCE", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub takeover_silence: u64,
    /// Export per-subscriber series in /metrics (one series per subscriber: mind cardinality).
    #[arg(long, env = "CORECAST_METRICS_PER_SUBSCRIBER")]
    pub metrics_per_subscriber: bool,
    /// Name of this node in events.
    #[arg(long, env = "CORECAST_NODE_NAME", default_value = "corecast")]
    pub node_name: String,
    /// Deliver events to a webhook: `URL[;types=source.*,switch.*][;secret=S][;batch=N]
    /// [;batch-ms=T][;retries=N][;backoff-ms=T][;queue=N][;queue-bytes=N][;timeout-ms=T]`.
    /// Repeatable.
    #[arg(long, env = "CORECAST_WEBHOOK", value_delimiter = '|')]
    pub webhook: Vec<String>,
    /// Write events as JSON lines to a file, or `-` for stdout:
    /// `PATH[;types=...][;queue=N][;queue-bytes=N]`. Repeatable.
    #[arg(long, env = "CORECAST_EVENTS_JSONL", value_delimiter = '|')]
    pub events_jsonl: Vec<String>,
}

/// Why [`parse_serve`] returned no settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeArgsError {
    /// `--help` was asked for: the help text, which belongs on stdout (exit status 0).
    Help(String),
    /// The settings are wrong: what is wrong, for stderr (exit status 2).
    Invalid(String),
}

impl fmt::Display for ServeArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeArgsError::Help(text) | ServeArgsError::Invalid(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for ServeArgsError {}

/// Parses `serve` flags with the environment and, if named, a TOML file. `argv` holds the flags
/// only (not the program or subcommand name).
pub fn parse_serve(argv: &[String]) -> Result<ServeArgs, ServeArgsError> {
    #[derive(Parser)]
    #[command(name = "corecast serve", args_override_self = true)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }
    let parse = |argv: &[String]| -> Result<ServeArgs, ServeArgsError> {
        let cmd = Wrapper::command();
        let matches = cmd
            .try_get_matches_from(
                std::iter::once("corecast serve".to_string()).chain(argv.iter().cloned()),
            )
            .map_err(|e| match e.kind() {
                clap::error::ErrorKind::DisplayHelp => ServeArgsError::Help(e.to_string()),
                _ => ServeArgsError::Invalid(e.to_string()),
            })?;
        Wrapper::from_arg_matches(&matches)
            .map(|w| w.args)
            .map_err(|e| ServeArgsError::Invalid(e.to_string()))
    };
    let first = parse(argv)?;
    let Some(path) = first.config.clone() else {
        return Ok(first);
    };
    let invalid = ServeArgsError::Invalid;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(format!("cannot read config file {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| invalid(format!("config file {}: {e}", path.display())))?;
    let known: Vec<String> = Wrapper::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if !known.contains(&flag) || flag == "config" {
            return Err(invalid(format!(
                "config file {}: unknown setting `{key}` (settings are the flag names of `corecast serve --help`)",
                path.display()
            )));
        }
        // The environment wins over the file.
        let env = format!("CORECAST_{}", flag.replace('-', "_").to_uppercase());
        if std::env::var_os(&env).is_some() {
            continue;
        }
        match value {
            toml::Value::Boolean(true) => from_file.push(format!("--{flag}")),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => from_file.extend([format!("--{flag}"), s.clone()]),
            toml::Value::Integer(i) => from_file.extend([format!("--{flag}"), i.to_string()]),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => {
                for item in items {
                    let text = item.as_str().expect("checked to be strings");
                    from_file.extend([format!("--{flag}"), text.to_string()]);
                }
            }
            other => {
                return Err(invalid(format!(
                    "config file {}: `{key}` must be a string, integer or boolean, not {}",
                    path.display(),
                    other.type_str()
                )))
            }
        }
    }
    // File settings first, so the command line given after them overrides them.
    from_file.extend(argv.iter().cloned());
    parse(&from_file).map_err(|e| match e {
        ServeArgsError::Invalid(e) => {
            invalid(format!("{e}(with settings from {})", path.display()))
        }
        help => help,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let a = parse_serve(&[]).unwrap();
        assert_eq!(a.http, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            a.rtp_ports,
            PortRange {
                lo: 40000,
                hi: 40999
            }
        );
        assert_eq!((a.pli_interval, a.switch_timeout, a.batch), (500, 5000, 64));
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!((a.stats_interval, a.idle_timeout), (1000, 2000));
        assert!(a.webhook.is_empty() && !a.metrics_per_subscriber);
    }

    #[test]
    fn repeated_settings_come_from_flags_or_a_toml_array() {
        let a = parse_serve(&args(
            "--webhook http://a/x --webhook http://b/y;types=switch.*",
        ))
        .unwrap();
        assert_eq!(a.webhook, vec!["http://a/x", "http://b/y;types=switch.*"]);
        let dir = std::env::temp_dir().join(format!("corecast-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(&file, "webhook = [\"http://a/x\", \"http://b/y\"]\n").unwrap();
        let a = parse_serve(&args(&format!("--config {}", file.display()))).unwrap();
        assert_eq!(a.webhook.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let e = parse_serve(&args("--rtp-ports 5000-4000"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse_serve(&args("--cores 1,1")).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        assert!(parse_serve(&args("--shards 2 --cores 0,1")).is_err());
        assert!(parse_serve(&args("--batch 0")).is_err());
    }

    #[test]
    fn config_file_sets_values_the_command_line_overrides() {
        let dir = std::env::temp_dir().join(format!("corecast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(
            &file,
            "rtp-ports = \"50000-50100\"\npli_interval = 250\nno-pin = true\nbatch = 32\n",
        )
        .unwrap();
        let f = file.display().to_string();
        let a = parse_serve(&args(&format!("--config {f} --batch 16"))).unwrap();
        assert_eq!(
            a.rtp_ports,
            PortRange {
                lo: 50000,
                hi: 50100
            }
        );
        assert_eq!(a.pli_interval, 250);
        assert!(a.no_pin);
        assert_eq!(a.batch, 16, "command line wins");

        std::fs::write(&file, "rtp-portz = \"1-2\"\n").unwrap();
        let e = parse_serve(&args(&format!("--config {f}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown setting `rtp-portz`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_is_a_help_result_naming_every_flag_with_a_description() {
        let Err(ServeArgsError::Help(text)) = parse_serve(&args("--help")) else {
            panic!("--help is not reported as help");
        };
        assert!(text.contains("--log-format"), "{text}");
        assert!(matches!(
            parse_serve(&args("--no-such-flag")),
            Err(ServeArgsError::Invalid(_))
        ));

        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        let undescribed: Vec<String> = Wrapper::command()
            .get_arguments()
            .filter(|a| a.get_help().is_none_or(|h| h.to_string().trim().is_empty()))
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(
            undescribed.is_empty(),
            "flags without a description: {undescribed:?}"
        );
    }

    #[test]
    fn log_format_displays_as_the_flag_value() {
        assert_eq!(LogFormat::Text.to_string(), "text");
        assert_eq!(LogFormat::Json.to_string(), "json");
        assert_eq!(
            parse_serve(&args("--log-format json"))
                .unwrap()
                .log_format
                .to_string(),
            "json"
        );
    }

    #[test]
    fn core_lists_and_ranges_parse() {
        assert_eq!(
            "0,2-4".parse::<CoreList>().unwrap(),
            CoreList(vec![0, 2, 3, 4])
        );
        assert_eq!(
            "40000-40001".parse::<PortRange>().unwrap(),
            PortRange {
                lo: 40000,
                hi: 40001
            }
        );
    }
}
