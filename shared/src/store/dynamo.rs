//! The DynamoDB store: [`Table`] over one DynamoDB table (`pk`/`sk`, index `gsi1`, TTL attribute
//! `expires_at`). Strongly consistent reads on the primary key; multi-item writes are one
//! `TransactWriteItems`; single writes use the plain conditional call (half the write cost).

use super::{Cond, Index, Item, Query, Shared, StoreError, Table, Write};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region, timeout::TimeoutConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::time::Duration;

pub use super::sessions::SESSION_SECONDS;

/// Name of the secondary index.
pub const GSI1: &str = "gsi1";

/// Where to find the table.
#[derive(Debug, Clone)]
pub struct DynamoConfig {
    /// Name of the DynamoDB table the store reads and writes.
    pub table: String,
    /// The AWS region the table is in.
    pub region: String,
    /// A local endpoint (moto, DynamoDB Local); `None` for AWS.
    pub endpoint: Option<String>,
    /// How long one attempt of a call may take, and the call with its retries.
    pub attempt_timeout: Duration,
    /// How long one call may take, all its retries included.
    pub operation_timeout: Duration,
    /// The X-Ray daemon that gets a subsegment per call of a sampled request (`None`: none).
    pub xray_daemon: Option<std::net::SocketAddr>,
    /// The role whose tenant-tagged sessions make the calls of work acting for a tenant
    /// ([`super::scope`]); `None`: every call with the process's own credentials.
    pub tenant_role: Option<String>,
}

impl DynamoConfig {
    /// A table with the timeouts a request path wants (3 s an attempt, 8 s a call).
    pub fn new(table: impl Into<String>, region: impl Into<String>, endpoint: Option<String>) -> DynamoConfig {
        DynamoConfig {
            table: table.into(),
            region: region.into(),
            endpoint,
            attempt_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(8),
            xray_daemon: None,
            tenant_role: None,
        }
    }

    /// From the environment: `SCIM_TABLE`, `AWS_REGION` (or `AWS_DEFAULT_REGION`), optional
    /// `SCIM_DYNAMODB_ENDPOINT` (which then serves STS too), optional `SCIM_TENANT_ROLE_ARN`.
    pub fn from_env() -> Result<DynamoConfig, StoreError> {
        let table = std::env::var("SCIM_TABLE").map_err(|_| StoreError::other("SCIM_TABLE is not set"))?;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .map_err(|_| StoreError::other("AWS_REGION is not set"))?;
        let endpoint = std::env::var("SCIM_DYNAMODB_ENDPOINT").ok().filter(|s| !s.is_empty());
        // Lambda sets the daemon's address when the function's tracing is on
        let xray_daemon = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok().and_then(|a| super::xray::daemon_address(&a));
        let tenant_role = std::env::var("SCIM_TENANT_ROLE_ARN").ok().filter(|s| !s.is_empty());
        Ok(DynamoConfig { xray_daemon, tenant_role, ..DynamoConfig::new(table, region, endpoint) })
    }
}

/// A table in DynamoDB.
#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    sessions: Option<std::sync::Arc<super::sessions::TenantSessions>>,
    table: String,
    /// Capacity units DynamoDB reported (`ReturnConsumedCapacity`), thousandths: reads, writes.
    consumed: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
}

impl DynamoTable {
    /// Builds the client once (region explicit, credentials from the environment, no instance
    /// metadata probing). Local endpoints get placeholder credentials when none are set.
    pub fn connect(cfg: &DynamoConfig) -> Result<DynamoTable, StoreError> {
        let key = std::env::var("AWS_ACCESS_KEY_ID").ok();
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
        let token = std::env::var("AWS_SESSION_TOKEN").ok();
        let creds = match (key, secret, &cfg.endpoint) {
            (Some(k), Some(s), _) => aws_credential_types::Credentials::new(k, s, token, None, "environment"),
            (_, _, Some(_)) => aws_credential_types::Credentials::new("local", "local", None, None, "local-endpoint"),
            _ => {
                return Err(StoreError::other("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set"));
            }
        };
        let mut b = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(creds.clone())
            .timeout_config(
                TimeoutConfig::builder().operation_attempt_timeout(cfg.attempt_timeout).operation_timeout(cfg.operation_timeout).build(),
            );
        if let Some(e) = &cfg.endpoint {
            b = b.endpoint_url(e.clone());
        }
        // tracing on (Lambda sets the daemon's address): every call a subsegment of its request
        if let Some(x) = cfg.xray_daemon.and_then(|d| super::xray::XrayCalls::to(d, &cfg.table, &cfg.region)) {
            b = b.interceptor(x);
        }
        let conf = b.build();
        let sessions = cfg.tenant_role.as_ref().map(|role| {
            let sts = sts_client(cfg, creds.clone());
            std::sync::Arc::new(super::sessions::TenantSessions::new(role.clone(), sts, conf.clone()))
        });
        Ok(DynamoTable { client: Client::from_conf(conf), sessions, table: cfg.table.clone(), consumed: Default::default() })
    }

