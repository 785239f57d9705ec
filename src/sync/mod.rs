//! The batch path: a Personalize batch inference output file into one Braze custom attribute
//! per user, an array of item objects a message reads without calling any API.
//!
//! The file is streamed, never held whole: lines are read in order and grouped into batches of up
//! to 75 users (one `/users/track` request each). Each batch's items are joined with the catalog
//! as the endpoint joins them (ranked order, unknown and repeated ids dropped, the first `count`
//! kept), checked against Braze's limits, and sent under the rate limit, several batches at a
//! time. Each finished batch is written to the checkpoint, so a run that dies continues where
//! it stopped.

pub mod braze;
pub mod checkpoint;
pub mod input;
pub mod limiter;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::item::Item;
use braze::{Answer, Braze, MAX_ARRAY_BYTES, MAX_OBJECTS_PER_REQUEST};
use checkpoint::{Checkpoint, FinishedLines, Tally};
use input::{Line, parse_line};
use limiter::Limiter;

/// How long one batch's catalog lookup may take.
const CATALOG_BUDGET: Duration = Duration::from_secs(20);
/// Items (and ids the catalog lacks) a run remembers, so that after the first batches the
/// popular items cost one map lookup each, not a catalog call; past this the memory starts over.
const KNOWN_ITEMS_MAX: usize = 200_000;

/// What the run learned of the catalog: an id's item, or `None` when the catalog lacks it.
type Known = HashMap<String, Option<Arc<Item>>>;
/// Retries of a request that failed in a way worth retrying: first wait up to 200 ms, doubling
/// to 20 s, with full jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(20);

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The custom attribute each user's list is written to.
    pub attribute: String,
    /// At most this many items per user, the best first.
    pub count: usize,
    /// Users per request, at most 75.
    pub batch_size: usize,
    /// Batches (requests) in flight at once. The rate Braze sees is at most this many over its
    /// latency, and never over the limit.
    pub concurrency: usize,
    /// Attempts per request (429s, 5xx, timeouts) before its users are left for the next run.
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            attribute: "recommendations".into(),
            count: 25,
            batch_size: MAX_OBJECTS_PER_REQUEST,
            // Braze answers from far away: at ~100 ms a request, 64 in flight carry about 640
            // requests a second, most of Braze's default limit.
            concurrency: 64,
            max_attempts: 10,
        }
    }
}

/// Where batches go: Braze under its rate limit, or nowhere (a dry run).
pub enum Destination<'a> {
    Braze {
        braze: &'a Braze,
        limiter: &'a Limiter,
    },
    DryRun,
}

/// One user (or input line) that did not make it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub key: Option<String>,
    /// The kind of problem, for the summary's counts.
    pub kind: &'static str,
    /// The whole story, for the user's own report line.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(key) = &self.key {
            write!(f, " (user {key:?})")?;
        }
        write!(f, ": {}: {}", self.kind, self.detail)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub dry_run: bool,
    /// Input lines read, and of those the ones an earlier run had finished.
    pub lines: u64,
    pub lines_already_done: u64,
    /// This run's users: sent (or, in a dry run, ready to send), failed, skipped.
    pub tally: Tally,
    /// What earlier runs of the same checkpoint recorded.
    pub earlier: Tally,
    /// Failed users and lines by kind.
    pub failures: BTreeMap<&'static str, u64>,
    /// Users without a single item in the catalog: nothing to set.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Items left out of users' lists, by reason (ids the catalog lacks, Braze's limits).
    pub items_dropped: BTreeMap<&'static str, u64>,
    /// Users whose requests kept failing (5xx, timeouts, 429s) or whose items could not be
    /// read: not recorded as done, so the next run with the checkpoint sends them.
    pub unsent: u64,
    pub unsent_reason: Option<String>,
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

