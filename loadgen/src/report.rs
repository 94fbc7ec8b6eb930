//! The result of a run: every count, the pass/fail verdict with its reasons, a readable summary
//! and the JSON object `--json` prints.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::verify::Counts;
use super::whep::join::ConnectFigures;
use super::whep::media::WebrtcCounts;

/// End-to-end latency percentiles in microseconds (receive time − the send time in the packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub samples: u64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
            samples: h.len(),
        }
    }
}

/// Everything a run measured. The JSON field names are this struct's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// `api` (sources and subscribers on a node through its API) or `raw` (`--raw-target`).
    pub mode: String,
    pub codec: String,
    /// `rtp` (plain subscribers) or `webrtc` (`--whep`: WHEP viewers with ICE, DTLS and SRTP).
    pub transport: String,
    /// `--whep`: how the viewers connected (ICE + DTLS); null for plain subscribers.
    pub connect: Option<ConnectFigures>,
    /// `--whep`: SRTP opened and dropped, and the datagrams that were not media; null for
    /// plain subscribers.
    pub webrtc: Option<WebrtcCounts>,
    /// `--whep`: consent checks (STUN) sent during the run.
    pub consent_checks_sent: u64,
    pub sources: u32,
    pub subscribers: u32,
    /// Subscribers the node also sent to that nothing here received (`--unverified`).
    pub unverified_subscribers: u32,
    /// Seconds from the first frame due to the end of sending.
    pub duration_s: f64,
    /// Seconds waited after sending for packets in flight: at least `--drain-ms`, then until
    /// 500 ms pass without a packet (at most 10 s more).
    pub drain_s: f64,
    /// Packets the sources sent (each once, not per subscriber).
    pub packets_sent: u64,
    /// Video keyframes sent (for Opus, every packet: each is a switch point).
    pub keyframes_sent: u64,
    /// PLIs and FIRs the sources received.
    pub keyframe_requests: u64,
    /// Sum over subscribers of the packets each should have received: every sequence number
    /// from its lowest received to its highest, plus what its last source sent after the last
    /// packet received from it; for a subscriber that received nothing, all its first source
    /// sent.
    pub packets_expected: u64,
    /// RTP datagrams received by all subscribers (duplicates included).
    pub packets_received: u64,
    /// `packets_expected` − distinct sequence numbers received, summed over subscribers.
    pub lost: u64,
    /// `lost / packets_expected`.
    pub loss_fraction: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub payload_mismatches: u64,
    pub ssrc_changes: u64,
    pub timestamp_regressions: u64,
    /// Subscribers whose first packet was not a switch point.
    pub joins_not_on_keyframe: u64,
    /// Subscribers that received nothing verifiable.
    pub silent_subscribers: u64,
    /// Switch requests the node accepted.
    pub switches_requested: u64,
    /// Changes of source seen by subscribers.
    pub switches_completed: u64,
    pub switches_not_on_keyframe: u64,
    /// Switch requests the node refused or that failed.
    pub switch_errors: u64,
    /// Datagrams subscribers received that were not the load generator's: not RTP, or without
    /// its trailer (a stray sender aimed at a subscriber port, or a trailer damaged in transit).
    pub foreign_packets: u64,
    /// Sources the node latched to another sender than the load generator (a stray process
    /// sending to that port); the warnings name them.
    pub foreign_senders: u64,
    pub latency_us: Latency,
    /// `packets_received / duration_s`.
    pub received_pps: f64,
    /// `packets_sent / duration_s`.
    pub sent_pps: f64,
    /// CPU seconds (user + system) `--server-pid` used from the start of sending to the end of
    /// the drain; null without `--server-pid`.
    pub server_cpu_s: Option<f64>,
    /// CPU seconds this process used over the same time.
    pub loadgen_cpu_s: Option<f64>,
    pub recv_threads: usize,
    pub rcvbuf_asked: usize,
    /// Smallest receive buffer the kernel granted a subscriber socket.
    pub rcvbuf_granted: usize,
    /// Frames sent more than 5 ms after they were due (the sender fell behind).
    pub late_frames: u64,
    pub send_retries: u64,
    /// `--max-loss`: the largest `loss_fraction` that passes (a fraction: 0.001 is 0.1%).
    pub max_loss: f64,
    /// `--max-p99-ms`: the largest end-to-end p99 that passes, in ms; null when not judged.
    pub max_p99_ms: Option<f64>,
    /// The measured end-to-end p99 the threshold is compared with, in ms (`latency_us.p99`).
    pub p99_ms: f64,
    /// The thresholds the run exceeded, by name: `p99`, `loss`; each also has a line in
    /// `failures`.
    pub thresholds_exceeded: Vec<String>,
    pub passed: bool,
    /// Why the run failed, one line each; empty when it passed.
    pub failures: Vec<String>,
    /// Things worth knowing that do not fail the run.
    pub warnings: Vec<String>,
}

