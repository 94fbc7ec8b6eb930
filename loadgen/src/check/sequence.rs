//! Sequence numbers and timestamps of one received RTP stream, extended to 64 bits: what both
//! the load generator's verifier and `corecast check` need to tell loss, duplicates and
//! reordering apart.

/// Sequence numbers remembered behind the highest, to tell duplicates from late packets.
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;
/// Extended numbers start here so that early reordering never goes below zero.
const BASE: u64 = 1 << 32;

/// Where an arriving sequence number falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Higher than any before (or the first); `skipped` numbers between it and the highest
    /// before it have not arrived (yet).
    Ahead {
        skipped: u64,
    },
    Duplicate,
    /// Lower than the highest, not seen before: it fills a gap. A packet older than the window
    /// is counted here too, since it cannot be told from a duplicate.
    Reordered,
}

/// The sequence numbers of one stream seen so far: the highest and lowest, how many distinct
/// ones, and which of the last [`WINDOW`] arrived.
#[derive(Clone, Debug)]
pub struct SeqWindow {
    started: bool,
    highest: u64,
    lowest: u64,
    unique: u64,
    window: Box<[u64; WORDS]>,
}

impl Default for SeqWindow {
    fn default() -> SeqWindow {
        SeqWindow::new()
    }
}

impl SeqWindow {
    pub fn new() -> SeqWindow {
        SeqWindow {
            started: false,
            highest: 0,
            lowest: 0,
            unique: 0,
            window: Box::new([0; WORDS]),
        }
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Sequence numbers from the lowest received to the highest, both included (0 before any).
    pub fn span(&self) -> u64 {
        if self.started {
            self.highest - self.lowest + 1
        } else {
            0
        }
    }

    /// Sequence numbers missing between the lowest and highest received so far.
    pub fn missing(&self) -> u64 {
        self.span().saturating_sub(self.unique)
    }

    fn bit(&mut self, ext: u64) -> (&mut u64, u64) {
        let i = ext % WINDOW;
        (&mut self.window[(i / 64) as usize], 1u64 << (i % 64))
    }

    /// Record `seq` and say where it falls. The 16-bit number is extended to the one nearest
    /// the highest so far, so wrapping at 65535 is plain counting.
    pub fn place(&mut self, seq: u16) -> Place {
        if !self.started {
            self.started = true;
            self.highest = BASE + u64::from(seq);
            self.lowest = self.highest;
            self.unique += 1;
            let (w, m) = self.bit(self.highest);
            *w |= m;
            return Place::Ahead { skipped: 0 };
        }
        let delta = seq.wrapping_sub(self.highest as u16) as i16;
        let ext = self.highest.wrapping_add_signed(i64::from(delta));
        if ext > self.highest {
            let skipped = ext - self.highest - 1;
            if ext - self.highest >= WINDOW {
                self.window.fill(0);
            } else {
                for s in self.highest + 1..ext {
                    let (w, m) = self.bit(s);
                    *w &= !m;
                }
            }
            self.highest = ext;
            let (w, m) = self.bit(ext);
            *w |= m;
            self.unique += 1;
            return Place::Ahead { skipped };
        }
        if self.highest - ext >= WINDOW {
            self.lowest = self.lowest.min(ext);
            self.unique += 1;
            return Place::Reordered;
        }
        let (w, m) = self.bit(ext);
        if *w & m != 0 {
            return Place::Duplicate;
        }
        *w |= m;
        self.lowest = self.lowest.min(ext);
        self.unique += 1;
        Place::Reordered
    }
}

/// Extended timestamps start here: they may go back as far as forward.
pub const TIMESTAMP_BASE: u64 = BASE;

/// `ts` extended to 64 bits next to `last`, an extended timestamp: RTP timestamps are compared
/// modulo 2^32, the nearer way round, so a step of 2^31 or more backwards reads as forwards.
pub fn extend_timestamp(last: u64, ts: u32) -> u64 {
    let delta = ts.wrapping_sub(last as u32) as i32;
    last.wrapping_add_signed(i64::from(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_and_gaps_close_when_late_packets_come() {
        let mut w = SeqWindow::new();
        assert_eq!(w.place(65534), Place::Ahead { skipped: 0 });
        assert_eq!(w.place(65535), Place::Ahead { skipped: 0 });
        assert_eq!(w.place(2), Place::Ahead { skipped: 2 });
        assert_eq!((w.span(), w.unique(), w.missing()), (5, 3, 2));
        assert_eq!(w.place(0), Place::Reordered);
        assert_eq!(w.place(0), Place::Duplicate);
        assert_eq!(w.place(1), Place::Reordered);
        assert_eq!(w.missing(), 0);
        // Before the first: reordered, and the span grows down.
        assert_eq!(w.place(65533), Place::Reordered);
        assert_eq!((w.span(), w.missing()), (6, 0));
    }

    #[test]
    fn timestamps_compare_the_nearer_way_round() {
        let start = TIMESTAMP_BASE + u64::from(u32::MAX - 10);
        assert_eq!(extend_timestamp(start, 5), start + 16);
        assert_eq!(extend_timestamp(start, u32::MAX - 20), start - 10);
        assert_eq!(extend_timestamp(start + 16, u32::MAX), start + 10);
    }
}
