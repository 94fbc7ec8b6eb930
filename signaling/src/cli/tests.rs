//! The command line's parsing and output, without a node.

use super::*;
use clap::Parser;

/// The shape the node's CLI is expected to take: connection flags plus these subcommands.
#[derive(Parser, Debug)]
#[command(name = "corecast")]
struct Cli {
    #[command(flatten)]
    args: ClientArgs,
    #[command(subcommand)]
    cmd: ClientCommand,
}

fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("corecast").chain(argv.iter().copied()))
}

#[test]
fn source_add_with_every_flag() {
    let cli = parse(&[
        "source",
        "add",
        "cam1",
        "--codec",
        "vp8",
        "--clock-rate",
        "90000",
        "--port",
        "5004",
        "--no-latch",
    ])
    .unwrap();
    assert_eq!(
        cli.cmd,
        ClientCommand::Source(SourceCmd::Add {
            name: "cam1".into(),
            codec: "vp8".into(),
            clock_rate: Some(90_000),
            port: Some(5004),
            no_latch: true,
            feedback: None,
            parameter_sets: None,
            payload_type: None,
            rtx_payload_type: None,
            join: None,
            fallback: None,
        })
    );
}

#[test]
fn source_add_takes_a_join_policy_and_a_fallback() {
    let cli = parse(&[
        "source",
        "add",
        "cam",
        "--codec",
        "vp8",
        "--join",
        "replay",
        "--fallback",
        "3",
    ])
    .unwrap();
    let ClientCommand::Source(SourceCmd::Add { join, fallback, .. }) = cli.cmd else {
        panic!("{:?}", cli.cmd);
    };
    assert_eq!((join.as_deref(), fallback), (Some("replay"), Some(3)));
    assert!(parse(&[
        "source",
        "add",
        "cam",
        "--codec",
        "vp8",
        "--fallback",
        "slate"
    ])
    .is_err());
}

#[test]
fn source_add_minimal_and_list_and_rm() {
    let cli = parse(&["source", "add", "mic", "--codec", "opus"]).unwrap();
    assert_eq!(
        cli.cmd,
        ClientCommand::Source(SourceCmd::Add {
            name: "mic".into(),
            codec: "opus".into(),
            clock_rate: None,
            port: None,
            no_latch: false,
            feedback: None,
            parameter_sets: None,
            payload_type: None,
            rtx_payload_type: None,
            join: None,
            fallback: None,
        })
    );
    assert_eq!(
        parse(&["source", "list"]).unwrap().cmd,
        ClientCommand::Source(SourceCmd::List)
    );
    assert_eq!(
        parse(&["source", "ls"]).unwrap().cmd,
        ClientCommand::Source(SourceCmd::List)
    );
    assert_eq!(
        parse(&["source", "rm", "7"]).unwrap().cmd,
        ClientCommand::Source(SourceCmd::Rm { id: 7 })
    );
}