impl Summary {
    /// Whether every line was dealt with and every user sent: the exit code.
    pub fn complete(&self) -> bool {
        self.stopped.is_none() && self.unsent == 0 && self.tally.failed == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let sent = if self.dry_run {
            "ready to send (dry run, nothing sent)"
        } else {
            "sent"
        };
        writeln!(
            f,
            "braze-sync: {} users {sent}, {} skipped, {} failed; {} lines read in {seconds:.1} s ({:.0} users/s)",
            self.tally.sent,
            self.tally.skipped,
            self.tally.failed,
            self.lines,
            self.tally.sent as f64 / seconds.max(1e-9),
        )?;
        if !self.dry_run {
            writeln!(
                f,
                "  requests: {} ({} retries, {} answered 429)",
                self.requests, self.retries, self.rate_limited
            )?;
        }
        if self.lines_already_done > 0 {
            writeln!(
                f,
                "  resumed: {} lines were done by earlier runs ({} users sent, {} skipped, {} failed then)",
                self.lines_already_done,
                self.earlier.sent,
                self.earlier.skipped,
                self.earlier.failed
            )?;
            if self.lines_already_done == self.lines {
                writeln!(
                    f,
                    "  every line was done before: nothing to send (delete the checkpoint to send the file again)"
                )?;
            }
        }
        for (kind, n) in &self.failures {
            writeln!(f, "  failed: {n} × {kind}")?;
        }
        for (kind, n) in &self.skipped {
            writeln!(f, "  skipped: {n} × {kind}")?;
        }
        for (reason, n) in &self.items_dropped {
            writeln!(f, "  items left out: {n} × {reason}")?;
        }
        if self.unsent > 0 {
            writeln!(
                f,
                "  not sent: {} users ({}); run again with the same checkpoint to send them",
                self.unsent,
                self.unsent_reason.as_deref().unwrap_or("unknown")
            )?;
        }
        if let Some(why) = &self.stopped {
            writeln!(
                f,
                "  stopped early: {why}; run again with the same checkpoint to continue"
            )?;
        }
        Ok(())
    }
}

/// Sends `input` to `destination`. `problems` hears of each failed user or line as it happens;
/// `bytes_read` follows the input for a progress bar.
pub async fn run<R, C>(
    input: R,
    catalog: &C,
    destination: Destination<'_>,
    mut checkpoint: Option<&mut Checkpoint>,
    options: &Options,
    bytes_read: &AtomicU64,
    mut problems: impl FnMut(&Problem),
) -> Summary
where
    R: AsyncBufRead + Unpin,
    C: Catalog,
{
    let started = Instant::now();
    let mut summary = Summary {
        dry_run: matches!(destination, Destination::DryRun),
        earlier: checkpoint.as_ref().map(|c| c.earlier()).unwrap_or_default(),
        ..Summary::default()
    };
    let finished = checkpoint
        .as_mut()
        .map(|c| c.finished_lines())
        .unwrap_or_default();
    let read = ReadCounts {
        bytes: bytes_read,
        lines: AtomicU64::new(0),
        already_done: AtomicU64::new(0),
    };
    let reader = Reader {
        input,
        line: 0,
        buffer: Vec::new(),
        finished,
        batch_size: options.batch_size.clamp(1, MAX_OBJECTS_PER_REQUEST),
        counts: &read,
        ended: false,
    };
    let batches = stream::unfold(reader, |mut reader| async move {
        let next = reader.next_batch().await.transpose()?;
        Some((next, reader))
    });
    let context = BatchContext {
        catalog,
        destination: &destination,
        options,
        known: std::sync::Mutex::new(Known::new()),
    };
    let outcomes = batches
        .map(|batch| {
            let context = &context;
            async move { context.process(batch?).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut outcomes = std::pin::pin!(outcomes);
    while let Some(outcome) = outcomes.next().await {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(why) => {
                summary.stopped = Some(why);
                break;
            }
        };
        for problem in &outcome.problems {
            *summary.failures.entry(problem.kind).or_default() += 1;
            problems(problem);
        }
        for (kind, n) in &outcome.skipped {
            *summary.skipped.entry(kind).or_default() += n;
        }
        for (reason, n) in &outcome.items_dropped {
            *summary.items_dropped.entry(reason).or_default() += n;
        }
        summary.tally += outcome.tally;
        summary.requests += outcome.requests;
        summary.retries += outcome.retries;
        summary.rate_limited += outcome.rate_limited;
        if outcome.unsent > 0 {
            summary.unsent += outcome.unsent;
            summary.unsent_reason = outcome.unsent_reason;
        } else if !summary.dry_run
            && let Some(checkpoint) = checkpoint.as_mut()
            && let Err(why) = checkpoint.record(outcome.first, outcome.last, outcome.tally)
        {
            summary.stopped = Some(why);
            break;
        }
    }
    summary.lines = read.lines.load(Ordering::Relaxed);
    summary.lines_already_done = read.already_done.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    summary
}

/// How far the reader got.
struct ReadCounts<'a> {
    bytes: &'a AtomicU64,
    lines: AtomicU64,
    already_done: AtomicU64,
}

/// Up to `batch_size` users' lines, and the problem lines among them.
struct Batch {
    /// First and last input line it covers (1-based, inclusive).
    first: u64,
    last: u64,
    users: Vec<User>,
    problems: Vec<Problem>,
}

struct User {
    line: u64,
    key: String,
    item_ids: Vec<String>,
}

/// Reads the input a batch at a time, skipping the lines an earlier run finished.
struct Reader<'a, R> {
    input: R,
    /// The last line read.
    line: u64,
    buffer: Vec<u8>,
    finished: FinishedLines,
    batch_size: usize,
    counts: &'a ReadCounts<'a>,
    ended: bool,
}

