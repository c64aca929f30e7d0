//! Lambda for the `users-create` routes of the route table.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    scim_functions::lambda::run("users-create").await
}
