//! braze-sync as a Lambda function: each S3 `Object Created` event's objects, with the
//! function's environment as settings.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use braze_sync::braze::{Braze, MAX_OBJECTS_PER_REQUEST, printable};
use braze_sync::checkpoint::Checkpoint;
use braze_sync::delta::Delta;
use braze_sync::fields::Fields;
use braze_sync::limiter::{Limiter, RateLimit};
use braze_sync::{Destination, Journal, Options, Stop, Summary};
use lambda_runtime::{LambdaEvent, service_fn};
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::encoding::form_decode;
use personalize_braze_core::env::{self, Env, EnvError, invalid};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::sources::{StateStore, braze_from_env, open_s3, table_catalog};
use crate::{attribute_name, setting};

/// Lambda: each `Object Created` event's objects, sent with the environment's settings. A run
/// that leaves users unsent fails the invocation, so Lambda tries again (and after its retries,
/// the event goes to the on-failure destination); the checkpoint in `/tmp` lets a retry in the
/// same environment continue rather than start over. A key Braze refuses is read from Secrets
/// Manager again once, so a rotated key does not fail every warm environment.
pub(crate) async fn lambda() -> Result<(), lambda_runtime::Error> {
    let sdk = personalize_braze_aws::sdk::batch_sdk_config().await;
    let braze = Mutex::new(Arc::new(braze_from_env(&sdk).await?));
    let env = env::process();
    let table = env.required(
        "ITEMS_TABLE",
        " (the items table the lists are joined with)",
    )?;
    let catalog = table_catalog(&sdk, &table)?;
    let options = lambda_options(&env)?;
    let rate = match env.get("BRAZE_RATE_LIMIT") {
        Some(off) if off.trim() == "off" => None,
        Some(rate) => {
            Some(RateLimit::parse(&rate).map_err(|e| invalid("BRAZE_RATE_LIMIT", &rate, e))?)
        }
        None => Some(RateLimit::BRAZE_DEFAULT),
    };
    let state = env.get("BRAZE_SYNC_STATE").map(StateStore::parse);
    if let Some(StateStore::File(_)) = &state {
        return Err("BRAZE_SYNC_STATE must be s3://BUCKET/KEY inside Lambda".into());
    }
    let catalog_name = format!("table {table}");
    let limiter = Limiter::new(rate);
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let context = (
        &braze,
        &limiter,
        &catalog,
        &options,
        &s3,
        &state,
        &sdk,
        &catalog_name,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let (braze, limiter, catalog, options, s3, state, sdk, catalog_name) = context;
        let objects = objects_in(&event.payload);
        if objects.is_empty() {
            tracing::warn!(event = %event.payload, "the event names no S3 object; nothing to do");
        }
        let mut summaries = Vec::new();
        for (bucket, key) in objects {
            let mut delta = match state {
                Some(store) => Some(store.load(sdk, setting(options, catalog_name)).await?),
                None => None,
            };
            let mut summary = sync_object(
                s3,
                &bucket,
                &key,
                &current(braze),
                limiter,
                catalog,
                options,
                delta.as_mut(),
            )
            .await?;
            if matches!(summary.stopped, Some(Stop::Unauthorized(_)))
                && std::env::var_os("BRAZE_API_KEY_SECRET_ARN").is_some()
            {
                tracing::warn!("Braze refused the key; reading it from Secrets Manager again once");
                let fresh = Arc::new(braze_from_env(sdk).await?);
                *braze.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                summary = sync_object(
                    s3,
                    &bucket,
                    &key,
                    &fresh,
                    limiter,
                    catalog,
                    options,
                    delta.as_mut(),
                )
                .await?;
            }
            tracing::info!(
                input = %format!("s3://{bucket}/{key}"),
                sent = summary.tally.sent,
                unchanged = summary.tally.unchanged,
                skipped = summary.tally.skipped,
                failed = summary.tally.failed,
                unsent = summary.unsent,
                requests = summary.requests,
                retries = summary.retries,
                values_cut = summary.values_cut,
                seconds = summary.elapsed.as_secs_f64(),
                "braze-sync finished"
            );
            if !summary.finished() {
                return Err(lambda_runtime::Error::from(format!(
                    "s3://{bucket}/{key}: {}",
                    summary.to_string().trim_end()
                )));
            }
            if let (Some(store), Some(delta)) = (state, &delta) {
                store.save(sdk, delta).await?;
            }
            summaries.push(serde_json::json!({
                "input": format!("s3://{bucket}/{key}"),
                "sent": summary.tally.sent,
                "unchanged": summary.tally.unchanged,
                "skipped": summary.tally.skipped,
                "failed": summary.tally.failed,
            }));
        }
        Ok::<_, lambda_runtime::Error>(Value::Array(summaries))
    }))
    .await
}