impl<R: AsyncBufRead + Unpin> Reader<'_, R> {
    async fn next_batch(&mut self) -> Result<Option<Batch>, String> {
        if self.ended {
            return Ok(None);
        }
        let mut batch = Batch {
            first: self.line + 1,
            last: self.line,
            users: Vec::with_capacity(self.batch_size),
            problems: Vec::new(),
        };
        while batch.users.len() < self.batch_size {
            self.buffer.clear();
            let read = self
                .input
                .read_until(b'\n', &mut self.buffer)
                .await
                .map_err(|e| format!("reading the input after line {}: {e}", self.line))?;
            if read == 0 {
                self.ended = true;
                break;
            }
            self.counts.bytes.fetch_add(read as u64, Ordering::Relaxed);
            self.line += 1;
            self.counts.lines.store(self.line, Ordering::Relaxed);
            let line = self.line;
            if self.finished.contains(line) {
                self.counts.already_done.fetch_add(1, Ordering::Relaxed);
                if batch.users.is_empty() && batch.problems.is_empty() {
                    batch.first = line + 1;
                }
                continue;
            }
            batch.last = line;
            let text = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
            match parse_line(text) {
                Ok(Line::Blank) => {}
                Ok(Line::Ranked { key, item_ids }) => batch.users.push(User {
                    line,
                    key,
                    item_ids,
                }),
                Ok(Line::Failed { key, error }) => batch.problems.push(Problem {
                    line,
                    key,
                    kind: "Personalize could not recommend",
                    detail: error,
                }),
                Err(why) => batch.problems.push(Problem {
                    line,
                    key: None,
                    kind: "malformed line",
                    detail: why,
                }),
            }
        }
        if batch.first > batch.last {
            return Ok(None);
        }
        Ok(Some(batch))
    }
}

/// What became of one batch.
#[derive(Default)]
struct Outcome {
    first: u64,
    last: u64,
    tally: Tally,
    problems: Vec<Problem>,
    skipped: BTreeMap<&'static str, u64>,
    items_dropped: BTreeMap<&'static str, u64>,
    unsent: u64,
    unsent_reason: Option<String>,
    requests: u64,
    retries: u64,
    rate_limited: u64,
}

struct BatchContext<'a, C> {
    catalog: &'a C,
    destination: &'a Destination<'a>,
    options: &'a Options,
    /// Shared by the batches in flight; never held across an await.
    known: std::sync::Mutex<Known>,
}

/// One user's attribute object, ready to send: `{"external_id":…,"ATTRIBUTE":[…]}`.
struct Object {
    line: u64,
    key: String,
    json: String,
}

/// How a request (or its retries) ended.
enum Delivery {
    Sent { refused: Vec<(usize, String)> },
    Refused { status: u16, message: String },
    GaveUp(String),
}

