//! Braze's REST API, as every client of it starts: the workspace's endpoint checked, the key as
//! a Bearer header, and an HTTPS client on the TLS stack the AWS SDK already brings (rustls,
//! aws-lc). braze-sync's `/users/track` client and [`crate::Catalogs`] both start here.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A Braze REST endpoint and key, ready to call.
pub struct Rest {
    pub client: HttpsClient,
    /// `https://rest.iad-01.braze.com`, without a trailing `/`.
    pub base: String,
    /// `Bearer KEY`, marked sensitive so it never shows in a debug print.
    pub authorization: HeaderValue,
}

impl Rest {
    /// `endpoint` is the workspace's REST endpoint (`https://rest.iad-01.braze.com`). The key
    /// travels only over TLS: plain `http://` is refused, but for a server on this machine.
    pub fn new(endpoint: &str, api_key: &str) -> Result<Rest, String> {
        let base = endpoint.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|e| {
            format!("BRAZE_REST_ENDPOINT {endpoint:?} is not a URL ({e}); it is your workspace's REST endpoint, an https:// URL such as https://rest.iad-01.braze.com")
        })?;
        let secure = match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(_)) => true,
            (Some("http"), Some(host)) => is_loopback(host),
            _ => false,
        };
        if !secure {
            return Err(format!(
                "BRAZE_REST_ENDPOINT {endpoint:?} must be an https:// URL (the API key must not travel in clear text; http:// is only for a server on this machine)"
            ));
        }
        let api_key = api_key.trim();
        if api_key.is_empty() {
            return Err("BRAZE_API_KEY is empty".into());
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| "BRAZE_API_KEY holds characters a header cannot".to_owned())?;
        authorization.set_sensitive(true);
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Rest {
            client,
            base,
            authorization,
        })
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`: the only hosts a key may reach without TLS.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_travels_over_tls_or_stays_on_this_machine() {
        assert!(Rest::new("https://rest.iad-01.braze.com/", "k").is_ok());
        assert!(Rest::new("http://127.0.0.1:9200", "k").is_ok());
        assert!(Rest::new("http://[::1]:9200", "k").is_ok());
        let clear = Rest::new("http://rest.iad-01.braze.com", "k")
            .err()
            .unwrap();
        assert!(clear.contains("must be an https:// URL"), "{clear}");
        assert_eq!(
            Rest::new("https://rest.iad-01.braze.com", " ")
                .err()
                .unwrap(),
            "BRAZE_API_KEY is empty"
        );
        assert!(
            Rest::new("not a url", "k")
                .err()
                .unwrap()
                .contains("is not a URL")
        );
    }
}
