//! DynamoDB calls in X-Ray: an interceptor on the DynamoDB client that sends, for every call
//! made while a sampled request is being served ([`crate::trace::current`]), a subsegment to
//! the X-Ray daemon (`AWS_XRAY_DAEMON_ADDRESS`, which Lambda sets when tracing is on): name
//! `DynamoDB`, the operation, table, region, HTTP status, duration including retries, and
//! whether it failed. With tracing off (no daemon address) no interceptor is installed; with an
//! unsampled request nothing is sent. A datagram that cannot be sent is dropped, as the X-Ray
//! SDKs do: tracing never fails a request.

use crate::trace::{TraceHeader, current};
use aws_sdk_dynamodb::config::interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

/// Sends DynamoDB subsegments to an X-Ray daemon.
#[derive(Debug)]
pub struct XrayCalls {
    socket: UdpSocket,
    daemon: SocketAddr,
    table: String,
    region: String,
}

/// When a call started (kept in the call's config bag between the two hooks).
#[derive(Debug, Clone, Copy)]
struct Started(f64);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// The UDP address in `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or `udp:host:port tcp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp =
        value.split_whitespace().find_map(|p| p.strip_prefix("udp:")).or_else(|| value.split_whitespace().find(|p| !p.contains("tcp:")));
    udp?.to_socket_addrs().ok()?.next()
}

impl XrayCalls {
    /// An interceptor sending to `daemon`.
    pub fn to(daemon: SocketAddr, table: &str, region: &str) -> Option<XrayCalls> {
        let bind: SocketAddr = if daemon.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind).ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(XrayCalls { socket, daemon, table: table.to_string(), region: region.to_string() })
    }

    /// The daemon's wire format: a header line, then the subsegment document.
    fn datagram(&self, trace: &TraceHeader, operation: &str, (start, end): (f64, f64), status: Option<u16>, failed: bool) -> String {
        let id: String = crate::crypto::random_bytes(8).iter().map(|b| format!("{b:02x}")).collect();
        let doc = serde_json::json!({
            "type": "subsegment", "id": id, "trace_id": trace.root, "parent_id": trace.parent,
            "name": "DynamoDB", "namespace": "aws", "start_time": start, "end_time": end,
            "aws": {"operation": operation, "table_name": self.table, "region": self.region},
            "http": {"response": {"status": status}},
            "error": status.is_some_and(|s| (400..500).contains(&s)),
            "fault": failed && !status.is_some_and(|s| (400..500).contains(&s)),
        });
        format!("{{\"format\": \"json\", \"version\": 1}}\n{}", crate::json_text(&doc))
    }
}

impl Intercept for XrayCalls {
    fn name(&self) -> &'static str {
        "XrayCalls"
    }

    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        if current().is_some() {
            cfg.interceptor_state().store_put(Started(now()));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(trace), Some(Started(start))) = (current(), cfg.load::<Started>().copied()) else {
            return Ok(());
        };
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_else(|| "unknown".into());
        let status = ctx.response().map(|r| r.status().as_u16());
        let failed = ctx.output_or_error().is_none_or(|r| r.is_err());
        let _ = self.socket.send_to(self.datagram(&trace, &operation, (start, now()), status, failed).as_bytes(), self.daemon);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_addresses_in_both_forms() {
        assert_eq!(daemon_address("169.254.79.129:2000"), Some("169.254.79.129:2000".parse().unwrap()));
        assert_eq!(daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"), Some("127.0.0.2:2001".parse().unwrap()));
        assert_eq!(daemon_address("nonsense"), None);
    }
}
