//! The S3 client behind `blob_url = s3://BUCKET/PREFIX`.

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::ClientConfigKey;

use crate::config::{Config, S3Location};

/// The S3 client of `blob_url = s3://…`: whatever the standard `AWS_*` variables say (session
/// tokens, container credentials and the like included), then the `aws_*` settings, which the
/// configuration has already read from the file and from the same variables.
pub(super) fn s3_client(config: &Config, at: &S3Location) -> Result<AmazonS3, object_store::Error> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(at.bucket());
    if let Some(id) = &config.aws_access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(secret) = &config.aws_secret_access_key {
        b = b.with_secret_access_key(secret.expose());
    }
    if let Some(region) = &config.aws_region {
        b = b.with_region(region);
    }
    if let Some(endpoint) = &config.aws_endpoint_url {
        // Path-style requests (`ENDPOINT/BUCKET/KEY`), which every S3-compatible store serves;
        // virtual-hosted names need DNS set up for each bucket.
        b = b
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_virtual_hosted_style_request(false);
    }
    if config.aws_allow_http {
        b = b.with_allow_http(true);
    }
    // object_store retries a failed request for up to three minutes by default; a download or
    // an upload may keep that, but a store that does not answer must show within seconds in
    // /readyz and in requests, and a connection that cannot be made must fail fast.
    let retry = object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..object_store::RetryConfig::default()
    };
    let connect_timeout = AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout);
    if b.get_config_value(&connect_timeout).is_none() {
        // Set key by key: `with_client_options` would drop what the variables set (such as
        // `AWS_ALLOW_HTTP`).
        b = b.with_config(connect_timeout, "5s");
    }
    b.with_retry(retry).build()
}