    /// The client for the current work: the tenant's session when the work acts for a tenant
    /// and the table has a tenant role, else the process's own.
    fn client(&self) -> Client {
        match (&self.sessions, super::scope::tenant()) {
            (Some(sessions), Some(tenant)) => sessions.client_for(&tenant),
            _ => self.client.clone(),
        }
    }

    /// Creates the table with its index and TTL (local and test use; AWS uses the SAM template).
    /// Succeeds when the table already exists.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let s = |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().map_err(other);
        let k = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().map_err(other);
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(k("gsi1pk", KeyType::Hash)?)
            .key_schema(k("gsi1sk", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(other)?;
        let r = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(s("pk")?)
            .attribute_definitions(s("sk")?)
            .attribute_definitions(s("gsi1pk")?)
            .attribute_definitions(s("gsi1sk")?)
            .key_schema(k("pk", KeyType::Hash)?)
            .key_schema(k("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ResourceInUseException") => {
                return Ok(());
            }
            Err(e) => return Err(map_sdk(e)),
        }
        let ttl = TimeToLiveSpecification::builder().attribute_name("expires_at").enabled(true).build().map_err(other)?;
        self.client.update_time_to_live().table_name(&self.table).time_to_live_specification(ttl).send().await.map_err(map_sdk)?;
        Ok(())
    }

    /// Whether the table has this layout's shape: key `pk` (hash) + `sk` (range) and the index
    /// `gsi1` on `gsi1pk` + `gsi1sk`. What an operator's tool checks before writing to a table
    /// named on its command line (a typo must not put tenants into somebody else's table).
    /// `Err` when the table does not exist or cannot be described.
    pub async fn has_layout_shape(&self) -> Result<bool, StoreError> {
        let out = match self.client.describe_table().table_name(&self.table).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                return Err(StoreError::other(format!("there is no table '{}' in this region", self.table)));
            }
            Err(e) => return Err(map_sdk(e)),
        };
        let Some(t) = out.table() else { return Ok(false) };
        let keys = |k: &[KeySchemaElement]| k.iter().map(|e| (e.attribute_name().to_string(), e.key_type().clone())).collect::<Vec<_>>();
        let main = keys(t.key_schema()) == vec![("pk".to_string(), KeyType::Hash), ("sk".to_string(), KeyType::Range)];
        let index = t.global_secondary_indexes().iter().any(|g| {
            g.index_name() == Some(GSI1)
                && keys(g.key_schema()) == vec![("gsi1pk".to_string(), KeyType::Hash), ("gsi1sk".to_string(), KeyType::Range)]
        });
        Ok(main && index)
    }

    fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), AttributeValue::S(pk.to_string())), ("sk".to_string(), AttributeValue::S(sk.to_string()))])
    }
}

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::caused("DynamoDB", e)
}

/// The STS client tenant sessions are assumed with: the table's region (its regional endpoint),
/// the process's credentials, the same timeouts; a local endpoint serves STS too (moto).
fn sts_client(cfg: &DynamoConfig, creds: aws_credential_types::Credentials) -> aws_sdk_sts::Client {
    let mut b = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(creds)
        .timeout_config(
            TimeoutConfig::builder().operation_attempt_timeout(cfg.attempt_timeout).operation_timeout(cfg.operation_timeout).build(),
        );
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e.clone());
    }
    aws_sdk_sts::Client::from_conf(b.build())
}

