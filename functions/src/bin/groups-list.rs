//! Lambda for the `groups-list` routes of the route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run("groups-list").await
}