impl Report {
    /// Fill the counts from the subscribers' summed results.
    pub fn add_counts(&mut self, c: &Counts) {
        self.packets_received += c.received;
        self.duplicates += c.duplicates;
        self.reordered += c.reordered;
        self.payload_mismatches += c.payload_mismatches;
        self.ssrc_changes += c.ssrc_changes;
        self.timestamp_regressions += c.timestamp_regressions;
        self.joins_not_on_keyframe += c.joins_not_on_keyframe;
        self.switches_completed += c.switches_completed;
        self.switches_not_on_keyframe += c.switches_not_on_keyframe;
        self.foreign_packets += c.foreign;
    }

    /// Decide pass or fail from the counts, filling `failures` and `passed`.
    pub fn judge(&mut self) {
        self.loss_fraction = if self.packets_expected == 0 {
            0.0
        } else {
            self.lost as f64 / self.packets_expected as f64
        };
        self.p99_ms = self.latency_us.p99 as f64 / 1000.0;
        let mut f = Vec::new();
        let mut exceeded = Vec::new();
        if self.packets_sent == 0 {
            f.push("no packet was sent".to_string());
        }
        if let Some(max) = self.max_p99_ms.filter(|&max| self.p99_ms > max) {
            exceeded.push("p99".to_string());
            f.push(format!(
                "end-to-end p99 {:.1} ms is above --max-p99-ms {max}",
                self.p99_ms
            ));
        }
        if self.loss_fraction > self.max_loss {
            exceeded.push("loss".to_string());
            f.push(format!(
                "loss {:.4}% ({} of {} expected) is above --max-loss {:.4}%",
                self.loss_fraction * 100.0,
                self.lost,
                self.packets_expected,
                self.max_loss * 100.0
            ));
        }
        let checks = [
            (self.silent_subscribers, "subscribers received nothing"),
            (self.duplicates, "duplicate packets"),
            (self.payload_mismatches, "payload mismatches"),
            (self.switches_not_on_keyframe, "switches not on a keyframe"),
            (self.joins_not_on_keyframe, "subscribers started mid-frame"),
            (self.ssrc_changes, "packets with a changed SSRC"),
            (self.timestamp_regressions, "timestamps going backwards"),
            (self.switch_errors, "switch requests failed"),
            (self.foreign_senders, "sources latched to another sender"),
            (
                self.foreign_packets,
                "datagrams that were not the load generator's",
            ),
        ];
        let connect_failed = self.connect.map_or(0, |c| c.failed);
        let (unprotect, ssrc_not_answered) = self
            .webrtc
            .as_ref()
            .map_or((0, 0), |w| (w.unprotect_drops(), w.ssrc_not_answered));
        let webrtc_checks = [
            (connect_failed, "viewers did not connect (ICE + DTLS)"),
            (unprotect, "SRTP packets that did not unprotect"),
            (
                ssrc_not_answered,
                "packets with an SSRC other than the answer's",
            ),
        ];
        for (n, what) in checks.into_iter().chain(webrtc_checks) {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        }
        self.passed = f.is_empty();
        self.failures = f;
        self.thresholds_exceeded = exceeded;
    }