fn map_sdk<E>(e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => unavailable(e),
        SdkError::ServiceError(se) => match se.err().code() {
            Some("ConditionalCheckFailedException") => StoreError::Conflict { index: 0 },
            Some("ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded") => StoreError::Throttled,
            Some("InternalServerError" | "ServiceUnavailable" | "TransactionConflictException" | "TransactionInProgressException") => {
                unavailable(e)
            }
            Some("ValidationException") if se.err().message().is_some_and(too_large) => {
                StoreError::TooLarge { what: "an item is larger than DynamoDB's 400 KB".into() }
            }
            // an answer that names no DynamoDB error (a proxy's page, a cut reply) or a server
            // failure: the store could not be read, which a retry may fix
            None => unavailable(e),
            Some(_) if se.raw().status().is_server_error() => unavailable(e),
            _ => StoreError::caused("DynamoDB", e),
        },
        _ => StoreError::caused("DynamoDB", e),
    }
}

/// Whether DynamoDB's message refuses an item for its size (400 KB per item).
fn too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("item size") && (m.contains("exceeded") || m.contains("maximum"))
}

/// A retryable SDK failure, its full context in the message and the error kept as the source.
fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable { context: "DynamoDB".into(), source: Some(std::sync::Arc::new(e)) }
}

fn to_attrs(item: &Item) -> HashMap<String, AttributeValue> {
    let mut m = DynamoTable::key(&item.pk, &item.sk);
    if let Some((p, s)) = &item.gsi1 {
        m.insert("gsi1pk".into(), AttributeValue::S(p.clone()));
        m.insert("gsi1sk".into(), AttributeValue::S(s.clone()));
    }
    if let Some(d) = &item.doc {
        m.insert("doc".into(), AttributeValue::S(d.clone()));
    }
    m.insert("v".into(), AttributeValue::N(item.version.to_string()));
    if let Some(t) = item.expires_at {
        m.insert("expires_at".into(), AttributeValue::N(t.to_string()));
    }
    for (k, v) in &item.nums {
        m.insert(format!("n_{k}"), AttributeValue::N(v.to_string()));
    }
    m
}

fn from_attrs(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let s = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
    let n = |v: &AttributeValue| v.as_n().ok().and_then(|x| x.parse::<i64>().ok());
    let mut item = Item {
        pk: s("pk").ok_or_else(|| StoreError::other("item without pk"))?,
        sk: s("sk").ok_or_else(|| StoreError::other("item without sk"))?,
        doc: s("doc"),
        version: m.get("v").and_then(n).unwrap_or(0) as u64,
        expires_at: m.get("expires_at").and_then(n),
        ..Default::default()
    };
    if let (Some(p), Some(k)) = (s("gsi1pk"), s("gsi1sk")) {
        item.gsi1 = Some((p, k));
    }
    for (k, v) in m {
        if let Some(name) = k.strip_prefix("n_")
            && let Some(x) = n(v)
        {
            item.nums.insert(name.to_string(), x);
        }
    }
    Ok(item)
}

/// An item from a DynamoDB stream image in DynamoDB JSON (`{"pk":{"S":"…"},"v":{"N":"3"}}`),
/// as Lambda and EventBridge Pipes deliver it.
pub fn item_from_stream_image(image: &serde_json::Value) -> Option<Item> {
    let obj = image.as_object()?;
    let mut m = HashMap::new();
    for (k, v) in obj {
        let (t, x) = v.as_object()?.iter().next()?;
        let av = match (t.as_str(), x) {
            ("S", serde_json::Value::String(s)) => AttributeValue::S(s.clone()),
            ("N", serde_json::Value::String(n)) => AttributeValue::N(n.clone()),
            _ => continue,
        };
        m.insert(k.clone(), av);
    }
    from_attrs(&m).ok()
}

/// A condition expression and its placeholder values.
fn condition(cond: Cond) -> (Option<String>, HashMap<String, AttributeValue>) {
    match cond {
        Cond::Always => (None, HashMap::new()),
        Cond::Absent => (Some("attribute_not_exists(pk)".into()), HashMap::new()),
        Cond::Exists => (Some("attribute_exists(pk)".into()), HashMap::new()),
        Cond::Version(v) => (Some("v = :cv".into()), HashMap::from([(":cv".to_string(), AttributeValue::N(v.to_string()))])),
    }
}

