//! One event and its JSON envelope.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::types::EventType;

/// Something that happened on the node, as handed to [`EventBus::emit`](super::EventBus::emit).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// When, in microseconds since the Unix epoch (wall clock: receivers correlate events across
    /// machines, which a monotonic clock cannot do).
    pub timestamp_us: u64,
    /// The source concerned, if any.
    pub source: Option<u32>,
    /// The subscriber concerned, if any.
    pub subscriber: Option<u32>,
    /// Type-specific details; an object (`{}` when there are none).
    pub data: Value,
}

impl Event {
    /// An event of `kind` that happened at `now`, with no source, subscriber or data.
    pub fn new(kind: EventType, now: SystemTime) -> Event {
        Event {
            kind,
            // A clock set before 1970 is a broken clock; 0 says so without failing the emitter.
            timestamp_us: now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            source: None,
            subscriber: None,
            data: Value::Object(serde_json::Map::new()),
        }
    }

    /// An event of `kind` that happens now (reads the wall clock).
    pub fn now(kind: EventType) -> Event {
        Event::new(kind, SystemTime::now())
    }

    /// The event about source `id`.
    #[must_use]
    pub fn with_source(mut self, id: u32) -> Event {
        self.source = Some(id);
        self
    }

    /// The event about subscriber `id`.
    #[must_use]
    pub fn with_subscriber(mut self, id: u32) -> Event {
        self.subscriber = Some(id);
        self
    }

    /// The event with `data` as its details (should be a JSON object).
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Event {
        self.data = data;
        self
    }

    /// The envelope every handler sends, as one line of JSON (no newline):
    /// `{"type":..,"timestamp":..,"node":..,"source"?:..,"subscriber"?:..,"data":{..}}`.
    pub fn to_envelope(&self, node: &str) -> String {
        let empty = serde_json::Map::new();
        let envelope = Envelope {
            kind: self.kind.name(),
            timestamp: self.timestamp_us,
            node,
            source: self.source,
            subscriber: self.subscriber,
            data: match &self.data {
                // Receivers can rely on `data` being an object whatever the emitter passed.
                Value::Null => DataRef::Map(&empty),
                other => DataRef::Value(other),
            },
        };
        // Serializing plain strings, integers and a `Value` cannot fail.
        serde_json::to_string(&envelope).expect("event envelope serializes")
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: u64,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriber: Option<u32>,
    data: DataRef<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum DataRef<'a> {
    Map(&'a serde_json::Map<String, Value>),
    Value(&'a Value),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn envelope_fields() {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let e = Event::new(EventType::SwitchCompleted, at)
            .with_source(2)
            .with_subscriber(7)
            .with_data(json!({"from": 1, "to": 2}));
        let text = e.to_envelope("edge-1");
        assert!(!text.contains('\n'));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "type": "switch.completed",
                "timestamp": 1_700_000_000_123_456u64,
                "node": "edge-1",
                "source": 2,
                "subscriber": 7,
                "data": {"from": 1, "to": 2},
            })
        );
        // `type` comes first so a human reading a log line sees what it is at once.
        assert!(text.starts_with(r#"{"type":"switch.completed","#), "{text}");
    }

    #[test]
    fn absent_ids_are_omitted_and_data_is_an_object() {
        let e = Event::new(EventType::NodeStarted, UNIX_EPOCH + Duration::from_secs(1));
        let v: Value = serde_json::from_str(&e.to_envelope("n")).unwrap();
        assert_eq!(
            v,
            json!({"type": "node.started", "timestamp": 1_000_000, "node": "n", "data": {}})
        );

        let e = e.with_data(Value::Null);
        let v: Value = serde_json::from_str(&e.to_envelope("n")).unwrap();
        assert_eq!(v["data"], json!({}));
    }

    #[test]
    fn node_name_is_escaped() {
        let e = Event::new(EventType::Stats, UNIX_EPOCH);
        let v: Value = serde_json::from_str(&e.to_envelope("a \"quoted\"\nname")).unwrap();
        assert_eq!(v["node"], "a \"quoted\"\nname");
        assert_eq!(v["timestamp"], 0);
    }

    #[test]
    fn now_reads_the_clock() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let e = Event::now(EventType::Drops);
        assert!(e.timestamp_us >= before);
        assert_eq!(e.kind, EventType::Drops);
    }
}
