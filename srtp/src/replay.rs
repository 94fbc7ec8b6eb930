//! The replay window of RFC 3711 §3.3.2, 128 packets wide (the RFC asks for at least 64).

use crate::Error;

/// Which of the last [`ReplayWindow::WIDTH`] indices below the highest have been accepted.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted so far; `None` before the first packet.
    highest: Option<u64>,
    /// Bit `n` set: index `highest - n` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// How far below the highest index a late packet is still accepted.
    pub(crate) const WIDTH: u64 = 128;

    pub(crate) fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `index` may be accepted (checked before authentication, so it is cheap).
    pub(crate) fn check(&self, index: u64) -> Result<(), Error> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= Self::WIDTH {
            return Err(Error::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(Error::Replayed);
        }
        Ok(())
    }

    /// Record `index` as accepted; only after the packet authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        match self.highest {
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
            Some(highest) if index > highest => {
                let ahead = index - highest;
                self.seen = if ahead >= Self::WIDTH {
                    0
                } else {
                    self.seen << ahead
                } | 1;
                self.highest = Some(index);
            }
            Some(highest) => {
                let behind = highest - index;
                if behind < Self::WIDTH {
                    self.seen |= 1u128 << behind;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reordered_rejects_duplicates_and_stale() {
        let mut w = ReplayWindow::default();
        for i in [10u64, 12, 11, 200] {
            w.check(i).expect("new index");
            w.accept(i);
        }
        assert_eq!(w.check(200), Err(Error::Replayed));
        assert_eq!(w.check(12), Err(Error::TooOld));
        w.check(199).expect("inside the window, not seen");
        w.accept(199);
        assert_eq!(w.check(199), Err(Error::Replayed));
        w.check(200 - 127)
            .expect("oldest index the window still covers");
        assert_eq!(w.check(200 - 128), Err(Error::TooOld));
    }
}