    /// A few readable lines.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_us;
        let connect_line = self.connect.map(|c| {
            format!(
                "  connect   {} viewers in {:.2} s ({:.0} handshakes/s{}): ICE + DTLS p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} failed, {} ICE resends",
                c.connected,
                c.wall_s,
                c.handshakes_per_s,
                c.handshakes_per_server_cpu_s
                    .map_or(String::new(), |h| format!(", {h:.0} per server CPU-second")),
                c.p50_ms,
                c.p99_ms,
                c.max_ms,
                c.failed,
                c.ice_resends
            )
        });
        let webrtc_line = self.webrtc.as_ref().map(|w| {
            format!(
                "  webrtc    SRTP opened {}, unprotect drops {} {:?}, other SSRC {}; ignored: STUN {}, DTLS {}, SRTCP {}, unknown {}; consent checks sent {}",
                w.srtp_opened,
                w.unprotect_drops(),
                w.unprotect_dropped,
                w.ssrc_not_answered,
                w.stun_ignored,
                w.dtls_ignored,
                w.srtcp_ignored,
                w.unknown,
                self.consent_checks_sent
            )
        });
        let _ = writeln!(
            s,
            "loadgen ({} mode, {}, transport {}): {} source{} × {} subscribers for {:.1} s",
            self.mode,
            self.codec,
            self.transport,
            self.sources,
            if self.sources == 1 { "" } else { "s" },
            self.subscribers,
            self.duration_s
        );
        for line in connect_line.iter().chain(&webrtc_line) {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(
            s,
            "  sent      {} packets ({:.0} pps), {} keyframes, {} keyframe requests answered",
            self.packets_sent, self.sent_pps, self.keyframes_sent, self.keyframe_requests
        );
        let _ = writeln!(
            s,
            "  received  {} of {} expected ({:.0} pps): lost {} ({:.4}%), duplicates {}, reordered {}",
            self.packets_received,
            self.packets_expected,
            self.received_pps,
            self.lost,
            self.loss_fraction * 100.0,
            self.duplicates,
            self.reordered
        );
        let _ = writeln!(
            s,
            "  checks    payload mismatches {}, foreign datagrams {}, SSRC changes {}, timestamp regressions {}, mid-frame starts {}, silent subscribers {}",
            self.payload_mismatches,
            self.foreign_packets,
            self.ssrc_changes,
            self.timestamp_regressions,
            self.joins_not_on_keyframe,
            self.silent_subscribers
        );
        let _ = writeln!(
            s,
            "  switches  {} requested, {} completed, {} not on a keyframe, {} failed",
            self.switches_requested,
            self.switches_completed,
            self.switches_not_on_keyframe,
            self.switch_errors
        );
        let _ = writeln!(
            s,
            "  latency   p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs ({} samples)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.samples
        );
        let _ = writeln!(
            s,
            "  limits    p99 at most {}, loss at most {:.4}%",
            self.max_p99_ms
                .map_or("(not judged)".to_string(), |m| format!("{m} ms")),
            self.max_loss * 100.0
        );
        let cpu = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.2} s"));
        let _ = writeln!(
            s,
            "  cpu       server {}, loadgen {}; late frames {}, send retries {}",
            cpu(self.server_cpu_s),
            cpu(self.loadgen_cpu_s),
            self.late_frames,
            self.send_retries
        );
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        if self.passed {
            let _ = writeln!(s, "PASS");
        } else {
            let _ = writeln!(s, "FAIL");
            for f in &self.failures {
                let _ = writeln!(s, "  - {f}");
            }
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }
}

/// Clock ticks per second in `/proc/<pid>/stat`: Linux reports CPU times there in USER_HZ,
/// which is 100 on every architecture it is built for today (what `sysconf(_SC_CLK_TCK)`
/// answers).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) process `pid` (or `"self"`) has used, from `/proc/<pid>/stat`.
pub fn process_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(process_cpu_s("self").is_some());
        assert!(process_cpu_s("0").is_none());
    }

    #[test]
    fn the_verdict_names_each_failure() {
        let mut r = Report {
            packets_sent: 10,
            packets_expected: 100,
            lost: 1,
            max_loss: 0.02,
            ..Report::default()
        };
        r.judge();
        assert!(r.passed, "{:?}", r.failures);
        assert!(r.thresholds_exceeded.is_empty());
        r.max_loss = 0.0;
        r.duplicates = 2;
        r.judge();
        assert!(!r.passed);
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        assert!(r.failures[1].contains("2 duplicate"));
        assert_eq!(r.thresholds_exceeded, ["loss"]);
    }

    #[test]
    fn a_p99_above_its_limit_fails_and_none_is_not_judged() {
        let mut r = Report {
            packets_sent: 10,
            latency_us: Latency {
                p99: 200_001,
                ..Latency::default()
            },
            max_p99_ms: Some(200.0),
            ..Report::default()
        };
        r.judge();
        assert!(!r.passed);
        assert_eq!(r.p99_ms, 200.001);
        assert_eq!(r.thresholds_exceeded, ["p99"]);
        assert!(r.failures[0].contains("p99 200.0 ms is above --max-p99-ms 200"));
        r.latency_us.p99 = 200_000;
        r.judge();
        assert!(r.passed, "{:?}", r.failures);
        r.latency_us.p99 = u64::MAX / 2;
        r.max_p99_ms = None;
        r.judge();
        assert!(r.passed, "{:?}", r.failures);
    }
}
