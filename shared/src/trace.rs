//! The X-Ray trace a request belongs to: Lambda hands each invocation a trace header
//! (`Root=1-…;Parent=…;Sampled=1`); the edge runs the request inside [`within`], and the
//! DynamoDB store records its calls under it ([`current`]). No AWS type here: a header is text.

use std::future::Future;

/// A parsed X-Ray trace header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    /// `Root`: the trace id, `1-<8 hex>-<24 hex>`.
    pub root: String,
    /// `Parent`: the segment calls are recorded under (Lambda's function segment).
    pub parent: String,
    /// `Sampled=1`: only then is anything recorded.
    pub sampled: bool,
}

impl TraceHeader {
    /// Parses `Root=…;Parent=…;Sampled=…` (fields in any order, unknown ones ignored); `None`
    /// without a root or parent.
    pub fn parse(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for field in header.split(';') {
            match field.trim().split_once('=') {
                Some(("Root", v)) if !v.is_empty() => root = Some(v.to_string()),
                Some(("Parent", v)) if !v.is_empty() => parent = Some(v.to_string()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(TraceHeader { root: root?, parent: parent?, sampled })
    }
}

tokio::task_local! {
    static CURRENT: Option<TraceHeader>;
}

/// Runs `work` as part of a trace (or of none).
pub async fn within<F: Future>(header: Option<TraceHeader>, work: F) -> F::Output {
    CURRENT.scope(header, work).await
}

/// The trace of the request this task serves, when it is sampled.
pub fn current() -> Option<TraceHeader> {
    CURRENT.try_with(|h| h.clone()).ok().flatten().filter(|h| h.sampled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_and_only_sampled_ones_count() {
        let h = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
        assert_eq!((h.root.as_str(), h.parent.as_str(), h.sampled), ("1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8", true));
        assert!(!TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=0").unwrap().sampled);
        assert_eq!(TraceHeader::parse("Root=1-a-b;Sampled=1"), None);
        assert_eq!(TraceHeader::parse(""), None);
    }

    #[tokio::test]
    async fn the_trace_follows_the_task() {
        assert_eq!(current(), None);
        let sampled = TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=1");
        assert_eq!(within(sampled.clone(), async { current() }).await, sampled);
        assert_eq!(within(TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=0"), async { current() }).await, None);
    }
}
