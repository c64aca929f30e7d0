//! The tenant a piece of work acts for. The layers above say it once a request's tenant is
//! known ([`acting_for`]: the routes from their principal, authentication once the key names
//! its tenant); the DynamoDB store then makes every call of that work with credentials that
//! reach only that tenant's items (see `dynamo::TenantSessions`), so a key built for another
//! tenant by mistake is refused by IAM, not only avoided by code. Work outside any scope (the
//! key lookup before the tenant is known, the operator's tools) uses the process's own
//! credentials. The embedded store has one owner and ignores the scope.

use std::future::Future;

tokio::task_local! {
    static TENANT: std::sync::Arc<str>;
}

/// Runs `work` acting for `tenant`. A scope inside another one replaces it for its own work.
pub async fn acting_for<F: Future>(tenant: &str, work: F) -> F::Output {
    TENANT.scope(std::sync::Arc::from(tenant), work).await
}

/// The tenant the current work acts for, when it is scoped.
pub fn tenant() -> Option<std::sync::Arc<str>> {
    TENANT.try_with(|t| t.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_knows_its_tenant_only_inside_its_scope() {
        assert_eq!(tenant(), None);
        let inner = acting_for("acme", async { (tenant(), acting_for("globex", async { tenant() }).await, tenant()) }).await;
        assert_eq!(inner, (Some("acme".into()), Some("globex".into()), Some("acme".into())));
        assert_eq!(tenant(), None);
    }
}
