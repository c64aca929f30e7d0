//! The `events` Lambda: the enrichment step of the EventBridge Pipe from the table's stream to
//! the event bus. It turns a batch of stream records into typed SCIM events
//! (`user.deactivated`, `membership.removed`, …) with `scim_core::events::derive`, the same
//! function `scim-local` uses for its event log.

use lambda_runtime::{LambdaEvent, service_fn};
use scim_core::store::dynamo::item_from_stream_image;
use serde::Deserialize;
use serde_json::Value;

/// What the pipe hands over: the stream records of a batch, as an array or as `{"Records": […]}`.
/// Typed here, with only what events need (`aws_lambda_events`' DynamoDB types would bring
/// chrono and serde_dynamo into the function for these four fields).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Batch {
    Records(Vec<StreamRecord>),
    Wrapped {
        #[serde(rename = "Records")]
        records: Vec<StreamRecord>,
    },
}

/// One stream record: its id and the change it carries.
#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    #[serde(default)]
    pub dynamodb: StreamChange,
}

/// A record's change: when the stream saw it, its place in the item's order, the images.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamChange {
    /// Seconds since the epoch (milliseconds when the stream asks for them).
    #[serde(default)]
    pub approximate_creation_date_time: Option<f64>,
    #[serde(default)]
    pub sequence_number: Option<String>,
    #[serde(default)]
    pub old_image: Option<Value>,
    #[serde(default)]
    pub new_image: Option<Value>,
}

impl Batch {
    fn records(&self) -> &[StreamRecord] {
        match self {
            Batch::Records(r) | Batch::Wrapped { records: r } => r,
        }
    }
}

/// Runs the Lambda.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing(true);
    lambda_runtime::run_concurrent(service_fn(|event: LambdaEvent<Batch>| async move {
        Ok::<Value, lambda_runtime::Error>(enrich(&event.payload))
    }))
    .await
}

/// Stream records → EventBridge entries. Each event names its stream record (`eventId`,
/// `sequenceNumber`: consumers drop duplicates and order changes of one item) and carries the
/// time of the change, not of the enrichment.
pub fn enrich(batch: &Batch) -> Value {
    let mut out = Vec::new();
    for r in batch.records() {
        let ddb = &r.dynamodb;
        let old = ddb.old_image.as_ref().and_then(item_from_stream_image);
        let new = ddb.new_image.as_ref().and_then(item_from_stream_image);
        let created = ddb.approximate_creation_date_time.and_then(|t| {
            let ms = if t > 1e11 { t } else { t * 1000.0 };
            scim_core::time::format_unix_millis(ms as i64)
        });
        for mut e in scim_core::events::derive_at(old.as_ref(), new.as_ref(), created.as_deref()) {
            e.identify(&r.event_id, ddb.sequence_number.as_deref());
            out.push(e.to_entry());
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_records_become_typed_events() {
        let doc = |active: bool| json!({"id": "u1", "userName": "ann", "active": active, "externalId": "x1"}).to_string();
        let batch = json!([
            {"eventID": "e-1", "eventName": "MODIFY", "dynamodb": {"SequenceNumber": "100", "ApproximateCreationDateTime": 1764430000,
                "OldImage": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "USER#u1"}, "v": {"N": "1"}, "doc": {"S": doc(true)}},
                "NewImage": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "USER#u1"}, "v": {"N": "2"}, "doc": {"S": doc(false)}}}},
            {"eventID": "e-2", "eventName": "REMOVE", "dynamodb": {"SequenceNumber": "101", "ApproximateCreationDateTime": 1764430001,
                "OldImage": {"pk": {"S": "TENANT#acme#GROUP#g1"}, "sk": {"S": "MEMBER#u1"}, "gsi1pk": {"S": "TENANT#acme#USER#u1"}, "gsi1sk": {"S": "GROUP#g1"}, "v": {"N": "1"}, "doc": {"S": "{}"}}}},
            {"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "COUNT"}, "n_users": {"N": "3"}}}}
        ]);
        let out = enrich(&serde_json::from_value(batch).unwrap());
        let types: Vec<&str> = out.as_array().unwrap().iter().filter_map(|e| e["detail-type"].as_str()).collect();
        assert_eq!(types, vec!["user.deactivated", "membership.removed"]);
        assert_eq!(out[0]["source"], "scim-serverless");
        assert_eq!(out[0]["detail"]["tenant"], "acme");
        assert_eq!(out[0]["detail"]["externalId"], "x1");
        assert_eq!(out[1]["detail"]["user"], "u1");
        // each event names its stream record, and carries the time of the change
        assert_eq!((&out[0]["detail"]["eventId"], &out[0]["detail"]["sequenceNumber"]), (&json!("e-1"), &json!("100")));
        assert_eq!(out[1]["detail"]["time"], "2025-11-29T15:26:41Z", "a removal happened when the stream saw it");
    }
}
