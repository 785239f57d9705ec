//! Wiring only: configuration, logging, backends built once per cold start, then serve.

use std::process::ExitCode;

use personalize_braze::config::{Backend, Config, LogFormat, RuntimeFlavor};
use personalize_braze::startup::{self, SdkClients};
use personalize_braze_aws::sdk::ca_bundle;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("personalize-braze: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Only AWS mode makes TLS calls; local mode needs no roots.
    if matches!(config.backend, Backend::Aws(_)) {
        trust_the_ca_bundle();
    }
    let runtime = match config.runtime_flavor {
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(e) => {
            eprintln!("personalize-braze: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The SDK's TLS roots from the system's CA bundle file alone (see `ca_bundle`).
fn trust_the_ca_bundle() {
    let set = |name| std::env::var_os(name).is_some();
    let probed = openssl_probe::probe().cert_file;
    if let Some(bundle) = ca_bundle(set("SSL_CERT_FILE"), set("SSL_CERT_DIR"), probed) {
        // SAFETY: no other thread exists yet: the runtime is built after this, and nothing
        // before it starts one.
        unsafe { std::env::set_var("SSL_CERT_FILE", bundle) };
    }
}

async fn serve(config: Config) -> ExitCode {
    init_tracing(config.log_format, &config.log_filter);

    // `summary` says what serves requests; `try_path` is a request worth trying locally.
    let (app, summary, try_path) = match &config.backend {
        Backend::Aws(aws) => {
            let clients = SdkClients::load(config.request_budget).await;
            let (app, summary) = startup::aws_app(&config, aws, &clients);
            (app, summary, "/recommendations?user_id=USER_ID".to_owned())
        }
        Backend::Local { data_dir, .. } => {
            let (config, data_dir) = (config.clone(), data_dir.clone());
            match tokio::task::spawn_blocking(move || startup::local_app(&config, &data_dir)).await
            {
                Ok(Ok(built)) => built,
                Ok(Err(e)) => {
                    eprintln!("personalize-braze: cannot start in local mode: {e}");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("personalize-braze: loading local data failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };

    if config.in_lambda {
        tracing::info!("{summary}; serving Lambda invocations");
        if let Err(e) = serve_lambda(app).await {
            tracing::error!(error = %e, "lambda runtime stopped");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "personalize-braze: cannot listen on 127.0.0.1:{}: {e}",
                config.port
            );
            return ExitCode::FAILURE;
        }
    };
    // With PORT=0 the system picked the port; whatever the log level, say which.
    let port = listener
        .local_addr()
        .map_or(config.port, |address| address.port());
    eprintln!("personalize-braze: listening on http://127.0.0.1:{port}");
    tracing::info!("{summary}; try curl 'http://127.0.0.1:{port}{try_path}'");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("personalize-braze: server stopped: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Serves Lambda invocations. On Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) one
/// environment serves that many at once, sharing the item cache and the connections; otherwise
/// one at a time, as on standard Lambda.
async fn serve_lambda(app: axum::Router) -> Result<(), lambda_http::Error> {
    use tower::ServiceExt;
    // The concurrent runtime shares answers between threads, which axum's streaming body cannot
    // be: each answer is turned into lambda_http's own, as the sequential runtime does anyway.
    let handler = tower::service_fn(move |request: lambda_http::Request| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            Ok::<_, lambda_http::Error>(lambda_http::IntoResponse::into_response(response).await)
        }
    });
    lambda_http::run_concurrent(handler).await
}

/// JSON lines by default (what CloudWatch Logs Insights queries); `LOG_FORMAT=text` for people.
/// The level is the configuration's: `RUST_LOG`, else the deployment's `AWS_LAMBDA_LOG_LEVEL`,
/// else `info` (also when `RUST_LOG` is not a filter tracing understands).
fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}
