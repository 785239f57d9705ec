//! Where the batch tools read and write: a local path, or an S3 object or prefix
//! (`s3://BUCKET/KEY`). The S3 client takes its endpoint from the standard `AWS_ENDPOINT_URL_S3`
//! when it is set.
//!
//! [`Store`] is blocking, for a tool's worker thread: it drives the SDK on the runtime it is
//! given, and streams an S3 object's body as an `io::Read`.

use std::io::Read;
use std::path::{Path, PathBuf};

use aws_sdk_s3::error::DisplayErrorContext;
use tokio::runtime::Handle;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("s3://") {
            None => Ok(Location::Local(PathBuf::from(text))),
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{text:?} is not s3://BUCKET/KEY"));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl Location {
    /// The same place with `suffix` added to its name: where the state goes by default.
    pub fn with_suffix(&self, suffix: &str) -> Location {
        match self {
            Location::Local(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                Location::Local(PathBuf::from(name))
            }
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: format!("{key}{suffix}"),
            },
        }
    }
}

/// Blocking access to local files and S3, for a batch tool's main thread.
pub struct Store {
    pub s3: aws_sdk_s3::Client,
    pub runtime: Handle,
    /// The SDK's configuration, for the tool's other clients.
    pub sdk: aws_config::SdkConfig,
}

/// What a batch tool starts with: a runtime for the SDK (one worker: the tool's own work is on
/// the calling thread) and a [`Store`] on it, configured as every batch tool's SDK is (bounded
/// timeouts, retries). With `AWS_ENDPOINT_URL_S3` set (an S3-compatible server), addresses are
/// path-style. Keep the runtime for as long as the store is used.
pub fn start() -> Result<(tokio::runtime::Runtime, Store), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let sdk = runtime.block_on(personalize_braze_aws::sdk::batch_sdk_config());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(std::env::var_os("AWS_ENDPOINT_URL_S3").is_some())
            .build(),
    );
    let store = Store {
        s3,
        runtime: runtime.handle().clone(),
        sdk,
    };
    Ok((runtime, store))
}

/// One object of the input: its key (relative to a local folder, or the S3 key) and size.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

