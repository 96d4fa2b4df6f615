//! What one query is, as every step sees it: the question view that `wire`
//! reads from the query's bytes, the transport it came over, and how it was
//! answered. A leaf: it imports nothing from the crate, so `pipeline`,
//! `metrics` and `querylog` can all depend on it without depending on each
//! other.

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP: answers are limited to the client's EDNS size.
    Udp,
    /// TCP.
    Tcp,
    /// DNS over TLS (RFC 7858): TCP framing inside a TLS session.
    Dot,
    /// DNS over HTTPS (RFC 8484): one message per HTTP request.
    Doh,
}

impl Protocol {
    /// Every protocol, in label order (metrics pre-create one series each).
    pub const ALL: [Self; 4] = [Self::Udp, Self::Tcp, Self::Dot, Self::Doh];

    /// `udp`, `tcp`, `dot` or `doh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Dot => "dot",
            Self::Doh => "doh",
        }
    }

    /// The protocol named `word`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == word)
    }
}

/// How a query was answered (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// No answer at all (QR=1 packets, dropped clients).
    Dropped,
    /// Answered locally without a policy decision (malformed, ANY, errors).
    Local,
    /// Refused by `access`.
    Refused,
    /// Blocked by a rule.
    Blocked,
    /// Served from the cache.
    Cached,
    /// Forwarded to an upstream.
    Forwarded,
    /// No upstream answered.
    Failed,
}

impl Answered {
    /// Every way, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::Dropped,
        Self::Local,
        Self::Refused,
        Self::Blocked,
        Self::Cached,
        Self::Forwarded,
        Self::Failed,
    ];

    /// The word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dropped => "dropped",
            Self::Local => "local",
            Self::Refused => "refused",
            Self::Blocked => "blocked",
            Self::Cached => "cached",
            Self::Forwarded => "forwarded",
            Self::Failed => "failed",
        }
    }

    /// The way named `word`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == word)
    }
}

/// A query's EDNS (its OPT record), as the query path needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The client's UDP payload size.
    pub size: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The EDNS version (only 0 is served; above it gets BADVERS).
    pub version: u8,
}

/// One query's question, read from its bytes without allocating: exactly
/// one question with an uncompressed name, no records but an optional
/// OPT. `wire::parse_query` reads it; a query it declines is re-encoded
/// into bytes it reads (`wire::canonical`), so every query that is served
/// is served from this view.
#[derive(Clone, Copy, Debug)]
pub struct Question<'p> {
    /// The whole packet.
    pub packet: &'p [u8],
    /// The ID.
    pub id: u16,
    /// The opcode (only QUERY, 0, is served; others get NOTIMP).
    pub opcode: u8,
    /// End of the question name (after its root label).
    pub name_end: usize,
    /// End of the question section.
    pub question_end: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

impl<'p> Question<'p> {
    /// The question name's labels, as on the wire (none for the root).
    pub fn labels(&self) -> impl Iterator<Item = &'p [u8]> + 'p {
        let p = self.packet;
        let end = self.name_end;
        let mut at = 12;
        std::iter::from_fn(move || {
            let len = usize::from(*p.get(at)?);
            let label = p.get(at.checked_add(1)?..at.checked_add(1 + len)?)?;
            if len == 0 || at + 1 + len > end {
                return None;
            }
            at += 1 + len;
            Some(label)
        })
    }

    /// The question section's bytes.
    pub fn question(&self) -> &'p [u8] {
        self.packet.get(12..self.question_end).unwrap_or_default()
    }

    /// Bytes 2 and 3 of the header (QR opcode AA TC RD, RA Z AD CD rcode).
    pub fn flag_bytes(&self) -> (u8, u8) {
        match *self.packet {
            [_, _, b2, b3, ..] => (b2, b3),
            _ => (0, 0),
        }
    }

    /// RD and CD of the query.
    pub fn flags(&self) -> (bool, bool) {
        let (b2, b3) = self.flag_bytes();
        (b2 & 0x01 != 0, b3 & 0x10 != 0)
    }

    /// The AD bit of the query (RFC 6840 §5.7: "I understand AD").
    pub fn authentic_data(&self) -> bool {
        self.flag_bytes().1 & 0x20 != 0
    }

    /// The DO bit (false without EDNS).
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }

    /// The largest answer the client can take over `protocol` (RFC 6891;
    /// never more than `max_udp` bytes over UDP, DNS Flag Day 2020).
    pub fn limit(&self, protocol: Protocol, max_udp: u16) -> usize {
        match (protocol, self.edns) {
            (Protocol::Tcp | Protocol::Dot | Protocol::Doh, _) => usize::from(u16::MAX),
            (Protocol::Udp, None) => 512,
            (Protocol::Udp, Some(e)) => usize::from(e.size.clamp(512, max_udp.max(512))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_and_way_reads_back_from_its_word() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::parse(p.as_str()), Some(p));
        }
        for a in Answered::ALL {
            assert_eq!(Answered::parse(a.as_str()), Some(a));
        }
        assert_eq!(Protocol::parse("quic"), None);
    }

    #[test]
    fn the_answer_limit_follows_the_transport_and_the_clients_edns() {
        let packet = [0u8; 17];
        let mut q = Question {
            packet: &packet,
            id: 0,
            opcode: 0,
            name_end: 13,
            question_end: 17,
            qtype: 1,
            qclass: 1,
            edns: None,
        };
        assert_eq!(q.limit(Protocol::Udp, 1232), 512);
        assert_eq!(q.limit(Protocol::Tcp, 1232), 65535);
        for (size, limit) in [(100, 512), (1000, 1000), (4096, 1232)] {
            q.edns = Some(Edns {
                size,
                dnssec_ok: false,
                version: 0,
            });
            assert_eq!(q.limit(Protocol::Udp, 1232), limit);
        }
        assert_eq!(q.labels().count(), 0, "the root has no labels");
    }
}
