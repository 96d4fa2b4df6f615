//! Reading an answer's records at the wire level: owner, type, class, TTL
//! and RDATA range of every record, and names inside RDATA (CNAME targets)
//! with their compression pointers followed.
//!
//! Sits under `cache`: an upstream answer is read here once when it
//! arrives, so its TTLs, rcode, CNAME targets and addresses are known
//! without hickory-proto's full parse, which refuses answers that clients
//! and other resolvers accept (empty RDATA, unknown types, two OPTs).

use std::ops::Range;

use super::skip_name;

/// The section a record is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer,
    /// Authority.
    Authority,
    /// Additional.
    Additional,
}

/// One resource record, as offsets into its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The section it is in.
    pub section: Section,
    /// TYPE.
    pub rtype: u16,
    /// CLASS (for OPT: the UDP payload size).
    pub class: u16,
    /// TTL (for OPT: extended rcode, version and flags).
    pub ttl: u32,
    /// Where its RDATA is.
    pub rdata: Range<usize>,
}

/// Every record of `msg` after its question section, in order; `None` when
/// a count, name or length runs past the end.
pub fn records(msg: &[u8]) -> Option<Vec<Record>> {
    let count = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *msg.get(i)?,
            *msg.get(i + 1)?,
        ])))
    };
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)?.checked_add(4)?;
    }
    let mut out = Vec::with_capacity(an + ns + ar);
    for i in 0..an + ns + ar {
        let section = if i < an {
            Section::Answer
        } else if i < an + ns {
            Section::Authority
        } else {
            Section::Additional
        };
        at = skip_name(msg, at)?;
        let fixed: [u8; 10] = msg.get(at..at.checked_add(10)?)?.try_into().ok()?;
        let [t0, t1, c0, c1, l0, l1, l2, l3, r0, r1] = fixed;
        let start = at + 10;
        let end = start + usize::from(u16::from_be_bytes([r0, r1]));
        if end > msg.len() {
            return None;
        }
        out.push(Record {
            section,
            rtype: u16::from_be_bytes([t0, t1]),
            class: u16::from_be_bytes([c0, c1]),
            ttl: u32::from_be_bytes([l0, l1, l2, l3]),
            rdata: start..end,
        });
        at = end;
    }
    Some(out)
}

/// The name at `at`, lowercased, its labels joined with dots and no
/// trailing dot (the form the policy matches), following compression
/// pointers; `None` for the root, a pointer that does not point backwards,
/// a name longer than 255 bytes on the wire or one running past `limit`
/// (the end of the RDATA holding it).
pub fn name_text(msg: &[u8], mut at: usize, limit: usize) -> Option<Box<[u8]>> {
    let mut out = Vec::new();
    let mut wire_len = 0usize;
    let mut limit = limit.min(msg.len());
    loop {
        let len = *msg.get(at).filter(|_| at < limit)?;
        match len {
            0 => break,
            l if l & 0xc0 == 0xc0 => {
                let lo = *msg.get(at + 1).filter(|_| at + 1 < limit)?;
                let target = usize::from(u16::from_be_bytes([l & 0x3f, lo]));
                // Only backwards: a pointer loop cannot be written then.
                if target >= at {
                    return None;
                }
                limit = at;
                at = target;
            }
            l if l & 0xc0 == 0 => {
                let label = msg.get(at + 1..at + 1 + usize::from(l))?;
                if at + 1 + label.len() > limit {
                    return None;
                }
                wire_len += 1 + label.len();
                if wire_len > 254 {
                    return None;
                }
                if !out.is_empty() {
                    out.push(b'.');
                }
                // As `matcher::NameBuf` writes names: a dot inside a label
                // is not a boundary.
                out.extend(label.iter().map(|b| match b.to_ascii_lowercase() {
                    b'.' => b'\\',
                    other => other,
                }));
                at += 1 + label.len();
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| out.into_boxed_slice())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// www.example.com CNAME web.Example.com (compressed), web A 192.0.2.1.
    fn cname_answer() -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        m.extend_from_slice(b"\x03WEB\xc0\x10");
        m.extend_from_slice(&[0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        m
    }

    #[test]
    fn records_give_type_ttl_and_rdata_of_each_section() {
        let m = cname_answer();
        let r = records(&m).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].rtype, r[0].ttl, r[0].section),
            (5, 60, Section::Answer)
        );
        assert_eq!((r[1].rtype, r[1].ttl), (1, 30));
        assert_eq!(&m[r[1].rdata.clone()], &[192, 0, 2, 1]);
    }

    #[test]
    fn cname_targets_are_read_through_compression_pointers() {
        let m = cname_answer();
        let r = records(&m).unwrap();
        let t = name_text(&m, r[0].rdata.start, r[0].rdata.end).unwrap();
        assert_eq!(&*t, b"web.example.com");
    }

    #[test]
    fn forward_pointers_and_names_past_their_rdata_are_refused() {
        let mut m = cname_answer();
        let r = records(&m).unwrap();
        // The target's first label claims more bytes than the RDATA has.
        assert!(name_text(&m, r[0].rdata.start, r[0].rdata.start + 3).is_none());
        // A pointer to itself.
        let at = r[0].rdata.start + 4;
        m[at + 1] = u8::try_from(at).unwrap();
        assert!(name_text(&m, r[0].rdata.start, r[0].rdata.end).is_none());
    }

    #[test]
    fn counts_past_the_end_are_malformed() {
        let mut m = cname_answer();
        m[7] = 3;
        assert!(records(&m).is_none());
        assert!(records(&m[..5]).is_none());
    }
}
