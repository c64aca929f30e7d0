//! The `events` Lambda: the enrichment step of the EventBridge Pipe from the table's stream to
//! the event bus. It turns a batch of stream records into typed SCIM events
//! (`user.deactivated`, `membership.removed`, …) with `scim_core::events::derive`, the same
//! function `scim-local` uses for its event log.

use lambda_runtime::{LambdaEvent, service_fn};
use scim_core::store::dynamo::item_from_stream_image;
use serde_json::Value;

/// Runs the Lambda.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing(true);
    lambda_runtime::run_concurrent(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(enrich(&event.payload))
    }))
    .await
}

/// Stream records (an array, or `{"Records": [...]}`) → EventBridge entries. Each event names
/// its stream record (`eventId`, `sequenceNumber`: consumers drop duplicates and order changes
/// of one item) and carries the time of the change, not of the enrichment.
pub fn enrich(payload: &Value) -> Value {
    let records = payload.as_array().or_else(|| payload.get("Records").and_then(Value::as_array)).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for r in &records {
        let ddb = r.get("dynamodb");
        let old = ddb.and_then(|d| d.get("OldImage")).and_then(item_from_stream_image);
        let new = ddb.and_then(|d| d.get("NewImage")).and_then(item_from_stream_image);
        // ApproximateCreationDateTime: seconds since the epoch (milliseconds when the stream
        // asks for them), as a number
        let created = ddb.and_then(|d| d.get("ApproximateCreationDateTime")).and_then(Value::as_f64).and_then(|t| {
            let ms = if t > 1e11 { t } else { t * 1000.0 };
            scim_core::time::format_unix_millis(ms as i64)
        });
        let id = r.get("eventID").and_then(Value::as_str).unwrap_or_default();
        let sequence = ddb.and_then(|d| d.get("SequenceNumber")).and_then(Value::as_str);
        for mut e in scim_core::events::derive_at(old.as_ref(), new.as_ref(), created.as_deref()) {
            e.identify(id, sequence);
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
        let out = enrich(&batch);
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
