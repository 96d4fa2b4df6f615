//! The last step of a query, after the reply has gone: metrics, then the
//! client table, then the query log. Nothing here can delay an answer.

use super::{Answered, Outcome};
use crate::config::{Action, LogEvents};
use crate::metrics::Dropped;
use crate::policy::Verdict;
use crate::querylog::Record;
use crate::runtime::State;
use crate::wire;

/// After the reply is sent: metrics, then the client table, then the query
/// log. Nothing here can delay the answer: it has already gone.
pub fn observe(state: &State, reply: Option<&[u8]>, out: Outcome) {
    let m = &state.metrics;
    if let Some(bytes) = reply {
        m.rcode(wire::rcode(bytes));
    }
    match (out.answered, reply) {
        (Answered::Dropped, _) => m.dropped(Dropped::QrSet),
        (Answered::Refused, None) => m.dropped(Dropped::Access),
        (Answered::Cached, _) => m.cache_hits.increment(1),
        (Answered::Forwarded | Answered::Failed, _) => m.cache_misses.increment(1),
        _ => {}
    }
    let elapsed = out.start.elapsed();
    m.duration(out.answered, elapsed.as_secs_f64());
    let (Some(runtime), Some(verdict)) = (&out.runtime, out.verdict) else {
        return;
    };
    let counters = &runtime.counters;
    counters.query(out.network, verdict, out.protocol);
    let now = out.time;
    if let (Some(net), Some((list, category, _))) = (out.network, &out.matched) {
        if let Some((rule, _)) = out.rule {
            let action = match verdict {
                Verdict::Block => Action::Block,
                Verdict::Log => Action::Log,
                _ => Action::Allow,
            };
            counters.matched(net, rule, *list, *category, action);
            if out.unclassified {
                counters.unclassified(*list, *category, action);
            }
        }
        if runtime.policy.config.lists[*list].tracked {
            let client = out.client.ip().to_canonical();
            state
                .clients
                .record(&runtime.network_names[net], client, *category, verdict, now);
            let rule = out
                .rule
                .map(|(r, _)| runtime.policy.config.rules[r].name.as_str());
            let name = out.question.as_deref().map(crate::querylog::question_name);
            state.activity.record(verdict, *category, now, || {
                crate::activity::lookup(
                    &runtime.network_names[net],
                    client,
                    name,
                    verdict,
                    *category,
                    rule,
                    now,
                )
            });
        }
    }
    let Some(log) = &state.query_log else {
        return;
    };
    if runtime.policy.config.query_log.events == LogEvents::Matched
        && !matches!(verdict, Verdict::Log | Verdict::Block)
    {
        return;
    }
    let Some(question) = out.question else {
        return;
    };
    log.send(Record {
        time: now,
        runtime: runtime.clone(),
        client: out.client,
        protocol: out.protocol,
        question,
        verdict,
        network: out.network,
        rule: out.rule,
        matched: out.matched,
        rcode: reply.map(wire::rcode),
        duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        upstream: out.upstream,
        cached: out.answered == Answered::Cached,
        unclassified: out.unclassified,
    });
}
