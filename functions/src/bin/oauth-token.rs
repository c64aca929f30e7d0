//! Lambda for the OAuth 2.0 token endpoint (`POST /oauth2/token`) and its discovery documents.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run_token().await
}
