//! `--webhook` and JSON lines flag values: what parses, to what, and what each mistake says.

use std::time::Duration;

use corecast::events::{
    EventType, HandlerConfig, JsonLinesConfig, JsonLinesTarget, WebhookConfig, DEFAULT_QUEUE,
    DEFAULT_QUEUE_BYTES,
};

#[test]
fn webhook_flag_values() {
    let c: WebhookConfig = "http://127.0.0.1:9000/hook".parse().unwrap();
    assert_eq!(c.url, "http://127.0.0.1:9000/hook");
    assert_eq!(c.types.to_string(), "*");
    assert_eq!(c.secret, None);
    assert_eq!(
        (c.batch_max, c.batch_wait),
        (100, Duration::from_millis(200))
    );
    assert_eq!((c.retries, c.backoff), (5, Duration::from_millis(100)));
    assert_eq!(
        (c.queue, c.timeout),
        (DEFAULT_QUEUE, Duration::from_secs(2))
    );
    assert_eq!(c.queue_bytes, DEFAULT_QUEUE_BYTES);
    assert_eq!(DEFAULT_QUEUE_BYTES, 8 << 20);

    let spec = "http://hooks.local/x;types=source.*,switch.completed;secret=s3cret;batch=50;\
                batch-ms=100;retries=3;backoff-ms=250;queue=500;queue-bytes=65536;timeout-ms=1500";
    let c: WebhookConfig = spec.parse().unwrap();
    assert_eq!(c.types.to_string(), "source.*,switch.completed");
    assert!(c.types.contains(EventType::SourceIdle) && !c.types.contains(EventType::Stats));
    assert_eq!(c.secret.as_deref(), Some("s3cret"));
    assert_eq!(
        (c.batch_max, c.batch_wait),
        (50, Duration::from_millis(100))
    );
    assert_eq!((c.retries, c.backoff), (3, Duration::from_millis(250)));
    assert_eq!((c.queue, c.timeout), (500, Duration::from_millis(1500)));
    assert_eq!(c.queue_bytes, 65536);
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug hides the secret"
    );

    let bad = [
        ("https://example.com/hook", "https is not supported"),
        ("ftp://example.com/", "http://"),
        ("example.com/hook", "http://"),
        ("", "http://"),
        ("http:///path", "not a valid URL"),
        ("http://h/;colour=blue", "unknown webhook option \"colour\""),
        ("http://h/;batch=0", "batch=0"),
        ("http://h/;batch=ten", "batch=ten"),
        ("http://h/;retries=-1", "retries=-1"),
        ("http://h/;timeout-ms=0", "timeout-ms=0"),
        ("http://h/;queue=99999999999", "queue="),
        ("http://h/;queue-bytes=10", "queue-bytes=10"),
        ("http://h/;queue-bytes=8MiB", "queue-bytes=8MiB"),
        ("http://h/;secret=", "secret"),
        ("http://h/;batch=5;batch=6", "twice"),
        ("http://h/;types=source.*,bogus", "bogus"),
        ("http://h/;types=", "empty event type list"),
        ("http://h/;batch", "key=value"),
    ];
    for (value, needle) in bad {
        let err = value.parse::<WebhookConfig>().expect_err(value).to_string();
        assert!(
            err.contains(needle),
            "{value:?} → {err:?} (wanted {needle:?})"
        );
    }
}

#[test]
fn json_lines_flag_values() {
    let c: JsonLinesConfig = "-".parse().unwrap();
    assert_eq!(c.target, JsonLinesTarget::Stdout);
    assert_eq!(HandlerConfig::JsonLines(c).name(), "jsonl:-");
    let c: JsonLinesConfig = "/var/log/corecast.jsonl;types=switch.*;queue=50;queue-bytes=4096"
        .parse()
        .unwrap();
    assert_eq!(
        c.target,
        JsonLinesTarget::File("/var/log/corecast.jsonl".into())
    );
    assert_eq!(c.types.to_string(), "switch.*");
    assert_eq!((c.queue, c.queue_bytes), (50, 4096));
    for (value, needle) in [
        ("", "needs a path"),
        ("x.jsonl;secret=1", "unknown JSON lines option"),
        ("x.jsonl;types=nope", "nope"),
    ] {
        let err = value
            .parse::<JsonLinesConfig>()
            .expect_err(value)
            .to_string();
        assert!(err.contains(needle), "{value:?} → {err:?}");
    }
}