impl<C: Catalog> BatchContext<'_, C> {
    /// Decorates and sends one batch. `Err` stops the whole run (Braze refused the key).
    async fn process(&self, batch: Batch) -> Result<Outcome, String> {
        let mut outcome = Outcome {
            first: batch.first,
            last: batch.last,
            problems: batch.problems,
            ..Outcome::default()
        };
        outcome.tally.failed = outcome.problems.len() as u64;
        if batch.users.is_empty() {
            return Ok(outcome);
        }
        if let Err(e) = self.learn(&batch.users).await {
            outcome.unsent = batch.users.len() as u64;
            outcome.unsent_reason = Some(format!("the catalog could not be read: {e}"));
            return Ok(outcome);
        }
        let mut objects = Vec::with_capacity(batch.users.len());
        {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            for user in batch.users {
                match self.object(&user, &known, &mut outcome.items_dropped) {
                    Some(json) => objects.push(Object {
                        line: user.line,
                        key: user.key,
                        json,
                    }),
                    None => {
                        outcome.tally.skipped += 1;
                        *outcome
                            .skipped
                            .entry("none of the user's items is in the catalog")
                            .or_default() += 1;
                    }
                }
            }
        }
        let Destination::Braze { braze, limiter } = self.destination else {
            outcome.tally.sent += objects.len() as u64;
            return Ok(outcome);
        };
        // A request Braze refuses whole is split in halves until the refused users stand alone,
        // so one bad user never costs the others their lists.
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..objects.len());
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            let body = request_body(&objects[range.clone()]);
            match self.deliver(braze, limiter, body, &mut outcome).await? {
                Delivery::Sent { refused } => {
                    let mut refused_here = 0;
                    for (index, why) in refused {
                        let Some(object) = objects.get(range.start + index) else {
                            continue;
                        };
                        refused_here += 1;
                        outcome.problems.push(Problem {
                            line: object.line,
                            key: Some(object.key.clone()),
                            kind: "refused by Braze",
                            detail: why,
                        });
                    }
                    outcome.tally.sent += (range.len() - refused_here) as u64;
                    outcome.tally.failed += refused_here as u64;
                }
                Delivery::Refused { status, message } if range.len() > 1 => {
                    tracing::debug!(status, %message, users = range.len(), "request refused; splitting it");
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
                Delivery::Refused { status, message } => {
                    let object = &objects[range.start];
                    outcome.tally.failed += 1;
                    outcome.problems.push(Problem {
                        line: object.line,
                        key: Some(object.key.clone()),
                        kind: "refused by Braze",
                        detail: format!("HTTP {status}: {message}"),
                    });
                }
                Delivery::GaveUp(why) => {
                    outcome.unsent += range.len() as u64;
                    outcome.unsent_reason = Some(why);
                }
            }
        }
        Ok(outcome)
    }

    /// Asks the catalog for the users' ids the run does not know yet, and remembers the answer.
    async fn learn(&self, users: &[User]) -> Result<(), crate::upstream::UpstreamError> {
        let missing: Vec<String> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = HashSet::new();
            users
                .iter()
                .flat_map(|u| &u.item_ids)
                .filter(|id| !known.contains_key(*id) && seen.insert(id.as_str()))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut found = self
            .catalog
            .items(&missing, Instant::now() + CATALOG_BUDGET)
            .await?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() + missing.len() > KNOWN_ITEMS_MAX {
            known.clear();
        }
        for id in missing {
            let item = found.remove(&id);
            known.insert(id, item);
        }
        Ok(())
    }

    /// The user's attribute object, or `None` when not one of their items is in the catalog.
    fn object(
        &self,
        user: &User,
        known: &Known,
        dropped: &mut BTreeMap<&'static str, u64>,
    ) -> Option<String> {
        let key = json_string(&user.key);
        let attribute = json_string(&self.options.attribute);
        let mut object = String::with_capacity(64 + key.len() + self.options.count.min(50) * 256);
        object.push_str(r#"{"external_id":"#);
        object.push_str(&key);
        object.push(',');
        object.push_str(&attribute);
        object.push_str(":[");
        let list_start = object.len() - 1;
        let mut kept: Vec<&str> = Vec::with_capacity(self.options.count.min(user.item_ids.len()));
        // Long lists check repeats with a set; short ones scan what they kept.
        let mut seen = (self.options.count > 32).then(HashSet::new);
        for (rank, id) in user.item_ids.iter().enumerate() {
            if kept.len() == self.options.count {
                break;
            }
            let Some(Some(item)) = known.get(id) else {
                *dropped.entry("not in the catalog").or_default() += 1;
                continue;
            };
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(id.as_str()),
                None => kept.contains(&id.as_str()),
            };
            if repeated {
                continue;
            }
            if let Some(problem) = item.braze_problem() {
                *dropped.entry(problem).or_default() += 1;
                continue;
            }
            // The array must stay within Braze's 50 KB: the list ends with the items that fit.
            if object.len() - list_start + item.json().len() + 2 > MAX_ARRAY_BYTES {
                let rest = user.item_ids.len() - rank;
                *dropped
                    .entry("past Braze's 50 KB per array of objects")
                    .or_default() += rest.min(self.options.count - kept.len()) as u64;
                break;
            }
            if !kept.is_empty() {
                object.push(',');
            }
            object.push_str(item.json());
            kept.push(id);
        }
        if kept.is_empty() {
            return None;
        }
        object.push_str("]}");
        Some(object)
    }

    /// Sends one body until Braze takes it, refuses it, or the attempts run out.
    async fn deliver(
        &self,
        braze: &Braze,
        limiter: &Limiter,
        body: Bytes,
        outcome: &mut Outcome,
    ) -> Result<Delivery, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            limiter.acquire().await;
            outcome.requests += 1;
            let answer = braze.track(body.clone()).await;
            let (wait, why) = match answer {
                Answer::Accepted { refused } => return Ok(Delivery::Sent { refused }),
                Answer::Refused { status, message } => {
                    return Ok(Delivery::Refused { status, message });
                }
                Answer::Unauthorized { status, message } => {
                    return Err(format!(
                        "Braze refused the API key (HTTP {status}: {message}); it needs the users.track permission"
                    ));
                }
                Answer::RateLimited { wait } => {
                    outcome.rate_limited += 1;
                    let wait = wait.unwrap_or_else(|| backoff(attempt));
                    // Everyone waits: the limit is the workspace's, not this request's.
                    limiter.pause_until(Instant::now() + wait + jitter());
                    (Duration::ZERO, "HTTP 429 (rate limited)".to_owned())
                }
                Answer::Unavailable { reason, wait } => {
                    (wait.unwrap_or_else(|| backoff(attempt)), reason)
                }
            };
            if attempt >= self.options.max_attempts {
                return Ok(Delivery::GaveUp(format!("{why}, {attempt} attempts")));
            }
            outcome.retries += 1;
            tracing::debug!(attempt, reason = %why, "retrying a /users/track request");
            tokio::time::sleep(wait).await;
        }
    }
}

