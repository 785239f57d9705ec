//! Where a run reads and writes: the input (a local file or an S3 object), the delta state,
//! the items table, and the Braze client with its key.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use aws_config::SdkConfig;
use braze_sync::braze::Braze;
use braze_sync::checkpoint::InputIdentity;
use braze_sync::delta::{Delta, Setting};
use personalize_braze_aws::dynamodb::DynamoDbCatalog;
use personalize_braze_core::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze_core::env;
use serde_json::Value;
use tokio::io::{AsyncBufRead, BufReader};

use crate::READ_BUFFER;

/// Where the delta state lives: a local file, or an S3 object (Lambda).
pub(crate) enum StateStore {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateStore::File(path) => write!(f, "{}", path.display()),
            StateStore::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl StateStore {
    pub(crate) fn parse(text: String) -> StateStore {
        match text
            .strip_prefix("s3://")
            .and_then(|location| location.split_once('/'))
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        {
            Some((bucket, key)) => StateStore::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            None => StateStore::File(PathBuf::from(text)),
        }
    }

    /// The last completed run's state, or an empty one when there is none yet.
    pub(crate) async fn load(&self, sdk: &SdkConfig, setting: Setting) -> Result<Delta, String> {
        let name = self.to_string();
        let bytes = match self {
            StateStore::File(path) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot read the state {name}: {e}")),
            },
            StateStore::S3 { bucket, key } => {
                let client = aws_sdk_s3::Client::new(sdk);
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(object) => Some(
                        object
                            .body
                            .collect()
                            .await
                            .map_err(|e| format!("cannot read the state {name}: {e}"))?
                            .to_vec(),
                    ),
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                    Err(e) => {
                        return Err(format!(
                            "cannot read the state {name}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(e)
                        ));
                    }
                }
            }
        };
        match bytes {
            Some(bytes) => Delta::load(&bytes, setting, &name),
            None => Ok(Delta::new(setting)),
        }
    }

    /// Replaces the state with this run's, whole or not at all.
    pub(crate) async fn save(&self, sdk: &SdkConfig, delta: &Delta) -> Result<(), String> {
        let name = self.to_string();
        let bytes = delta.to_bytes();
        match self {
            StateStore::File(path) => {
                let temporary = path.with_extension("state-new");
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::File::create(&temporary)?;
                    std::io::Write::write_all(&mut file, &bytes)?;
                    file.sync_all()?;
                    std::fs::rename(&temporary, path)
                };
                write().map_err(|e| format!("cannot write the state {name}: {e}"))
            }
            StateStore::S3 { bucket, key } => aws_sdk_s3::Client::new(sdk)
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(bytes.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "cannot write the state {name}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                }),
        }
    }
}

/// The items table through a cache: a batch file names the same popular items again and again.
pub(crate) fn table_catalog(
    sdk: &SdkConfig,
    table: &str,
) -> Result<CachedCatalog<DynamoDbCatalog>, String> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let templates = env::process().url_templates().map_err(|e| e.to_string())?;
    let catalog = DynamoDbCatalog::new(client, table, templates);
    let budget = CacheBudget {
        items: 200_000,
        bytes: 256 * 1024 * 1024,
    };
    Ok(CachedCatalog::new(
        catalog,
        budget,
        Duration::from_secs(3600),
    ))
}

/// The Braze client from `BRAZE_REST_ENDPOINT` and the key: `BRAZE_API_KEY`, or the secret
/// `BRAZE_API_KEY_SECRET_ARN` names (its plain text, or an `api_key` field of its JSON).
pub(crate) async fn braze_from_env(sdk: &SdkConfig) -> Result<Braze, String> {
    let env = env::process();
    let endpoint = env.get("BRAZE_REST_ENDPOINT").ok_or_else(|| {
        "BRAZE_REST_ENDPOINT is not set (your workspace's REST endpoint, e.g. https://rest.iad-01.braze.com)".to_owned()
    })?;
    let key = match (
        env.get("BRAZE_API_KEY"),
        env.get("BRAZE_API_KEY_SECRET_ARN"),
    ) {
        (Some(key), _) => key,
        (None, Some(secret)) => secret_key(sdk, &secret).await?,
        (None, None) => {
            return Err("BRAZE_API_KEY (or BRAZE_API_KEY_SECRET_ARN) is not set; the key needs the users.track permission".into());
        }
    };
    Braze::new(&endpoint, &key)
}

pub(crate) async fn secret_key(sdk: &SdkConfig, secret: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let value = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the Braze key from {secret}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    let text = value
        .secret_string()
        .ok_or_else(|| format!("secret {secret} holds no text"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => fields
            .get("api_key")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("secret {secret} is JSON without an \"api_key\" field")),
        _ => Ok(text.trim().to_owned()),
    }
}

pub(crate) type Input = (
    Box<dyn AsyncBufRead + Unpin + Send>,
    InputIdentity,
    Option<u64>,
);

/// The input as a stream, what it is, and its length when known.
pub(crate) async fn open_input(sdk: &SdkConfig, input: &str) -> Result<Input, String> {
    if let Some(location) = input.strip_prefix("s3://") {
        let (bucket, key) = location
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| format!("{input:?} is not s3://BUCKET/KEY"))?;
        return open_s3(&aws_sdk_s3::Client::new(sdk), bucket, key).await;
    }
    let path = Path::new(input);
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {input}: {e}"))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {input}: {e}"))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let identity = InputIdentity {
        input: std::fs::canonicalize(path)
            .map_or_else(|_| input.to_owned(), |p| p.display().to_string()),
        version: format!("{} bytes, modified {modified}", meta.len()),
    };
    Ok((
        Box::new(BufReader::with_capacity(READ_BUFFER, file)),
        identity,
        Some(meta.len()),
    ))
}

pub(crate) async fn open_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Input, String> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    let identity = InputIdentity {
        input: format!("s3://{bucket}/{key}"),
        version: object.e_tag().unwrap_or_default().to_owned(),
    };
    let len = object.content_length().and_then(|n| u64::try_from(n).ok());
    let reader = BufReader::with_capacity(READ_BUFFER, object.body.into_async_read());
    Ok((Box::new(reader), identity, len))
}
