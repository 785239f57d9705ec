//! CPU time per request of a running service, and per invocation of the binary on the Lambda path.
//! `benches/cpu.sh` runs both side by side; each can be run alone:
//!
//!   cpu-bench http --pid PID --url URL [--requests 3000] [--warmup 300]
//!       Sends GET URL one request at a time, each on a new connection (as API Gateway's fleet
//!       reaches a function URL or a container), and reports the CPU process PID spent per
//!       request (user + system, from /proc/PID/stat), with p50 and p99 of the round trip.
//!
//!   cpu-bench lambda [--invocations 5000] [--warmup 300] [--concurrency 1] [--count 25]
//!                    [--log FILE] -- COMMAND [ARGS…]
//!       Starts COMMAND (the release binary, or `taskset -c 1 BINARY` to give it one vCPU) under
//!       the project's Lambda Runtime API emulator, with the variables Lambda sets and this
//!       process's environment (AWS mode: PERSONALIZE_ARN, ITEMS_TABLE, AWS_ENDPOINT_URL_…;
//!       AWS_LAMBDA_MAX_CONCURRENCY for Managed Instances). Invocations are API Gateway REST
//!       events for `GET /recommendations`, a different one of 3,000 users each, `--concurrency`
//!       of them in flight. Reports init (process start to the first `next` poll), the first
//!       invocation (event handed out to its answer), CPU per invocation, invocations per second,
//!       and p50 / p99 from event to answer. Every answer must be a 200 with items.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use personalize_braze_testkit::lambda_emulator::Emulator;

const USAGE: &str = "usage: cpu-bench http --pid PID --url URL [--requests N] [--warmup N]\n       \
     cpu-bench lambda [--invocations N] [--warmup N] [--concurrency N] [--count N] [--log FILE] -- COMMAND [ARGS…]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("http") => Options::parse(&args[1..]).and_then(|o| http(&o)),
        Some("lambda") => match Options::parse(&args[1..]) {
            Ok(options) => lambda(&options).await,
            Err(e) => Err(e),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpu-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    pid: u32,
    url: String,
    requests: usize,
    warmup: usize,
    concurrency: usize,
    count: usize,
    log: String,
    command: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            pid: 0,
            url: String::new(),
            requests: 0,
            warmup: 300,
            concurrency: 1,
            count: 25,
            log: "/dev/null".to_owned(),
            command: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "--" {
                options.command = args.cloned().collect();
                break;
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|e| format!("{flag} {value}: {e}"))
            };
            match flag.as_str() {
                "--pid" => options.pid = number()? as u32,
                "--url" => options.url = value.clone(),
                "--requests" | "--invocations" => options.requests = number()?,
                "--warmup" => options.warmup = number()?,
                "--concurrency" => options.concurrency = number()?.max(1),
                "--count" => options.count = number()?,
                "--log" => options.log = value.clone(),
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

/// CPU time the process has used so far, to the nanosecond: the sum of its threads' time on CPU
/// (the scheduler's own account, /proc/PID/task/*/schedstat), for the short init. Threads that
/// have ended are not in it; a tokio runtime's threads live as long as the process.
fn cpu_total(pid: u32) -> Result<Duration, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("process {pid}: {e}"))?;
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        // A thread that ended between the listing and the read is simply not counted.
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            let on_cpu = stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse().ok());
            total += Duration::from_nanos(on_cpu.unwrap_or(0));
        }
    }
    Ok(total)
}

/// What a process had used at one moment: user and system CPU time from the kernel's
/// process-wide account, which keeps the time of threads that have ended (a Python server's
/// thread per request; clock ticks of 10 ms are plenty over thousands of requests), and the peak
/// of its resident memory so far.
#[derive(Clone, Copy)]
struct Reading {
    user: Duration,
    system: Duration,
    peak_rss_kb: u64,
}

impl Reading {
    fn of(pid: u32) -> Result<Reading, String> {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|e| format!("process {pid}: {e}"))
        };
        let stat = read("stat")?;
        // The fields after the command name (which may hold spaces) start with the state; utime
        // and stime are the 12th and 13th of them, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |k: usize| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            return Err(format!("/proc/{pid}/stat: unexpected format"));
        };
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let duration = |ticks: u64| Duration::from_micros(ticks * 1_000_000 / per_second);
        // "VmHWM:     15104 kB"
        let peak_rss_kb = read("status")?
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/status: no VmHWM"))?;
        Ok(Reading {
            user: duration(user),
            system: duration(system),
            peak_rss_kb,
        })
    }
}

/// What the measured process spent between two readings, per request.
struct Spent {
    user: Duration,
    system: Duration,
    wall: Duration,
    requests: usize,
    /// The process's peak resident memory at the end.
    peak_rss_kb: u64,
}

impl Spent {
    fn between(before: Reading, after: Reading, wall: Duration, requests: usize) -> Spent {
        Spent {
            user: after.user - before.user,
            system: after.system - before.system,
            wall,
            requests,
            peak_rss_kb: after.peak_rss_kb,
        }
    }

