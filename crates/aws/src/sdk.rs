//! The SDK's clients, fitted to what calls them: the function's to its request budget, a batch
//! tool's to a long run in which nothing may hang. Every binary builds its clients here.

use std::path::PathBuf;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where AWS mode gets its SDK clients.
pub trait Clients {
    /// A Personalize runtime client for a campaign or recommender in `region`.
    fn personalize(&self, region: &str) -> aws_sdk_personalizeruntime::Client;
    /// A PutEvents client, in `region` when the configuration names one.
    fn events(&self, region: Option<&str>) -> aws_sdk_personalizeevents::Client;
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client;
}

/// The real SDK's clients, with timeouts and retries that fit the request budget.
pub struct SdkClients {
    sdk: SdkConfig,
    timeouts: TimeoutConfig,
    retries: RetryConfig,
}

impl SdkClients {
    /// Credentials and region from the usual places (environment, `~/.aws`, the Lambda role).
    pub async fn load(request_budget: Duration) -> SdkClients {
        // Stalled-stream protection watches each body's throughput for the life of the call, a
        // cost on every request (benches/cpu.sh) that buys nothing here: bodies are a few KB and
        // the attempt timeout below already ends any call that stalls.
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .load()
            .await;
        // Retries must fit the request budget: a hung attempt gets half of it, and the SDK's
        // default backoff (1 s to start) is cut to 50 ms doubling to 250 ms, so three attempts at
        // a throttled or unreachable upstream end well inside the budget with its own error.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(request_budget / 2)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(250));
        SdkClients {
            sdk,
            timeouts,
            retries,
        }
    }
}

/// The SDK's configuration for a batch run (braze-sync, the loader): no 1.5 s budget to fit, but
/// nothing may hang. A connection gets 3 s, an attempt 10 s up to the answer's headers (a body
/// streamed from S3 is watched by the SDK's stalled-stream protection, on here), and a throttled
/// or failing call five attempts, backing off from 100 ms to 5 s.
pub async fn batch_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .load()
        .await
}

impl Clients for SdkClients {
    fn personalize(&self, region: &str) -> aws_sdk_personalizeruntime::Client {
        aws_sdk_personalizeruntime::Client::from_conf(
            aws_sdk_personalizeruntime::config::Builder::from(&self.sdk)
                .region(Region::new(region.to_owned()))
                .timeout_config(self.timeouts.clone())
                .retry_config(self.retries.clone())
                .build(),
        )
    }

    fn events(&self, region: Option<&str>) -> aws_sdk_personalizeevents::Client {
        let mut events = aws_sdk_personalizeevents::config::Builder::from(&self.sdk)
            .timeout_config(self.timeouts.clone())
            .retry_config(self.retries.clone());
        if let Some(region) = region {
            events = events.region(Region::new(region.to_owned()));
        }
        aws_sdk_personalizeevents::Client::from_conf(events.build())
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .timeout_config(self.timeouts.clone())
                .retry_config(self.retries.clone())
                .build(),
        )
    }
}

/// Where the TLS stack should take its root certificates from: the system's CA bundle file,
/// unless `SSL_CERT_FILE` or `SSL_CERT_DIR` already says (`None` then, and when there is no
/// bundle). `main` sets `SSL_CERT_FILE` to it before anything starts.
///
/// Left alone, rustls-native-certs reads the bundle *and* every file of the system's certificate
/// directory: on Debian the same roots again, one file each, on Amazon Linux the bundle's OpenSSL
/// "trusted" twin, which holds no more. That was 7 ms of a 12 ms init on Debian
/// (`benches/cpu.sh`, cold start). `update-ca-certificates` and `update-ca-trust` write every root
/// the system trusts into the bundle, so it alone is the same trust.
pub fn ca_bundle(
    ssl_cert_file_set: bool,
    ssl_cert_dir_set: bool,
    probed: Option<PathBuf>,
) -> Option<PathBuf> {
    if ssl_cert_file_set || ssl_cert_dir_set {
        return None;
    }
    probed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_bundle_is_used_unless_the_openssl_variables_choose() {
        let bundle = || Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(ca_bundle(false, false, bundle()), bundle());
        assert_eq!(ca_bundle(true, false, bundle()), None);
        assert_eq!(ca_bundle(false, true, bundle()), None);
        // No bundle found: rustls-native-certs looks where it always does.
        assert_eq!(ca_bundle(false, false, None), None);
    }
}
