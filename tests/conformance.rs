//! Forwarding conformance (issue #9), one file per concern, each test over
//! real sockets against the in-process upstream (`fakeup`) and its odd
//! modes: retransmits and failures, opaque answers and EDNS fallback, header
//! bits and EDNS of every reply, TCP per RFC 7766, and replies from the
//! address a query was sent to (in a network namespace).

/// Shared config and raw-query helpers.
mod common;
/// Header bits, AD, BADVERS and the OPT of every reply.
mod header;
/// Replies from the address the query was sent to, in a network namespace.
mod source_address;
/// Pipelined TCP queries: concurrency and a clean close at the cap.
mod tcp;
/// Retransmits, the budget, failure texts and logs, opaque answers, EDNS fallback.
mod upstream;
