//! README.md's examples, run as written. The rule, which README.md states too: the block fenced
//! `sh serve` starts the node; every block fenced `sh` then runs, in the README's order, with
//! bash (`set -euo pipefail`) against that node and must exit 0; blocks fenced `sh manual` (a
//! window, Ctrl-C, another node) are not run. Any other shell fence fails the test, so a new
//! block is either run or explicitly left to a person.
//!
//! What the test changes, and nothing else: `corecast` is the binary under test
//! (`CARGO_BIN_EXE_corecast`) instead of `cargo run`, and the node takes a free HTTP port and an
//! ingest port range of its own (`CORECAST_HTTP`, `CORECAST_RTP_PORTS`) instead of 8080 and
//! 40000-40999, so it never clashes with another node on the machine; every block gets that
//! address in `CORECAST_SERVER`, which the CLI reads and the curl block names.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use corecast::config::parse_serve;
use corecast::Node;
use corecast_signaling::client::Client;
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

const README: &str = include_str!("../../README.md");

/// The line the README gives a newcomer to make `corecast` the binary of this checkout.
const ALIAS: &str = "alias corecast='cargo run -q --release -p corecast --'";

/// What some blocks must print (whitespace aside), found by a command the block runs, so the
/// test also fails when a block exits 0 without having done its job. A block with none of these
/// commands (one another section adds) is held to its exit status and to printing no API error.
const EXPECTED: &[(&str, &str)] = &[
    ("corecast source add cam1", r#""name": "cam1""#),
    ("corecast source add cam2", r#""name": "cam2""#),
    (
        "corecast switch 1 2",
        "subscriber 1: switching to source 2 at its next switch point",
    ),
    ("corecast source list", "cam2"),
    ("corecast stats", "2 sources, 1 subscribers"),
    (r#"--json '{"name":"cam3""#, r#""name":"cam3""#),
    (r#"--json '{"source":1}'"#, r#""outcome":"pending""#),
    ("corecast channel add main", r#""name": "main""#),
    ("corecast channel list", "main"),
    (
        r#"--json '{"name":"backup""#,
        r#"{"id":2,"name":"backup","video":2"#,
    ),
    ("corecast loadgen", r#""passed":true"#),
    ("--codec vp8 --fallback 4", r#""fallback": 4"#),
    (
        "corecast subscriber add --source 1 --dest 127.0.0.1:5008",
        r#""id": 3"#,
    ),
    ("grep -E '^a=(ice-lite", "a=ice-lite"),
    (
        r#"curl -sS --fail-with-body "$node$viewer""#,
        r#""transport":"webrtc""#,
    ),
];

/// How long one block may run: the load-testing example sends for several seconds.
const BLOCK_LIMIT: Duration = Duration::from_secs(120);
/// How long the node may take to start, and to stop once signalled.
const NODE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Role {
    /// `sh serve`: the node the other blocks drive.
    Serve,
    /// `sh`: run, in order.
    Run,
    /// `sh manual`: for a person.
    Manual,
}

#[derive(Debug)]
struct Block {
    role: Role,
    /// The section it is in, and the line its fence opens on, to name it in failures.
    heading: String,
    line: usize,
    code: String,
}

fn shell_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut in_heading = false;
    let mut open: Option<Block> = None;
    for (event, range) in Parser::new(README).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                in_heading = true;
                heading.clear();
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Text(text) | Event::Code(text) if in_heading => heading.push_str(&text),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let line = README[..range.start].lines().count() + 1;
                let words: Vec<&str> = info.split_whitespace().collect();
                let role = match words.as_slice() {
                    ["sh"] => Role::Run,
                    ["sh", "serve"] => Role::Serve,
                    ["sh", "manual"] => Role::Manual,
                    [lang, ..] if ["sh", "bash", "shell", "console", "zsh"].contains(lang) => {
                        panic!(
                            "README.md:{line}: shell block fenced `{info}`; fence it `sh` (run by \
                             this test), `sh serve` (the node) or `sh manual` (not run)"
                        )
                    }
                    _ => continue,
                };
                open = Some(Block {
                    role,
                    heading: heading.clone(),
                    line,
                    code: String::new(),
                });
            }
            Event::Text(text) => {
                if let Some(block) = open.as_mut() {
                    block.code.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(open.take()),
            _ => {}
        }
    }
    blocks
}

/// The block as bash runs it: strict, with aliases (a script's bash expands none by default)
/// and `corecast` bound to the binary under test, also where the block binds it to `cargo run`.
fn script(block: &Block) -> String {
    let binary = env!("CARGO_BIN_EXE_corecast");
    let mut script =
        format!("set -euo pipefail\nshopt -s expand_aliases\nalias corecast='{binary}'\n");
    for line in block.code.lines() {
        if line.trim_start().starts_with("alias corecast=") {
            assert_eq!(
                line.trim(),
                ALIAS,
                "README.md:{}: the test binds `corecast` to the binary by replacing this line",
                block.line
            );
            continue;
        }
        script.push_str(line);
        script.push('\n');
    }
    script
}

/// bash running `script` in a process group of its own (so the node under it can be signalled
/// with it), with no `CORECAST_*` setting of the test's environment leaking in.
fn bash(script: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CORECAST_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// Reads `pipe` to its end on a thread of its own, so a wait for it can be bounded.
fn read_on_a_thread(mut pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// The child's exit status, waited for on a thread; `None` if it has not exited within `limit`,
/// in which case its whole process group is killed.
fn exit_within(child: Child, limit: Duration) -> Option<ExitStatus> {
    let group = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait().expect("wait for a child"));
    });
    let status = rx.recv_timeout(limit).ok();
    if status.is_none() {
        // SAFETY: kill only sends a signal, to the process group the test started.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    status
}

/// An ingest port range of its own, below the kernel's ephemeral ports and apart from the
/// ranges the other node tests use (20000-31999).
fn private_port_range() -> String {
    let lo = 10_000 + (std::process::id() % 100) * 100;
    format!("{lo}-{}", lo + 99)
}

/// The node of the `sh serve` block, as bash runs it; stopped (SIGINT, as Ctrl-C) on drop.
struct ServeBlock {
    group: libc::pid_t,
    child: Option<Child>,
    addr: String,
    logs: Receiver<String>,
}

impl ServeBlock {
    fn start(block: &Block) -> ServeBlock {
        let ports = private_port_range();
        let mut child = bash(
            &script(block),
            &[
                ("CORECAST_HTTP", "127.0.0.1:0"),
                ("CORECAST_RTP_PORTS", &ports),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash starts");
        let group = child.id() as libc::pid_t;
        let logs = read_on_a_thread(child.stderr.take().unwrap());
        // The address the node prints, read on a thread so the wait for it is bounded.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut printed = Vec::new();
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let line = line.unwrap_or_default();
                if let Some(rest) = line.split("control API on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(Ok(addr.to_string()));
                    // Keep draining, so the node never blocks on a full pipe.
                    lines.for_each(drop);
                    return;
                }
                printed.push(line);
            }
            let _ = tx.send(Err(printed));
        });
        let mut serve = ServeBlock {
            group,
            child: Some(child),
            addr: String::new(),
            logs,
        };
        match rx.recv_timeout(NODE_LIMIT) {
            Ok(Ok(addr)) => serve.addr = addr,
            Ok(Err(printed)) => panic!(
                "README.md:{}: the serve block exited without serving: {printed:?}, logs: {}",
                block.line,
                serve.logs()
            ),
            Err(_) => panic!(
                "README.md:{}: the serve block printed no address within {NODE_LIMIT:?}",
                block.line
            ),
        }
        serve
    }

    /// Stops the node as Ctrl-C would, and returns bash's exit status.
    fn stop(&mut self) -> Option<ExitStatus> {
        let child = self.child.take()?;
        // SAFETY: kill only sends a signal, to the process group the test started.
        unsafe { libc::kill(-self.group, libc::SIGINT) };
        exit_within(child, NODE_LIMIT)
    }

    /// What the node logged, once it has exited (empty before).
    fn logs(&self) -> String {
        self.logs
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default()
    }
}

impl Drop for ServeBlock {
    fn drop(&mut self) {
        self.stop();
    }
}

fn squeezed(text: &str) -> String {
    text.split_whitespace().collect()
}

#[test]
fn every_shell_block_is_fenced_by_the_rule_and_the_driving_examples_are_run() {
    let blocks = shell_blocks();
    let serve: Vec<&Block> = blocks.iter().filter(|b| b.role == Role::Serve).collect();
    assert_eq!(serve.len(), 1, "one `sh serve` block: {serve:#?}");
    let run_in = |heading: &str| {
        blocks
            .iter()
            .filter(|b| b.role == Role::Run && b.heading == heading)
            .count()
    };
    // A regression of the parser (or of the fences) must not leave the test running nothing.
    assert_eq!(run_in("Driving a node"), 4, "{blocks:#?}");
    assert_eq!(run_in("Watching a subscriber"), 2, "{blocks:#?}");
    assert_eq!(run_in("Checking a stream in the field"), 1, "{blocks:#?}");
    assert_eq!(run_in("Load testing"), 1, "{blocks:#?}");
    assert!(blocks
        .iter()
        .any(|b| b.role == Role::Manual && b.code.contains("demo")));
    for (command, _) in EXPECTED {
        assert!(
            blocks
                .iter()
                .any(|b| b.role == Role::Run && b.code.contains(command)),
            "no `sh` block of README.md runs `{command}` any more: update EXPECTED"
        );
    }
}

#[test]
fn the_readme_blocks_run_as_written_against_the_serve_blocks_node() {
    let blocks = shell_blocks();
    let serve_block = blocks
        .iter()
        .find(|b| b.role == Role::Serve)
        .expect("a `sh serve` block");
    let mut node = ServeBlock::start(serve_block);
    let server = node.addr.clone();
    // The blocks write files (an SDP) where they run: a directory of the test's own.
    let workdir = std::env::temp_dir().join(format!("corecast-readme-run-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();

    for block in blocks.iter().filter(|b| b.role == Role::Run) {
        let name = format!("README.md:{} ({})", block.line, block.heading);
        let mut child = bash(&script(block), &[("CORECAST_SERVER", &server)])
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash starts");
        let stdout = read_on_a_thread(child.stdout.take().unwrap());
        let stderr = read_on_a_thread(child.stderr.take().unwrap());
        let status = exit_within(child, BLOCK_LIMIT);
        let output = |rx: &Receiver<String>| rx.recv_timeout(NODE_LIMIT).unwrap_or_default();
        let (stdout, stderr) = (output(&stdout), output(&stderr));
        let said = format!("{name}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        let status = status.unwrap_or_else(|| panic!("ran past {BLOCK_LIMIT:?}: {said}"));
        assert!(status.success(), "exited with {status}: {said}");
        assert!(
            !squeezed(&stdout).contains(r#"{"error":"#),
            "printed an API error: {said}"
        );
        for (command, needle) in EXPECTED {
            if block.code.contains(command) {
                assert!(
                    squeezed(&stdout).contains(&squeezed(needle)),
                    "`{command}` should print `{needle}`: {said}"
                );
            }
        }
    }

    // What the blocks made is there, as they say: three sources, two subscribers apart.
    let client = Client::new(&server, None);
    let sources: Vec<String> = client
        .sources()
        .expect("the node answers")
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in ["cam1", "cam2", "cam3"] {
        assert!(sources.contains(&name.to_string()), "{sources:?}");
    }
    let dests: Vec<String> = client
        .subscribers()
        .expect("the node answers")
        .iter()
        .filter(|s| s.id <= 2)
        .map(|s| s.dest.to_string())
        .collect();
    assert_eq!(dests, ["127.0.0.1:5004", "127.0.0.1:5006"]);
    // "Channels": the two channels, on the sources the comments name.
    let channels: Vec<(u32, String, Option<u32>)> = client
        .channels()
        .expect("the node answers")
        .into_iter()
        .map(|c| (c.id, c.name, c.video))
        .collect();
    assert_eq!(
        channels,
        [(1, "main".into(), Some(1)), (2, "backup".into(), Some(2))]
    );

    // "Watching a subscriber": the SDP fetched before the subscriber existed (twice, by the CLI
    // and by curl, into the same file) has the media lines of the one it has once added.
    let read = |name: &str| {
        std::fs::read_to_string(workdir.join(name))
            .unwrap_or_else(|e| panic!("README.md's blocks should write {name}: {e}"))
    };
    let media = |text: &str| text[text.find("m=").unwrap_or(0)..].to_string();
    let (watch, sub3) = (read("watch.sdp"), read("sub3.sdp"));
    assert!(watch.contains("\r\nm=video 5008 RTP/AVP 96\r\n"), "{watch}");
    assert!(watch.contains("not added yet"), "{watch}");
    assert!(sub3.contains("s=corecast subscriber 3\r\n"), "{sub3}");
    assert_eq!(media(&watch), media(&sub3));

    // "Checking a stream in the field": the check saw the sender's stream through the node.
    let check: serde_json::Value = serde_json::from_str(&read("check.json")).unwrap();
    assert_eq!(check["consistent"], true, "{check:#}");
    assert_eq!(check["started_on_keyframe"], true, "{check:#}");
    assert!(check["received"].as_u64().unwrap() > 10, "{check:#}");
    std::fs::remove_dir_all(&workdir).unwrap();

    let status = node.stop().expect("the node stops on Ctrl-C");
    assert!(status.success(), "{status:?}: {}", node.logs());
}

#[test]
fn the_toml_example_is_valid_and_starts_a_node_on_this_machine() {
    let mut examples = Vec::new();
    let mut open = None;
    for event in Parser::new(README) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) if &*info == "toml" => {
                open = Some(String::new());
            }
            Event::Text(text) => {
                if let Some(toml) = open.as_mut() {
                    toml.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => examples.extend(open.take()),
            _ => {}
        }
    }
    assert_eq!(examples.len(), 1, "{examples:?}");
    let dir = std::env::temp_dir().join(format!("corecast-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, &examples[0]).unwrap();
    // Only the HTTP port is the test's own; everything else comes from the file.
    let argv = [
        "--config".to_string(),
        file.display().to_string(),
        "--http".into(),
        "127.0.0.1:0".into(),
    ];
    let args = parse_serve(&argv).unwrap_or_else(|e| panic!("{e}\n{}", examples[0]));
    let mut node = Node::start(&args).unwrap_or_else(|e| panic!("{e}\n{}", examples[0]));
    Client::new(&node.http_addr().to_string(), args.token.clone())
        .sources()
        .expect("the node answers with the file's token");
    node.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}
