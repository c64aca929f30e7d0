//! Lambda for the `bulk` routes of the route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run("bulk").await
}