/// `ADD #f0 :v0, #f1 :v1` for counter deltas.
fn add_expression(deltas: &[(String, i64)]) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
    let mut parts = Vec::new();
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    for (i, (field, by)) in deltas.iter().enumerate() {
        parts.push(format!("#f{i} :v{i}"));
        names.insert(format!("#f{i}"), format!("n_{field}"));
        values.insert(format!(":v{i}"), AttributeValue::N(by.to_string()));
    }
    (format!("ADD {}", parts.join(", ")), names, values)
}

fn some_map(m: HashMap<String, AttributeValue>) -> Option<HashMap<String, AttributeValue>> {
    if m.is_empty() { None } else { Some(m) }
}

#[async_trait::async_trait]
impl Table for DynamoTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_sdk)?;
        self.note(out.consumed_capacity(), READ);
        let now = crate::time::unix_now();
        match out.item() {
            Some(m) => Ok(Some(from_attrs(m)?).filter(|i| !i.expired(now)).map(Shared::new)),
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError> {
        let mut found: HashMap<(String, String), Shared> = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut unique: Vec<&(String, String)> = chunk.iter().collect();
            unique.sort();
            unique.dedup();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(unique.iter().map(|(p, s)| Self::key(p, s)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(other)?,
            );
            let mut attempts = 0;
            while let Some(req) = pending.take() {
                attempts += 1;
                let out = self
                    .client()
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(map_sdk)?;
                out.consumed_capacity().iter().for_each(|c| self.note(Some(c), READ));
                for m in out.responses().and_then(|r| r.get(&self.table)).map(Vec::as_slice).unwrap_or_default() {
                    let item = from_attrs(m)?;
                    found.insert((item.pk.clone(), item.sk.clone()), Shared::new(item));
                }
                pending = out.unprocessed_keys().and_then(|u| u.get(&self.table)).cloned();
                if pending.is_some() {
                    if attempts >= 5 {
                        return Err(StoreError::Throttled);
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempts)).await;
                }
            }
        }
        let now = crate::time::unix_now();
        Ok(keys.iter().map(|k| found.get(k).filter(|i| !i.expired(now)).cloned()).collect())
    }

    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError> {
        let (pk_name, sk_name) = match q.index {
            Index::Primary => ("pk", "sk"),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
        };
        let now = crate::time::unix_now();
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        if q.lo > q.hi || q.limit == 0 {
            return Ok(out);
        }
        loop {
            let want = (q.limit - out.len()).min(1000) as i32;
            // DynamoDB refuses an empty key value: a range from the very start has no lower bound
            let (condition, lo) = if q.lo.is_empty() {
                (format!("{pk_name} = :pk AND {sk_name} <= :hi"), None)
            } else {
                (format!("{pk_name} = :pk AND {sk_name} BETWEEN :lo AND :hi"), Some(AttributeValue::S(q.lo.clone())))
            };
            let mut req = self
                .client()
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", AttributeValue::S(q.pk.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(q.hi.clone()))
                .scan_index_forward(q.forward)
                .limit(want)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take());
            if let Some(lo) = lo {
                req = req.expression_attribute_values(":lo", lo);
            }
            req = match q.index {
                Index::Primary => req.consistent_read(true),
                Index::Gsi1 => req.index_name(GSI1),
            };
            if q.keys_only {
                req = req.projection_expression("pk, sk");
            }
            let page = req.send().await.map_err(map_sdk)?;
            self.note(page.consumed_capacity(), READ);
            for m in page.items() {
                let item = from_attrs(m)?;
                if !item.expired(now) {
                    out.push(Shared::new(item));
                }
            }
            match page.last_evaluated_key() {
                Some(k) if out.len() < q.limit => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(q.limit);
        Ok(out)
    }

    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .update_expression("ADD n_count :by SET expires_at = :t")
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
            .expression_attribute_values(":t", AttributeValue::N(expires_at.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(map_sdk)?;
        self.note(out.consumed_capacity(), WRITE);
        Ok(out.attributes().and_then(|a| a.get("n_count")).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    /// What DynamoDB reported (`ReturnConsumedCapacity=TOTAL` on every call).
    fn consumed_capacity(&self) -> Option<(f64, f64)> {
        let get = |k: usize| self.consumed[k].load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
        Some((get(READ), get(WRITE)))
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.len() > super::MAX_TRANSACTION {
            return Err(StoreError::other(format!("{} writes exceed one transaction", writes.len())));
        }
        let mut writes = writes;
        if writes.len() == 1
            && let Some(w) = writes.pop()
        {
            return self.write_one(w).await;
        }
        let mut items = Vec::with_capacity(writes.len());
        for w in &writes {
            items.push(self.transact_item(w)?);
        }
        let r = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match r {
            Ok(out) => {
                out.consumed_capacity().iter().for_each(|c| self.note(Some(c), WRITE));
                Ok(())
            }
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tce)) =
                    e.as_service_error()
                {
                    let reasons = tce.cancellation_reasons();
                    if let Some(index) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(StoreError::Conflict { index });
                    }
                    if reasons.iter().any(|r| r.code() == Some("ThrottlingError") || r.code() == Some("ProvisionedThroughputExceeded")) {
                        return Err(StoreError::Throttled);
                    }
                    if reasons.iter().any(|r| r.code() == Some("ValidationError") && r.message().is_some_and(too_large)) {
                        return Err(StoreError::TooLarge { what: "an item is larger than DynamoDB's 400 KB".into() });
                    }
                    return Err(StoreError::unavailable(format!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    )));
                }
                Err(map_sdk(e))
            }
        }
    }
}

