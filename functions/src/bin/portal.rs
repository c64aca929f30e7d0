//! Lambda for the setup portal (`/portal`, its assets and `/portal/api/…`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run_portal().await
}