impl Store {
    /// The objects under `input` whose names end in `suffix` (`.avro`), sorted by key. A local
    /// file is one object, of key "".
    pub fn list(&self, input: &Location, suffix: &str) -> Result<Vec<Listed>, String> {
        let mut listed = match input {
            Location::Local(path) if path.is_file() => vec![Listed {
                key: String::new(),
                size: file_size(path)?,
            }],
            Location::Local(path) => {
                let mut found = Vec::new();
                walk(path, path, suffix, &mut found)?;
                found
            }
            Location::S3 { bucket, key } => self.runtime.block_on(async {
                let mut found = Vec::new();
                let mut pages = self
                    .s3
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(key)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page
                        .map_err(|e| format!("cannot list {input}: {}", DisplayErrorContext(e)))?;
                    for object in page.contents() {
                        let key = object.key().unwrap_or_default();
                        if key.ends_with(suffix) {
                            found.push(Listed {
                                key: key.to_owned(),
                                size: object.size().unwrap_or(0).max(0) as u64,
                            });
                        }
                    }
                }
                Ok::<_, String>(found)
            })?,
        };
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// A stream of one listed object's bytes.
    pub fn open(&self, input: &Location, key: &str) -> Result<Box<dyn Read + Send>, String> {
        match input {
            Location::Local(path) => {
                let path = if key.is_empty() {
                    path.clone()
                } else {
                    path.join(key)
                };
                let file = std::fs::File::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    file,
                )))
            }
            Location::S3 { bucket, .. } => {
                let object = self
                    .runtime
                    .block_on(self.s3.get_object().bucket(bucket).key(key).send())
                    .map_err(|e| {
                        format!(
                            "cannot read s3://{bucket}/{key}: {}",
                            DisplayErrorContext(e)
                        )
                    })?;
                let body = object.body.into_async_read();
                let bridge =
                    tokio_util::io::SyncIoBridge::new_with_handle(body, self.runtime.clone());
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 * 1024,
                    bridge,
                )))
            }
        }
    }

    /// The whole of a small object (the state), or `None` when there is none.
    pub fn read(&self, at: &Location) -> Result<Option<Vec<u8>>, String> {
        match at {
            Location::Local(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
            Location::S3 { bucket, key } => self.runtime.block_on(async {
                match self.s3.get_object().bucket(bucket).key(key).send().await {
                    Ok(object) => object
                        .body
                        .collect()
                        .await
                        .map(|b| Some(b.to_vec()))
                        .map_err(|e| format!("cannot read {at}: {e}")),
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
                    Err(e) => Err(format!("cannot read {at}: {}", DisplayErrorContext(e))),
                }
            }),
        }
    }

    /// The first `bytes` bytes of an object into a local file: an S3 output taken up where the
    /// last run left it. `None` when there is no such object.
    pub fn download(&self, at: &Location, bytes: u64, into: &Path) -> Result<Option<u64>, String> {
        let Location::S3 { bucket, key } = at else {
            return Err(format!("{at} is not in S3"));
        };
        self.runtime.block_on(async {
            let head = match self.s3.head_object().bucket(bucket).key(key).send().await {
                Ok(head) => head,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
                    return Ok(None);
                }
                Err(e) => return Err(format!("cannot read {at}: {}", DisplayErrorContext(e))),
            };
            let size = head.content_length().unwrap_or(0).max(0) as u64;
            let mut file = tokio::fs::File::create(into)
                .await
                .map_err(|e| format!("cannot write {}: {e}", into.display()))?;
            let take = bytes.min(size);
            if take > 0 {
                let object = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes=0-{}", take - 1))
                    .send()
                    .await
                    .map_err(|e| format!("cannot read {at}: {}", DisplayErrorContext(e)))?;
                let mut body = object.body.into_async_read();
                tokio::io::copy(&mut body, &mut file)
                    .await
                    .map_err(|e| format!("cannot read {at}: {e}"))?;
            }
            Ok(Some(size))
        })
    }

    /// Puts `bytes` at `at`, whole: a local file is replaced by renaming a complete copy over it.
    pub fn write(&self, at: &Location, bytes: Vec<u8>) -> Result<(), String> {
        match at {
            Location::Local(path) => {
                let mut temporary = path.as_os_str().to_owned();
                temporary.push(".partial");
                let temporary = PathBuf::from(temporary);
                std::fs::write(&temporary, bytes)
                    .and_then(|()| std::fs::rename(&temporary, path))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            Location::S3 { bucket, key } => self
                .runtime
                .block_on(
                    self.s3
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(bytes.into())
                        .send(),
                )
                .map(drop)
                .map_err(|e| format!("cannot write {at}: {}", DisplayErrorContext(e))),
        }
    }

    /// Uploads a local file to an S3 object, streamed from disk.
    pub fn upload(&self, from: &Path, at: &Location, content_type: &str) -> Result<(), String> {
        let Location::S3 { bucket, key } = at else {
            return Err(format!("{at} is not in S3"));
        };
        self.runtime.block_on(async {
            let body = aws_sdk_s3::primitives::ByteStream::from_path(from)
                .await
                .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
            self.s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(body)
                .send()
                .await
                .map(drop)
                .map_err(|e| format!("cannot write {at}: {}", DisplayErrorContext(e)))
        })
    }
}

fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn walk(root: &Path, dir: &Path, suffix: &str, found: &mut Vec<Listed>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, suffix, found)?;
        } else if path.to_string_lossy().ends_with(suffix) {
            let key = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            found.push(Listed {
                key,
                size: file_size(&path)?,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_their_state() {
        let s3: Location = "s3://bucket/out/interactions.csv".parse().unwrap();
        assert_eq!(
            s3.with_suffix(".state.json").to_string(),
            "s3://bucket/out/interactions.csv.state.json"
        );
        let prefix: Location = "s3://bucket".parse().unwrap();
        assert_eq!(
            prefix,
            Location::S3 {
                bucket: "bucket".into(),
                key: String::new()
            }
        );
        assert!("s3:///key".parse::<Location>().is_err());
        let local: Location = "out/i.csv".parse().unwrap();
        assert_eq!(
            local.with_suffix(".state.json").to_string(),
            "out/i.csv.state.json"
        );
    }
}
