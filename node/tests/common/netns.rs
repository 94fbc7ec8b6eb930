//! A network namespace of a test's own, joined to the host by a veth pair, with random loss on
//! the way in (nftables `numgen random`: these kernels have no netem). Needs root.

use std::process::Command;

pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace joined to the host by a veth pair: the host side is `host`, the namespace side
/// `inside`, a /30 of their own. Deleted (with its end of the pair, which takes the other) on
/// drop.
pub struct Netns {
    pub name: String,
    pub host: String,
    pub inside: String,
    /// The host's own nftables table of this namespace's loss on the way in, if made.
    host_table: Option<String>,
}

impl Netns {
    pub fn new(tag: u32) -> Netns {
        let pid = std::process::id();
        let name = format!("cc{pid}x{tag}");
        // 10.(128..=191).(0..=252).0/30 by process and tag: two runs at once do not collide.
        let (b, c) = (128 + (pid % 64), ((pid / 64) % 63) * 4 + tag);
        let host = format!("10.{b}.{c}.1");
        let inside = format!("10.{b}.{c}.2");
        let (veth_host, veth_ns) = (format!("cch{pid}{tag}"), format!("ccn{pid}{tag}"));
        run(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name,
            host,
            inside,
            host_table: None,
        };
        run(&[
            "ip", "link", "add", &veth_host, "type", "veth", "peer", "name", &veth_ns,
        ]);
        run(&["ip", "link", "set", &veth_ns, "netns", &ns.name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.host),
            "dev",
            &veth_host,
        ]);
        run(&["ip", "link", "set", &veth_host, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.inside),
            "dev",
            &veth_ns,
        ]);
        ns.exec(&["ip", "link", "set", &veth_ns, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Drop `percent` % of the UDP datagrams arriving for `port`, at random.
    pub fn lose(&self, port: u16, percent: u32) {
        self.lose_matching(&format!("udp dport {port}"), percent);
    }

    /// Drop `percent` % of the UDP datagrams arriving from `ip` (the host's side), at random.
    pub fn lose_udp_from(&self, ip: &str, percent: u32) {
        self.lose_matching(&format!("ip saddr {ip} meta l4proto udp"), percent);
    }

    fn lose_matching(&self, matcher: &str, percent: u32) {
        self.exec(&["nft", "add", "table", "inet", "lossy"]);
        self.exec(&[
            "nft",
            "add chain inet lossy input { type filter hook input priority 0; }",
        ]);
        self.exec(&[
            "nft",
            &format!(
                "add rule inet lossy input {matcher} numgen random mod 100 < {percent} \
                 counter drop"
            ),
        ]);
    }

    /// Drop `percent` % of the UDP datagrams from the namespace to the host's `port`, at random,
    /// in the host's input hook (a table of this namespace's own, deleted with it): loss on the
    /// way from a sender inside (a drop in the sender's own output chain would be an error it
    /// sees, not a loss).
    pub fn lose_on_the_way_out(&mut self, port: u16, percent: u32) {
        let table = self.name.clone();
        run(&["nft", "add", "table", "inet", &table]);
        run(&[
            "nft",
            &format!("add chain inet {table} input {{ type filter hook input priority 0; }}"),
        ]);
        run(&[
            "nft",
            &format!(
                "add rule inet {table} input ip saddr {} udp dport {port} numgen random mod 100 \
                 < {percent} counter drop",
                self.inside
            ),
        ]);
        self.host_table = Some(table);
    }

    /// How many datagrams the host-side rule dropped so far.
    pub fn dropped_on_the_way_out(&self) -> u64 {
        let Some(table) = &self.host_table else {
            return 0;
        };
        let out = Command::new("nft")
            .args(["list", "table", "inet", table])
            .output()
            .expect("nft runs");
        counted(&String::from_utf8_lossy(&out.stdout))
    }

    /// How many datagrams the loss rules dropped so far.
    pub fn dropped(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.name, "nft", "list", "table", "inet", "lossy",
            ])
            .output()
            .expect("nft runs");
        counted(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The sum of the `counter packets N` of an `nft list` output.
fn counted(listing: &str) -> u64 {
    listing
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "packets")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum()
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(table) = &self.host_table {
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", table])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
