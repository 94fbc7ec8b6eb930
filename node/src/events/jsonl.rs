//! The JSON lines worker: one envelope per line, appended to a file or written to stdout.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use super::config::{JsonLinesConfig, JsonLinesTarget};
use super::handler::Shared;

/// How much one write gathers at most, so a long backlog is written in bounded chunks and the
/// deadline is re-checked between them.
const CHUNK_BYTES: usize = 1 << 20;

enum Output {
    Stdout,
    File(File),
}

pub(crate) struct JsonLines {
    output: Output,
    name: String,
    shared: Arc<Shared>,
}

impl JsonLines {
    /// Opens the file (created if missing, appended to) now, so a bad path fails start-up.
    pub fn open(config: &JsonLinesConfig, name: String, shared: Arc<Shared>) -> io::Result<Self> {
        let output = match &config.target {
            JsonLinesTarget::Stdout => Output::Stdout,
            JsonLinesTarget::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                Output::File(file)
            }
        };
        Ok(JsonLines {
            output,
            name,
            shared,
        })
    }

    /// The worker thread's body: write whatever is queued, park when nothing is, exit once
    /// shutdown has begun and the queue is empty (or its deadline has passed).
    pub fn run(mut self) {
        let mut chunk: Vec<u8> = Vec::new();
        let mut failing = false;
        while !self.shared.past_deadline() {
            let mut lines = 0;
            while chunk.len() < CHUNK_BYTES {
                let Some(line) = self.shared.pop() else {
                    break;
                };
                chunk.extend_from_slice(line.as_bytes());
                chunk.push(b'\n');
                lines += 1;
            }
            if lines == 0 {
                if self.shared.stop_at().is_some() {
                    break;
                }
                self.shared.park_until(None);
                continue;
            }
            match self.write(&chunk) {
                Ok(()) => {
                    Shared::add(&self.shared.delivered, lines);
                    failing = false;
                }
                Err(e) => {
                    Shared::add(&self.shared.dropped, lines);
                    Shared::add(&self.shared.failed_batches, 1);
                    // One warning per outage, not one per chunk (a full disk would flood logs).
                    if !failing {
                        tracing::warn!(handler = %self.name, error = %e, "event write failed");
                    }
                    failing = true;
                }
            }
            chunk.clear();
        }
        self.shared.drop_queued();
    }

    /// Writes whole lines with one `write_all`, so on stdout they never interleave with other
    /// writers' output (the stdout lock is held for the whole chunk).
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.output {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(chunk)?;
                out.flush()
            }
            Output::File(file) => file.write_all(chunk),
        }
    }
}
