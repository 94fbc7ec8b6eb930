//! The client side of the `corecast` command line: subcommands that talk to a running node's
//! control API. The node crate embeds [`ClientArgs`] and [`ClientCommand`] in its own CLI and
//! calls [`run`].

use std::io::Write;
use std::net::SocketAddr;

use clap::{Args, Subcommand};

use crate::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, SourceView, StatsView,
    SubscriberView, SwitchOutcome,
};
use crate::client::{Client, ClientError};

mod watch;

/// Where the node's control API is. Both flags are global: they go before or after the
/// subcommand (`corecast --server X stats`, `corecast stats --server X`).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ClientArgs {
    /// Control API address: HOST:PORT or http://HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "CORECAST_SERVER",
        default_value = "127.0.0.1:8080"
    )]
    pub server: String,
    /// Bearer token, when the node requires one.
    #[arg(long, global = true, env = "CORECAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// Add, list or remove sources.
    #[command(subcommand)]
    Source(SourceCmd),
    /// Add, list or remove subscribers (`sub` for short).
    #[command(subcommand, alias = "sub")]
    Subscriber(SubscriberCmd),
    /// Add, list or remove channels: what one viewer watches (a video and an audio source).
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Move a subscriber to another source (applied at that source's next keyframe).
    Switch {
        /// Subscriber id.
        subscriber: u32,
        /// Source id to switch to.
        source: u32,
    },
    /// Show node, shard and source counters.
    Stats {
        /// Keep refreshing the tables in the terminal until interrupted.
        #[arg(long)]
        watch: bool,
        /// Milliseconds between refreshes with --watch.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum SourceCmd {
    /// Create a source and print it as JSON.
    Add {
        /// Unique name.
        name: String,
        /// vp8, vp9, h264, h265, av1 or opus.
        #[arg(long)]
        codec: String,
        /// RTP clock rate; the codec's usual one when absent.
        #[arg(long)]
        clock_rate: Option<u32>,
        /// Ingest UDP port; chosen from the node's range when absent.
        #[arg(long)]
        port: Option<u16>,
        /// Accept packets from any sender instead of latching to the first.
        #[arg(long)]
        no_latch: bool,
        /// IP:PORT where the sender receives RTCP (keyframe requests), if not where it sends from.
        #[arg(long)]
        feedback: Option<String>,
        /// H.264/H.265 parameter sets from the sender's SDP (sprop-parameter-sets: base64,
        /// comma-separated), sent before keyframes that lack them.
        #[arg(long)]
        parameter_sets: Option<String>,
        /// The RTP payload type of the source's media; default: the first packet's.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=127))]
        payload_type: Option<u8>,
        /// The payload type of the sender's RFC 4588 retransmissions (counted, not forwarded).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=127))]
        rtx_payload_type: Option<u8>,
        /// How subscribers that join it start: at its next keyframe, or at once from the
        /// node's history (default: the node's `--join`).
        #[arg(long, value_parser = ["keyframe", "replay"])]
        join: Option<String>,
        /// A source of the same codec (a slate or backup feed) its subscribers are switched to
        /// while it sends nothing for the node's `--idle-timeout`, and back from when it sends.
        #[arg(long, value_name = "SOURCE_ID")]
        fallback: Option<u32>,
    },
    /// List sources.
    #[command(alias = "ls")]
    List,
    /// Delete a source (its subscribers stay, idle).
    #[command(alias = "delete")]
    Rm { id: u32 },
    /// Print the SDP a subscriber of this source at --dest will have, so a player can listen
    /// there before the subscriber is added: `corecast source sdp 1 --dest 127.0.0.1:5004 >
    /// sub.sdp`.
    Sdp {
        id: u32,
        /// IP:PORT the player listens on (the subscriber's `--dest`).
        #[arg(long)]
        dest: SocketAddr,
    },
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum SubscriberCmd {
    /// Create a subscriber and print it as JSON.
    Add {
        /// Source id to attach to.
        #[arg(long)]
        source: u32,
        /// IP:PORT the subscriber receives media on.
        #[arg(long)]
        dest: SocketAddr,
    },
    /// List subscribers.
    #[command(alias = "ls")]
    List,
    /// Delete a subscriber.
    #[command(alias = "delete")]
    Rm { id: u32 },
    /// Print the subscriber's SDP, for a player at its destination: `corecast subscriber sdp 1 >
    /// sub1.sdp`, then e.g. `ffplay -protocol_whitelist file,udp,rtp -i sub1.sdp`.
    Sdp { id: u32 },
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum ChannelCmd {
    /// Create a channel and print it as JSON.
    Add {
        /// Unique name.
        name: String,
        /// Id of its video source.
        #[arg(long)]
        video: Option<u32>,
        /// Id of its audio source (Opus).
        #[arg(long)]
        audio: Option<u32>,
    },
    /// List channels.
    #[command(alias = "ls")]
    List,
    /// Delete a channel (its sources stay).
    #[command(alias = "delete")]
    Rm { id: u32 },
}

/// Runs one client command against the node, writing its result to `out`. On `Err` the caller
/// prints `error: {err}` (which reads `error: <code>: <message>`) and exits non-zero.
pub fn run(args: &ClientArgs, cmd: ClientCommand, out: &mut dyn Write) -> Result<(), ClientError> {
    let client = Client::new(&args.server, args.token.clone());
    match cmd {
        ClientCommand::Source(SourceCmd::Add {
            name,
            codec,
            clock_rate,
            port,
            no_latch,
            feedback,
            parameter_sets,
            payload_type,
            rtx_payload_type,
            join,
            fallback,
        }) => {
            let view = client.create_source(&CreateSource {
                name,
                codec,
                clock_rate,
                port,
                latch: no_latch.then_some(false),
                feedback,
                parameter_sets,
                payload_type,
                rtx_payload_type,
                join,
                fallback,
            })?;
            print_json(out, &view)
        }
        ClientCommand::Source(SourceCmd::List) => print_sources(out, &client.sources()?),
        ClientCommand::Source(SourceCmd::Rm { id }) => {
            client.delete_source(id)?;
            writeln!(out, "deleted source {id}").map_err(ClientError::Output)
        }
        ClientCommand::Subscriber(SubscriberCmd::Add { source, dest }) => {
            let view = client.create_subscriber(&CreateSubscriber {
                source,
                dest: dest.to_string(),
            })?;
            print_json(out, &view)
        }
        ClientCommand::Subscriber(SubscriberCmd::List) => {
            print_subscribers(out, &client.subscribers()?)
        }
        ClientCommand::Subscriber(SubscriberCmd::Rm { id }) => {
            client.delete_subscriber(id)?;
            writeln!(out, "deleted subscriber {id}").map_err(ClientError::Output)
        }
        ClientCommand::Subscriber(SubscriberCmd::Sdp { id }) => {
            let sdp = client.subscriber_sdp(id)?;
            out.write_all(sdp.as_bytes()).map_err(ClientError::Output)
        }
        ClientCommand::Source(SourceCmd::Sdp { id, dest }) => {
            let sdp = client.source_sdp(id, dest)?;
            out.write_all(sdp.as_bytes()).map_err(ClientError::Output)
        }
        ClientCommand::Channel(ChannelCmd::Add { name, video, audio }) => {
            let view = client.create_channel(&CreateChannel { name, video, audio })?;
            print_json(out, &view)
        }
        ClientCommand::Channel(ChannelCmd::List) => print_channels(out, &client.channels()?),
        ClientCommand::Channel(ChannelCmd::Rm { id }) => {
            client.delete_channel(id)?;
            writeln!(out, "deleted channel {id}").map_err(ClientError::Output)
        }
        ClientCommand::Switch { subscriber, source } => {
            let view = client.switch(subscriber, source)?;
            let said = match view.outcome {
                SwitchOutcome::Pending => {
                    format!("subscriber {subscriber}: switching to source {source} at its next switch point")
                }
                SwitchOutcome::Unchanged => {
                    format!("subscriber {subscriber}: already receives source {source}; nothing changed")
                }
                SwitchOutcome::Cancelled => format!(
                    "subscriber {subscriber}: already receives source {source}; its pending switch was cancelled"
                ),
            };
            writeln!(out, "{said}").map_err(ClientError::Output)
        }
        ClientCommand::Stats { watch: false, .. } => print_stats(out, &client.stats()?),
        ClientCommand::Stats {
            watch: true,
            interval_ms,
        } => {
            let interval = std::time::Duration::from_millis(interval_ms.max(100));
            watch::watch_stats(|| client.stats(), interval, &watch::interrupts()?, out)
        }
    }
}

fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(value).expect("API views serialise infallibly");
    writeln!(out, "{text}").map_err(ClientError::Output)
}

fn print_sources(out: &mut dyn Write, sources: &[SourceView]) -> Result<(), ClientError> {
    let rows = sources
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.name.clone(),
                s.codec.clone(),
                s.clock_rate.to_string(),
                format!("{}:{}", s.ingest.ip, s.ingest.port),
                if s.latch { "yes" } else { "no" }.to_string(),
                s.sender.map_or_else(|| "-".to_string(), |a| a.to_string()),
                s.subscribers.to_string(),
                s.counters.packets_received.to_string(),
                s.counters.packets_forwarded.to_string(),
                s.counters.keyframes.to_string(),
                drops(&s.counters.drops),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "NAME",
        "CODEC",
        "CLOCK",
        "INGEST",
        "LATCH",
        "SENDER",
        "SUBSCRIBERS",
        "RECEIVED",
        "FORWARDED",
        "KEYFRAMES",
        "DROPS",
    ];
    write_table(out, &headers, rows).map_err(ClientError::Output)
}

fn print_subscribers(out: &mut dyn Write, subs: &[SubscriberView]) -> Result<(), ClientError> {
    let opt = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows = subs
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                opt(s.source),
                opt(s.pending_source),
                s.dest.to_string(),
                format!("{:08x}", s.ssrc),
                s.shard.to_string(),
                s.counters.packets_sent.to_string(),
                s.counters.bytes_sent.to_string(),
                s.counters.switches.to_string(),
                drops(&s.counters.drops),
            ]
        })
        .collect();
    let headers = [
        "ID", "SOURCE", "PENDING", "DEST", "SSRC", "SHARD", "SENT", "BYTES", "SWITCHES", "DROPS",
    ];
    write_table(out, &headers, rows).map_err(ClientError::Output)
}

