//! Lambda for the `groups-search` routes of the route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run("groups-search").await
}
