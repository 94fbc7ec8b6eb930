//! Port ranges, as the command line writes them.

use std::fmt;
use std::str::FromStr;

/// An inclusive UDP port range, written `LO-HI`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub lo: u16,
    /// The last port (inclusive).
    pub hi: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a port range like 40000-40999"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port number"))
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo == 0 || lo > hi {
            return Err(format!("port range {lo}-{hi} is empty or starts at 0"));
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_and_print_as_lo_dash_hi() {
        let r: PortRange = "40000 - 40999".parse().unwrap();
        assert_eq!(
            r,
            PortRange {
                lo: 40000,
                hi: 40999
            }
        );
        assert_eq!(r.to_string(), "40000-40999");
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("10-9".parse::<PortRange>().is_err());
        assert!("10".parse::<PortRange>().is_err());
        assert!("10-70000".parse::<PortRange>().is_err());
    }
}