fn print_channels(out: &mut dyn Write, channels: &[ChannelView]) -> Result<(), ClientError> {
    let opt = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows = channels
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                opt(c.video),
                opt(c.audio),
                c.viewers.to_string(),
            ]
        })
        .collect();
    let headers = ["ID", "NAME", "VIDEO", "AUDIO", "VIEWERS"];
    write_table(out, &headers, rows).map_err(ClientError::Output)
}

fn print_stats(out: &mut dyn Write, stats: &StatsView) -> Result<(), ClientError> {
    let n = &stats.node;
    let result = (|| {
        writeln!(
            out,
            "uptime {:.1} s, {} sources, {} subscribers, {} packets received, {} forwarded, drops: {}",
            n.uptime_s,
            n.sources,
            n.subscribers,
            n.packets_received,
            n.packets_forwarded,
            drops(&n.drops)
        )?;
        writeln!(
            out,
            "forwarding latency since start: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            n.latency_p50_us, n.latency_p99_us, n.latency_p999_us, n.latency_max_us
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "per shard, over the last stats interval{}: packets per second in and out, latency of the copies sent in it, share of it spent forwarding",
            interval(stats.shards.first().and_then(|s| s.interval_start_s.zip(s.interval_end_s)))
        )?;
        let rows = stats
            .shards
            .iter()
            .map(|s| {
                vec![
                    s.shard.to_string(),
                    s.core.map_or_else(|| "-".to_string(), |c| c.to_string()),
                    s.subscribers.to_string(),
                    format!("{:.0}", s.packets_in_per_s),
                    format!("{:.0}", s.packets_out_per_s),
                    s.latency_p50_us.to_string(),
                    s.latency_p99_us.to_string(),
                    format!("{:.0}%", s.busy_ratio * 100.0),
                    drops(&s.drops),
                ]
            })
            .collect();
        let headers = [
            "SHARD",
            "CORE",
            "SUBSCRIBERS",
            "PPS IN",
            "PPS OUT",
            "P50 US",
            "P99 US",
            "BUSY",
            "DROPS",
        ];
        write_table(out, &headers, rows)?;
        writeln!(out)
    })();
    result.map_err(ClientError::Output)?;
    writeln!(
        out,
        "per source: bitrate and frame rate over the last stats interval{}, media time between the last two keyframes",
        interval(stats.sources.first().and_then(|s| {
            let c = &s.counters;
            c.interval_start_s.zip(c.interval_end_s)
        }))
    )
    .map_err(ClientError::Output)?;
    let rows = stats
        .sources
        .iter()
        .map(|s| {
            let c = &s.counters;
            vec![
                s.id.to_string(),
                s.name.clone(),
                s.state.clone(),
                format!("{:.0} kbit/s", c.bitrate_bps / 1000.0),
                format!("{:.1}", c.fps),
                c.keyframe_interval_s
                    .map_or_else(|| "-".to_string(), |k| format!("{k:.1} s")),
                s.subscribers.to_string(),
                drops(&c.drops),
            ]
        })
        .collect();
    let headers = [
        "SOURCE",
        "NAME",
        "STATE",
        "BITRATE",
        "FPS",
        "KEYFRAME EVERY",
        "SUBSCRIBERS",
        "DROPS",
    ];
    write_table(out, &headers, rows).map_err(ClientError::Output)?;
    // Only on a node that has channels, so the output of one without stays as it was.
    if stats.channels.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nper channel:").map_err(ClientError::Output)?;
    print_channels(out, &stats.channels)
}

/// ` (12.0-13.0 s of uptime)`, or nothing before the node has two snapshots.
fn interval(window: Option<(f64, f64)>) -> String {
    window.map_or_else(String::new, |(start, end)| {
        format!(" ({start:.1}-{end:.1} s of uptime)")
    })
}

/// `total` or `total (reason=n, ...)`, so the cause of drops shows without a second command.
fn drops(by_reason: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = by_reason.values().sum();
    if total == 0 {
        return "0".to_string();
    }
    let reasons: Vec<String> = by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    format!("{total} ({})", reasons.join(", "))
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn write_table(
    out: &mut dyn Write,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
