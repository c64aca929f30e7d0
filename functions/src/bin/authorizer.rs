//! Lambda REQUEST authorizer: bearer API key → tenant, role, allowed routes.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    scim_functions::authorizer::run().await
}
