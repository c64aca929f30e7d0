//! Lambda: EventBridge Pipes enrichment, table stream records → SCIM change events.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scim_functions::events::run().await
}
