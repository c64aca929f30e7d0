//! Lambda for the `groups-get` routes of the route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run("groups-get").await
}