/// `{"attributes":[…]}` of these objects.
fn request_body(objects: &[Object]) -> Bytes {
    let len = objects.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16;
    let mut body = String::with_capacity(len);
    body.push_str(r#"{"attributes":["#);
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&object.json);
    }
    body.push_str("]}");
    Bytes::from(body)
}

fn json_string(text: &str) -> String {
    // A `str` always serializes.
    serde_json::to_string(text).unwrap_or_default()
}

/// Full-jitter exponential backoff for attempt `n` (1-based).
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fastrand::f64())
}

/// A little spread so paused senders do not all return in the same millisecond.
fn jitter() -> Duration {
    Duration::from_millis(fastrand::u64(0..50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::file::FileCatalog;
    use crate::dataset::ItemRecord;
    use crate::item::UrlTemplates;

    fn catalog() -> FileCatalog {
        let records: Vec<ItemRecord> = ["a", "b", "c", "big"]
            .iter()
            .map(|id| ItemRecord {
                id: id.to_string(),
                fields: vec![(
                    "NAME".to_owned(),
                    if *id == "big" {
                        "x".repeat(300)
                    } else {
                        format!("item {id}")
                    },
                )],
            })
            .collect();
        FileCatalog::new(&records, &UrlTemplates::default())
    }

    async fn dry_run(input: &str, options: &Options) -> (Summary, Vec<Problem>) {
        let catalog = catalog();
        let read = AtomicU64::new(0);
        let mut problems = Vec::new();
        let summary = run(
            input.as_bytes(),
            &catalog,
            Destination::DryRun,
            None,
            options,
            &read,
            |p| problems.push(p.clone()),
        )
        .await;
        assert_eq!(read.load(Ordering::Relaxed), input.len() as u64);
        (summary, problems)
    }

    #[tokio::test]
    async fn lists_are_joined_like_the_endpoint_and_problems_name_their_line() {
        let input = concat!(
            r#"{"input":{"userId":"u1"},"output":{"recommendedItems":["c","zz","a","c","big","b"]},"error":null}"#,
            "\n",
            "not json\n",
            r#"{"input":{"userId":"u2"},"output":null,"error":"no such user"}"#,
            "\n\n",
            r#"{"input":{"userId":"u3"},"output":{"recommendedItems":["zz"]},"error":null}"#,
        );
        let options = Options {
            count: 2,
            ..Options::default()
        };
        let (summary, problems) = dry_run(input, &options).await;
        assert_eq!(summary.lines, 5);
        assert_eq!(summary.tally.sent, 1);
        assert_eq!(summary.tally.skipped, 1);
        assert_eq!(summary.tally.failed, 2);
        assert_eq!(
            problems
                .iter()
                .map(|p| (p.line, p.kind))
                .collect::<Vec<_>>(),
            vec![
                (2, "malformed line"),
                (3, "Personalize could not recommend")
            ]
        );
        assert_eq!(summary.items_dropped.get("not in the catalog"), Some(&2));

        let catalog = catalog();
        let context = BatchContext {
            catalog: &catalog,
            destination: &Destination::DryRun,
            options: &options,
            known: std::sync::Mutex::new(Known::new()),
        };
        let user = User {
            line: 1,
            key: "u\"1".into(),
            item_ids: ["c", "zz", "a", "c", "big", "b"].map(String::from).to_vec(),
        };
        let ids: Vec<String> = ["a", "b", "c", "big"].map(String::from).to_vec();
        let found: Known = catalog
            .items(&ids, Instant::now())
            .await
            .unwrap()
            .into_iter()
            .map(|(id, item)| (id, Some(item)))
            .collect();
        let mut dropped = BTreeMap::new();
        let object = context.object(&user, &found, &mut dropped).unwrap();
        assert_eq!(
            object,
            r#"{"external_id":"u\"1","recommendations":[{"id":"c","name":"item c"},{"id":"a","name":"item a"}]}"#
        );
        let long = Options {
            count: 25,
            ..Options::default()
        };
        let context = BatchContext {
            options: &long,
            known: std::sync::Mutex::new(Known::new()),
            ..context
        };
        context.object(&user, &found, &mut dropped).unwrap();
        assert_eq!(dropped.get("string value over 255 characters"), Some(&1));
    }

    #[tokio::test]
    async fn batches_hold_at_most_the_batch_size() {
        let line = r#"{"input":{"userId":"u"},"output":{"recommendedItems":["a"]},"error":null}"#;
        let input = format!("{line}\n").repeat(160);
        let (summary, _) = dry_run(&input, &Options::default()).await;
        assert_eq!(summary.tally.sent, 160);
        let bytes = AtomicU64::new(0);
        let counts = ReadCounts {
            bytes: &bytes,
            lines: AtomicU64::new(0),
            already_done: AtomicU64::new(0),
        };
        let mut reader = Reader {
            input: input.as_bytes(),
            line: 0,
            buffer: Vec::new(),
            finished: FinishedLines::default(),
            batch_size: 75,
            counts: &counts,
            ended: false,
        };
        let mut sizes = Vec::new();
        while let Some(batch) = reader.next_batch().await.unwrap() {
            sizes.push((batch.first, batch.last, batch.users.len()));
        }
        assert_eq!(sizes, vec![(1, 75, 75), (76, 150, 75), (151, 160, 10)]);
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
        assert!(backoff(1) <= BACKOFF_BASE);
    }
}