fn current(braze: &Mutex<Arc<Braze>>) -> Arc<Braze> {
    braze.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One S3 object into Braze, resuming its checkpoint in `/tmp`.
#[allow(clippy::too_many_arguments)]
async fn sync_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    braze: &Braze,
    limiter: &Limiter,
    catalog: &impl Catalog,
    options: &Options,
    delta: Option<&mut Delta>,
) -> Result<Summary, String> {
    let (reader, identity, _) = open_s3(s3, bucket, key).await?;
    let digest = Sha256::digest(format!("{}\n{}", identity.input, identity.version));
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("braze-sync-{name}.checkpoint"));
    let mut checkpoint = Checkpoint::open(&path, &identity)?;
    let read = AtomicU64::new(0);
    let journal = Journal {
        checkpoint: Some(&mut checkpoint),
        delta,
    };
    let summary = braze_sync::run(reader, catalog, Destination::Braze { braze, limiter }, journal, options, &read, |p| {
        tracing::warn!(line = p.line, user = p.key.as_deref().unwrap_or(""), kind = p.kind, detail = %printable(&p.detail), "user not sent");
    })
    .await;
    Ok(summary)
}

/// The run's settings from the function's environment, by the rule every binary shares.
fn lambda_options<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Options, EnvError> {
    let mut options = Options::default();
    if let Some(name) = env.parsed("BRAZE_ATTRIBUTE", attribute_name)? {
        options.attribute = name;
    }
    if let Some(count) = env.optional_number("RECOMMENDATION_COUNT", 1, 500)? {
        options.count = count as usize;
    }
    if let Some(fields) = env.parsed("BRAZE_FIELDS", |f| {
        Fields::parse(f).map_err(|e| e.to_string())
    })? {
        options.fields = fields;
    }
    let most = MAX_OBJECTS_PER_REQUEST as u32;
    if let Some(size) = env.optional_number("BRAZE_BATCH_SIZE", 1, most)? {
        options.batch_size = size as usize;
    }
    if let Some(bytes) = env.optional_number("BRAZE_MAX_ARRAY_BYTES", 256, 1 << 20)? {
        options.max_array_bytes = bytes as usize;
    }
    options.update_existing_only = !env.flag("BRAZE_CREATE_PROFILES", false)?;
    Ok(options)
}

/// The objects an S3 event notification (`Records[].s3`) or an EventBridge `Object Created`
/// event (`detail`) names.
fn objects_in(event: &Value) -> Vec<(String, String)> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return records
            .iter()
            .filter_map(|r| {
                let s3 = r.get("s3")?;
                let bucket = s3.pointer("/bucket/name")?.as_str()?;
                // Notification keys are form-encoded, spaces as `+`.
                let key = form_decode(s3.pointer("/object/key")?.as_str()?)?;
                Some((bucket.to_owned(), key.into_owned()))
            })
            .collect();
    }
    let bucket = event.pointer("/detail/bucket/name").and_then(Value::as_str);
    let key = event.pointer("/detail/object/key").and_then(Value::as_str);
    match (bucket, key) {
        (Some(bucket), Some(key)) => vec![(bucket.to_owned(), key.to_owned())],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_object_created_events_name_their_objects() {
        let notification = serde_json::json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "out/users+2026%2F11.json.out"}}}]});
        assert_eq!(
            objects_in(&notification),
            vec![("b".to_owned(), "out/users 2026/11.json.out".to_owned())]
        );
        let bridge = serde_json::json!({"detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "out/users.json.out"}}});
        assert_eq!(
            objects_in(&bridge),
            vec![("b".to_owned(), "out/users.json.out".to_owned())]
        );
        assert!(objects_in(&serde_json::json!({})).is_empty());
    }
}