    fn report(&self, what: &str, mut latencies: Vec<Duration>) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.requests as f64;
        latencies.sort();
        let pick =
            |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        println!(
            "{what}: CPU {:.0} µs per request ({:.0} user + {:.0} sys); {:.0} requests/s; \
             round trip p50 {:.0} µs, p99 {:.0} µs; {} requests; peak RSS {:.1} MB",
            per(self.user + self.system),
            per(self.user),
            per(self.system),
            self.requests as f64 / self.wall.as_secs_f64(),
            pick(0.5),
            pick(0.99),
            self.requests,
            self.peak_rss_kb as f64 / 1000.0,
        );
    }
}

fn http(options: &Options) -> Result<(), String> {
    if options.pid == 0 || options.url.is_empty() || options.requests == 0 {
        return Err(USAGE.to_owned());
    }
    let (address, path) = options
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(address, path)| (address.to_owned(), format!("/{path}")))
        .ok_or_else(|| format!("{}: expected http://HOST:PORT/PATH", options.url))?;
    let get = |path: &str| -> Result<Duration, String> {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))?;
        stream.set_nodelay(true).ok();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("{address}: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| format!("{address}: {e}"))?;
        let status = answer.get(9..12).unwrap_or_default();
        if status != b"200" {
            return Err(format!("GET {path}: {}", String::from_utf8_lossy(&answer)));
        }
        Ok(started.elapsed())
    };
    // Different users, as Braze sends them, when the URL asks for one.
    let path_for = |k: usize| path.replace("{user}", &format!("user-{}", k * 7919 % 3000));
    for k in 0..options.warmup {
        get(&path_for(k))?;
    }
    let before = Reading::of(options.pid)?;
    let started = Instant::now();
    let latencies = (0..options.requests)
        .map(|k| get(&path_for(options.warmup + k)))
        .collect::<Result<Vec<_>, _>>()?;
    let spent = Spent::between(
        before,
        Reading::of(options.pid)?,
        started.elapsed(),
        options.requests,
    );
    spent.report(&path, latencies);
    Ok(())
}

async fn lambda(options: &Options) -> Result<(), String> {
    if options.command.is_empty() || options.requests == 0 {
        return Err(USAGE.to_owned());
    }
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../events/rest-api-get.json"))
            .map_err(|e| format!("events/rest-api-get.json: {e}"))?;
    let event = |k: usize| {
        let user = format!("user-{}", k * 7919 % 3000);
        let count = options.count.to_string();
        let mut event = template.clone();
        event["queryStringParameters"]["user_id"] = user.clone().into();
        event["queryStringParameters"]["count"] = count.clone().into();
        event["multiValueQueryStringParameters"]["user_id"] = serde_json::json!([user]);
        event["multiValueQueryStringParameters"]["count"] = serde_json::json!([count]);
        event["requestContext"]["requestId"] = format!("request-{k}").into();
        event.to_string()
    };

    let emulator = Emulator::start().await;
    let log = std::fs::File::create(&options.log).map_err(|e| format!("{}: {e}", options.log))?;
    let log_too = log.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(&options.command[0])
        .args(&options.command[1..])
        .env("AWS_LAMBDA_RUNTIME_API", &emulator.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "personalize-braze")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/personalize-braze")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_too)
        .spawn()
        .map_err(|e| format!("{}: {e}", options.command[0]))?;
    let pid = child.id();
    let result = async {
        let (init, init_cpu) = loop {
            if let Some(polled) = emulator.first_poll() {
                break (polled - started, cpu_total(pid)?);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the function exited ({status}) before asking for an event; see {}",
                    options.log
                ));
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("no `next` poll within 10 s".to_owned());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let invoke = |k: usize| {
            let emulator = &emulator;
            let event = event(k);
            async move {
                let id = format!("invocation-{k}");
                let sent = Instant::now();
                emulator.invoke(&id, &event);
                let answer = emulator.answers(std::slice::from_ref(&id)).await.remove(0);
                let took = sent.elapsed();
                let response: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                let items = response["body"]
                    .as_str()
                    .and_then(|body| serde_json::from_str::<Vec<serde_json::Value>>(body).ok());
                match (response["statusCode"].as_u64(), items) {
                    (Some(200), Some(items)) if !items.is_empty() => Ok(took),
                    _ => Err(format!("invocation {k}: {answer}")),
                }
            }
        };
        let first = invoke(0).await?;
        println!(
            "init (process start to the first `next`): {:.1} ms, {:.0} ms of it on CPU; \
             first invocation (event to answer): {:.1} ms; start to first answer: {:.1} ms",
            init.as_secs_f64() * 1e3,
            init_cpu.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            (init + first).as_secs_f64() * 1e3,
        );
        let run = |from: usize, n: usize| {
            futures_util::stream::iter(from..from + n)
                .map(invoke)
                .buffer_unordered(options.concurrency)
                .collect::<Vec<_>>()
        };
        run(1, options.warmup)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let before = Reading::of(pid)?;
        let measuring = Instant::now();
        let latencies = run(1 + options.warmup, options.requests)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let spent = Spent::between(
            before,
            Reading::of(pid)?,
            measuring.elapsed(),
            options.requests,
        );
        spent.report(
            &format!("invocations, {} in flight", options.concurrency),
            latencies,
        );
        let wall = spent.wall.as_secs_f64();
        println!(
            "   the function was on CPU {:.0}% of the time (100% = one vCPU busy)",
            (spent.user + spent.system).as_secs_f64() / wall * 100.0
        );
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
