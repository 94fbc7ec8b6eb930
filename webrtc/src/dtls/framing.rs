//! Record framing of one datagram, checked before dimpl sees it so that drops have reasons.
//!
//! Only headers are read: DTLSPlaintext (RFC 6347 §4.1, 13 octets) and DTLS 1.3's unified
//! header (RFC 9147 §4). Contents are dimpl's to parse.

use super::DtlsError;

const PLAINTEXT_HEADER: usize = 13;

/// `Ok` when every record in `datagram` is framed as DTLS (or the rest is a DTLS 1.3 record
/// whose connection id this check cannot size: dimpl decides on those).
pub(crate) fn check_datagram(datagram: &[u8]) -> Result<(), DtlsError> {
    let first = *datagram.first().ok_or(DtlsError::EmptyDatagram)?;
    if !(20..=63).contains(&first) {
        return Err(DtlsError::NotDtls);
    }
    let mut rest = datagram;
    while let Some(&kind) = rest.first() {
        rest = match kind {
            // change_cipher_spec, alert, handshake, application_data, ack (RFC 9147 §7).
            20..=23 | 26 => plaintext_record(rest)?,
            32..=63 => match unified_record(rest)? {
                Some(after) => after,
                None => return Ok(()),
            },
            // Heartbeat, tls12_cid (never negotiated here) and unassigned types; a record
            // within a datagram that starts outside 20..=63 is not DTLS either.
            _ => return Err(DtlsError::UnknownContentType),
        };
    }
    Ok(())
}

/// The first octet (content type, or unified header flags) of each record in a datagram that
/// [`check_datagram`] accepted; it stops at anything it cannot frame.
pub(crate) fn records(datagram: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut rest = Some(datagram);
    std::iter::from_fn(move || {
        let current = rest?;
        let kind = *current.first()?;
        rest = match kind {
            20..=23 | 26 => plaintext_record(current).ok(),
            32..=63 => unified_record(current).ok().flatten(),
            _ => None,
        };
        Some(kind)
    })
}

/// The bytes after one DTLSPlaintext record.
fn plaintext_record(rest: &[u8]) -> Result<&[u8], DtlsError> {
    if rest.len() < PLAINTEXT_HEADER {
        return Err(DtlsError::TruncatedRecord);
    }
    if rest[1] != 0xfe {
        return Err(DtlsError::BadRecordVersion);
    }
    let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
    rest.get(PLAINTEXT_HEADER + len..)
        .ok_or(DtlsError::TruncatedRecord)
}

/// The bytes after one DTLS 1.3 ciphertext record (`001CSLEE`), or `None` when its extent
/// cannot be known here (a connection id, which corecast never negotiates).
fn unified_record(rest: &[u8]) -> Result<Option<&[u8]>, DtlsError> {
    let flags = rest[0];
    if flags & 0x10 != 0 {
        return Ok(None);
    }
    let seq_len = if flags & 0x08 != 0 { 2 } else { 1 };
    let header = 1 + seq_len;
    if flags & 0x04 == 0 {
        // No length field: the record is the rest of the datagram.
        return if rest.len() > header {
            Ok(Some(&[]))
        } else {
            Err(DtlsError::TruncatedRecord)
        };
    }
    let len_at = rest
        .get(header..header + 2)
        .ok_or(DtlsError::TruncatedRecord)?;
    let len = usize::from(u16::from_be_bytes([len_at[0], len_at[1]]));
    rest.get(header + 2 + len..)
        .map(Some)
        .ok_or(DtlsError::TruncatedRecord)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn well_framed_records_pass() {
        let mut two = record(22, &[1, 2, 3]);
        two.extend(record(20, &[1]));
        assert_eq!(check_datagram(&two), Ok(()));
        assert_eq!(check_datagram(&record(23, &[])), Ok(()));
        // Unified header, 16-bit sequence, with length.
        assert_eq!(check_datagram(&[0x2c, 0, 1, 0, 2, 9, 9]), Ok(()));
        // Unified header without length: the rest of the datagram.
        assert_eq!(check_datagram(&[0x20, 7, 9, 9, 9]), Ok(()));
    }

    #[test]
    fn records_yields_each_record_type_in_order() {
        let mut flight = record(22, &[1, 2, 3]);
        flight.extend(record(20, &[1]));
        flight.extend(record(22, &[9; 40]));
        assert_eq!(records(&flight).collect::<Vec<_>>(), vec![22, 20, 22]);
        let mut mixed = record(21, &[2, 0]);
        mixed.extend([0x2c, 0, 1, 0, 2, 9, 9]);
        assert_eq!(records(&mixed).collect::<Vec<_>>(), vec![21, 0x2c]);
        assert_eq!(records(&[]).count(), 0);
    }

    #[test]
    fn each_framing_fault_has_its_reason() {
        let good = record(22, &[1, 2, 3, 4]);
        let mut trailing_garbage = good.clone();
        trailing_garbage.push(0x99);
        let mut bad_version = good.clone();
        bad_version[1] = 0x03;
        for (bytes, reason) in [
            (&[][..], "empty_datagram"),
            (&[0x00, 1, 2][..], "not_dtls"),
            (&[0x80, 96, 0, 1][..], "not_dtls"),
            (&[64][..], "not_dtls"),
            (&good[..12], "truncated_record"),
            (&good[..good.len() - 1], "truncated_record"),
            (&trailing_garbage[..], "unknown_content_type"),
            (&record(24, &[1])[..], "unknown_content_type"),
            (&bad_version[..], "bad_record_version"),
            (&[0x2c, 0, 1, 0, 9, 1][..], "truncated_record"),
            (&[0x20, 7][..], "truncated_record"),
        ] {
            assert_eq!(
                check_datagram(bytes).map_err(|e| e.reason()),
                Err(reason),
                "{bytes:02x?}"
            );
        }
    }
}