const READ: usize = 0;
const WRITE: usize = 1;

impl DynamoTable {
    /// Adds what DynamoDB reported for one call to the running totals.
    fn note(&self, c: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>, kind: usize) {
        if let Some(units) = c.and_then(|c| c.capacity_units()) {
            self.consumed[kind].fetch_add((units * 1000.0).round() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn write_one(&self, w: Write) -> Result<(), StoreError> {
        match w {
            Write::Put { item, cond } => {
                let (expr, vals) = condition(cond);
                let out = self
                    .client()
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(&item)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_values(some_map(vals))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(map_sdk)?;
                self.note(out.consumed_capacity(), WRITE);
            }
            Write::Delete { pk, sk, cond } => {
                let (expr, vals) = condition(cond);
                let out = self
                    .client()
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(&pk, &sk)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_values(some_map(vals))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(map_sdk)?;
                self.note(out.consumed_capacity(), WRITE);
            }
            Write::Add { pk, sk, deltas } => {
                let (expr, names, values) = add_expression(&deltas);
                let out = self
                    .client()
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(&pk, &sk)))
                    .update_expression(expr)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(map_sdk)?;
                self.note(out.consumed_capacity(), WRITE);
            }
            Write::Check { pk, sk, cond } => {
                // a lone check: read and compare
                let cur = self.get(&pk, &sk).await?;
                let ok = match cond {
                    Cond::Always => true,
                    Cond::Absent => cur.is_none(),
                    Cond::Exists => cur.is_some(),
                    Cond::Version(v) => cur.is_some_and(|i| i.version == v),
                };
                if !ok {
                    return Err(StoreError::Conflict { index: 0 });
                }
            }
        }
        Ok(())
    }

    fn transact_item(&self, w: &Write) -> Result<TransactWriteItem, StoreError> {
        Ok(match w {
            Write::Put { item, cond } => {
                let (expr, vals) = condition(*cond);
                let p = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(item)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_values(some_map(vals))
                    .build()
                    .map_err(other)?;
                TransactWriteItem::builder().put(p).build()
            }
            Write::Delete { pk, sk, cond } => {
                let (expr, vals) = condition(*cond);
                let d = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(pk, sk)))
                    .set_condition_expression(expr)
                    .set_expression_attribute_values(some_map(vals))
                    .build()
                    .map_err(other)?;
                TransactWriteItem::builder().delete(d).build()
            }
            Write::Add { pk, sk, deltas } => {
                let (expr, names, values) = add_expression(deltas);
                let u = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(pk, sk)))
                    .update_expression(expr)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(other)?;
                TransactWriteItem::builder().update(u).build()
            }
            Write::Check { pk, sk, cond } => {
                let (expr, vals) = condition(*cond);
                let c = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(pk, sk)))
                    .condition_expression(expr.unwrap_or_else(|| "attribute_exists(pk) OR attribute_not_exists(pk)".into()))
                    .set_expression_attribute_values(some_map(vals))
                    .build()
                    .map_err(other)?;
                TransactWriteItem::builder().condition_check(c).build()
            }
        })
    }
}