#[test]
fn source_add_needs_codec_and_numbers() {
    use clap::error::ErrorKind;
    let kind = |argv: &[&str]| parse(argv).unwrap_err().kind();
    assert_eq!(
        kind(&["source", "add", "cam1"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        kind(&["source", "add", "cam1", "--codec", "vp8", "--port", "70000"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(kind(&["source", "rm", "x"]), ErrorKind::ValueValidation);
    assert_eq!(
        kind(&["source"]),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
}

#[test]
fn subscriber_commands() {
    assert_eq!(
        parse(&[
            "subscriber",
            "add",
            "--source",
            "1",
            "--dest",
            "10.0.0.2:5000"
        ])
        .unwrap()
        .cmd,
        ClientCommand::Subscriber(SubscriberCmd::Add {
            source: 1,
            dest: "10.0.0.2:5000".parse().unwrap(),
        })
    );
    assert_eq!(
        parse(&["subscriber", "add", "--source", "1", "--dest", "[::1]:5000"])
            .unwrap()
            .cmd,
        ClientCommand::Subscriber(SubscriberCmd::Add {
            source: 1,
            dest: "[::1]:5000".parse().unwrap(),
        })
    );
    assert!(parse(&["subscriber", "add", "--source", "1", "--dest", "10.0.0.2"]).is_err());
    assert!(parse(&["subscriber", "add", "--dest", "10.0.0.2:5000"]).is_err());
    assert_eq!(
        parse(&["subscriber", "list"]).unwrap().cmd,
        ClientCommand::Subscriber(SubscriberCmd::List)
    );
    assert_eq!(
        parse(&["subscriber", "sdp", "4"]).unwrap().cmd,
        ClientCommand::Subscriber(SubscriberCmd::Sdp { id: 4 })
    );
    assert!(parse(&["subscriber", "sdp"]).is_err(), "the id is needed");
    assert_eq!(
        parse(&["source", "sdp", "2", "--dest", "[::1]:5004"])
            .unwrap()
            .cmd,
        ClientCommand::Source(SourceCmd::Sdp {
            id: 2,
            dest: "[::1]:5004".parse().unwrap()
        })
    );
    assert!(
        parse(&["source", "sdp", "2"]).is_err(),
        "the destination is needed"
    );
    assert_eq!(
        parse(&["subscriber", "rm", "3"]).unwrap().cmd,
        ClientCommand::Subscriber(SubscriberCmd::Rm { id: 3 })
    );
    // `sub` stays as the short form scripts written before the full word may use.
    assert_eq!(
        parse(&["sub", "rm", "3"]).unwrap().cmd,
        ClientCommand::Subscriber(SubscriberCmd::Rm { id: 3 })
    );
}

#[test]
fn channel_commands() {
    assert_eq!(
        parse(&["channel", "add", "main", "--video", "1", "--audio", "2"])
            .unwrap()
            .cmd,
        ClientCommand::Channel(ChannelCmd::Add {
            name: "main".into(),
            video: Some(1),
            audio: Some(2),
        })
    );
    assert_eq!(
        parse(&["channel", "add", "radio", "--audio", "3"])
            .unwrap()
            .cmd,
        ClientCommand::Channel(ChannelCmd::Add {
            name: "radio".into(),
            video: None,
            audio: Some(3),
        })
    );
    // Neither source is the node's to refuse (with the field named), not the parser's.
    assert_eq!(
        parse(&["channel", "add", "empty"]).unwrap().cmd,
        ClientCommand::Channel(ChannelCmd::Add {
            name: "empty".into(),
            video: None,
            audio: None,
        })
    );
    use clap::error::ErrorKind;
    let kind = |argv: &[&str]| parse(argv).unwrap_err().kind();
    assert_eq!(
        kind(&["channel", "add", "x", "--video", "one"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["channel", "add"]),
        ErrorKind::MissingRequiredArgument
    );
    for list in ["list", "ls"] {
        assert_eq!(
            parse(&["channel", list]).unwrap().cmd,
            ClientCommand::Channel(ChannelCmd::List)
        );
    }
    for rm in ["rm", "delete"] {
        assert_eq!(
            parse(&["channel", rm, "4"]).unwrap().cmd,
            ClientCommand::Channel(ChannelCmd::Rm { id: 4 })
        );
    }
    assert_eq!(kind(&["channel", "rm"]), ErrorKind::MissingRequiredArgument);
}

#[test]
fn switch_and_stats() {
    assert_eq!(
        parse(&["switch", "12", "2"]).unwrap().cmd,
        ClientCommand::Switch {
            subscriber: 12,
            source: 2
        }
    );
    assert!(parse(&["switch", "12"]).is_err());
    assert_eq!(
        parse(&["stats"]).unwrap().cmd,
        ClientCommand::Stats {
            watch: false,
            interval_ms: 1000
        }
    );
    assert_eq!(
        parse(&["stats", "--watch", "--interval-ms", "500"])
            .unwrap()
            .cmd,
        ClientCommand::Stats {
            watch: true,
            interval_ms: 500
        }
    );
}

#[test]
fn server_and_token_flags() {
    let cli = parse(&[
        "--server",
        "http://10.0.0.1:9000",
        "--token",
        "t0k",
        "stats",
    ])
    .unwrap();
    assert_eq!(cli.args.server, "http://10.0.0.1:9000");
    assert_eq!(cli.args.token.as_deref(), Some("t0k"));
    // The defaults apply only when the environment does not set them.
    if std::env::var_os("CORECAST_SERVER").is_none() {
        assert_eq!(parse(&["stats"]).unwrap().args.server, "127.0.0.1:8080");
    }
    if std::env::var_os("CORECAST_TOKEN").is_none() {
        assert_eq!(parse(&["stats"]).unwrap().args.token, None);
    }
}

#[test]
fn server_and_token_flags_also_follow_the_subcommand() {
    let after = parse(&["stats", "--server", "10.0.0.1:9000", "--token", "t0k"]).unwrap();
    assert_eq!(after.args.server, "10.0.0.1:9000");
    assert_eq!(after.args.token.as_deref(), Some("t0k"));
    // Deeper subcommands too, and mixed with the subcommand's own flags.
    let deep = parse(&[
        "sub",
        "add",
        "--source",
        "1",
        "--server",
        "10.0.0.2:81",
        "--dest",
        "10.0.0.3:5000",
    ])
    .unwrap();
    assert_eq!(deep.args.server, "10.0.0.2:81");
    assert_eq!(
        deep.cmd,
        ClientCommand::Subscriber(SubscriberCmd::Add {
            source: 1,
            dest: "10.0.0.3:5000".parse().unwrap(),
        })
    );
    let switch = parse(&["switch", "3", "4", "--server", "h:1"]).unwrap();
    assert_eq!(
        (switch.args.server.as_str(), switch.cmd),
        (
            "h:1",
            ClientCommand::Switch {
                subscriber: 3,
                source: 4
            }
        )
    );
}

#[test]
fn clap_definitions_are_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn stats_show_channels_only_when_there_are_some() {
    let render = |stats: &StatsView| {
        let mut out = Vec::new();
        print_stats(&mut out, stats).unwrap();
        String::from_utf8(out).unwrap()
    };
    let mut stats = StatsView::default();
    assert!(!render(&stats).contains("per channel"));
    stats.channels.push(ChannelView {
        id: 3,
        name: "main".into(),
        video: Some(1),
        audio: None,
        viewers: 0,
    });
    let text = render(&stats);
    assert!(
        text.ends_with(
            "per channel:\nID  NAME  VIDEO  AUDIO  VIEWERS\n3   main  1      -      0\n"
        ),
        "{text}"
    );
}

#[test]
fn tables_align_and_summarise_drops() {
    let mut drops_map = std::collections::BTreeMap::new();
    assert_eq!(drops(&drops_map), "0");
    drops_map.insert("too_old".to_string(), 2);
    drops_map.insert("duplicate".to_string(), 1);
    assert_eq!(drops(&drops_map), "3 (duplicate=1, too_old=2)");

    let mut out = Vec::new();
    let rows = vec![vec!["1".into(), "long name".into(), "x".into()]];
    write_table(&mut out, &["ID", "NAME", "LAST"], rows).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "ID  NAME       LAST\n1   long name  x\n"
    );
}
