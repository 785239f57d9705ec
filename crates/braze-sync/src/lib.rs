//! The batch path: a Personalize batch inference output file into one Braze custom attribute
//! per user, an array of item objects a message reads without calling any API.
//!
//! The file is streamed, never held whole: lines are read in order and grouped into batches of up
//! to 75 users (one `/users/track` request each). Each batch's lists are joined with the catalog
//! as the endpoint joins them (ranked order, unknown and repeated ids dropped, the first `count`
//! kept), shaped to Braze's limits field by field, and sent under the rate limit, several batches
//! at a time. Each finished batch is written to the checkpoint, so a run that dies continues where
//! it stopped.
//!
//! Nobody is lost quietly. A user is final only when Braze said so of that user (an `errors`
//! entry of a 2xx, or a 400 for a request of that user alone); whatever Braze says of whole
//! requests is retried, or stops the run with nothing of the batch recorded as done.

pub mod braze;
pub mod checkpoint;
pub mod delta;
pub mod fields;
pub mod input;
pub mod limiter;
pub mod memory;
pub mod reader;
pub mod related;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use tokio::io::AsyncBufRead;
use tokio::time::Instant;

use braze::{Answer, Braze, MAX_ARRAY_BYTES, MAX_OBJECTS_PER_REQUEST, printable};
use checkpoint::{Checkpoint, Tally};
use delta::{Delta, digest};
use fields::Fields;
use limiter::Limiter;
use memory::{Join, List, MEMORY_IDS, Memory};
use personalize_braze_core::catalog::Catalog;
use reader::{Batch, ReadCounts, Reader};

/// How long one batch's catalog lookups may take.
const CATALOG_BUDGET: Duration = Duration::from_secs(20);
/// Retries of a request that failed in a way worth retrying: first wait up to 200 ms, doubling
/// to 20 s, with full jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(20);
/// Problems reported one by one; the rest are counted.
pub const MAX_REPORTED_PROBLEMS: u64 = 200;

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The custom attribute each user's list is written to.
    pub attribute: String,
    /// At most this many items per user, the best first.
    pub count: usize,
    /// The fields of each item.
    pub fields: Fields,
    /// Users per request, at most 75 (some Braze contracts allow 50).
    pub batch_size: usize,
    /// The most bytes one user's array may take (Braze: 50 KB).
    pub max_array_bytes: usize,
    /// `_update_existing_only`: set the attribute only on profiles Braze already has.
    pub update_existing_only: bool,
    /// Batches (requests) in flight at once. The rate Braze sees is at most this many over its
    /// latency, and never over the limit.
    pub concurrency: usize,
    /// Attempts per request (429s, 408s, 5xx, timeouts) before the run stops.
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            attribute: "recommendations".into(),
            count: 25,
            fields: Fields::default(),
            batch_size: MAX_OBJECTS_PER_REQUEST,
            max_array_bytes: MAX_ARRAY_BYTES,
            update_existing_only: true,
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

/// What a run writes down besides Braze: the checkpoint of finished batches, and the delta state.
#[derive(Default)]
pub struct Journal<'a> {
    pub checkpoint: Option<&'a mut Checkpoint>,
    /// With a delta, users whose list Braze already has are not sent, and this run's lists are
    /// remembered for the next.
    pub delta: Option<&'a mut Delta>,
}

/// Why a run stopped before the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Braze refused the key (401 or 403).
    Unauthorized(String),
    /// The endpoint is not Braze's `/users/track`, or Braze kept failing whole requests.
    Braze(String),
    /// The input cannot be read, or is not a file of users.
    Input(String),
    /// The checkpoint cannot be written.
    Checkpoint(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Unauthorized(why)
            | Stop::Braze(why)
            | Stop::Input(why)
            | Stop::Checkpoint(why) => f.write_str(why),
        }
    }
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

impl Problem {
    pub fn new(line: u64, key: Option<String>, kind: &'static str, detail: String) -> Problem {
        Problem {
            line,
            key,
            kind,
            detail,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(key) = &self.key {
            write!(f, " (user {key:?})")?;
        }
        // The detail may be Personalize's or Braze's text: never raw to a terminal.
        write!(f, ": {}: {}", self.kind, printable(&self.detail))
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub dry_run: bool,
    /// Input lines read, and of those the ones an earlier run had finished.
    pub lines: u64,
    pub lines_already_done: u64,
    /// This run's users: sent (or, in a dry run, ready to send), failed, skipped, unchanged.
    pub tally: Tally,
    /// What earlier runs of the same checkpoint recorded.
    pub earlier: Tally,
    /// Failed users and lines by kind.
    pub failures: BTreeMap<&'static str, u64>,
    /// Problems counted but not reported one by one.
    pub problems_not_shown: u64,
    /// Users without a single item to send, by why.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Items left out of users' lists, by reason (ids the catalog lacks, Braze's limits).
    pub items_dropped: BTreeMap<&'static str, u64>,
    /// String values cut to Braze's 255 characters, and keys Braze cannot take left out, in
    /// the lists sent.
    pub values_cut: u64,
    pub fields_dropped: u64,
    /// Users not sent this time (their batch was in flight when the run stopped, or its items
    /// could not be read): not recorded as done, so the next run with the checkpoint sends them.
    pub unsent: u64,
    pub unsent_reason: Option<String>,
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub stopped: Option<Stop>,
}

impl Summary {
    /// Whether every line was dealt with and every user sent.
    pub fn complete(&self) -> bool {
        self.stopped.is_none() && self.unsent == 0 && self.tally.failed == 0
    }

    /// Whether the run read the whole input and left nobody for a rerun: the delta state may
    /// then replace the last one.
    pub fn finished(&self) -> bool {
        self.stopped.is_none() && self.unsent == 0
    }

    /// 0: every user sent (or skipped, or unchanged). 1: the run ended, but some users or lines
    /// failed (each named). 3: the run stopped early (wrong key or endpoint, Braze failing,
    /// unreadable input); nothing past the last finished batch counts as done.
    pub fn exit_code(&self) -> u8 {
        if self.stopped.is_some() {
            3
        } else if self.complete() {
            0
        } else {
            1
        }
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
        let unchanged = if self.tally.unchanged > 0 {
            format!(", {} unchanged (not sent)", self.tally.unchanged)
        } else {
            String::new()
        };
        writeln!(
            f,
            "braze-sync: {} users {sent}{unchanged}, {} skipped, {} failed; {} lines read in {seconds:.1} s ({:.0} users/s)",
            self.tally.sent,
            self.tally.skipped,
            self.tally.failed,
            self.lines,
            (self.tally.sent + self.tally.unchanged) as f64 / seconds.max(1e-9),
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
        if self.problems_not_shown > 0 {
            writeln!(
                f,
                "  problems not shown: {} (the first {MAX_REPORTED_PROBLEMS} are above)",
                self.problems_not_shown
            )?;
        }
        for (kind, n) in &self.skipped {
            writeln!(f, "  skipped: {n} × {kind}")?;
        }
        for (reason, n) in &self.items_dropped {
            writeln!(f, "  items left out: {n} × {reason}")?;
        }
        if self.values_cut > 0 {
            writeln!(
                f,
                "  values cut to Braze's 255 characters: {} (the items were kept)",
                self.values_cut
            )?;
        }
        if self.fields_dropped > 0 {
            writeln!(
                f,
                "  fields left out (a key with a space or over 255 characters): {} (the items were kept)",
                self.fields_dropped
            )?;
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
                "  stopped early: {why}; nothing after the last finished batch was recorded as done: fix that, then run again with the same checkpoint to continue"
            )?;
        }
        Ok(())
    }
}

/// Sends `input` to `destination`. `problems` hears of the first [`MAX_REPORTED_PROBLEMS`]
/// failed users or lines as they happen; `bytes_read` follows the input for a progress bar.
pub async fn run<R, C>(
    input: R,
    catalog: &C,
    destination: Destination<'_>,
    journal: Journal<'_>,
    options: &Options,
    bytes_read: &AtomicU64,
    mut problems: impl FnMut(&Problem),
) -> Summary
where
    R: AsyncBufRead + Unpin,
    C: Catalog,
{
    let started = Instant::now();
    let Journal {
        mut checkpoint,
        delta,
    } = journal;
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
    let batch_size = options.batch_size.clamp(1, MAX_OBJECTS_PER_REQUEST);
    let reader = Reader::new(input, finished, batch_size, &read);
    let batches = stream::unfold(reader, |mut reader| async move {
        let next = reader.next_batch().await.transpose()?;
        Some((next, reader))
    });
    let mut digests: Vec<(u64, u64)> = Vec::new();
    let mut reported = 0;
    {
        let context = BatchContext {
            catalog,
            destination: &destination,
            options,
            memory: Mutex::new(Memory::new(MEMORY_IDS)),
            delta: delta.as_deref(),
        };
        let outcomes = batches
            .map(|batch| {
                let context = &context;
                async move {
                    match batch {
                        Ok(batch) => context.process(batch).await,
                        Err(stop) => Outcome {
                            stop: Some(stop),
                            ..Outcome::default()
                        },
                    }
                }
            })
            .buffer_unordered(options.concurrency.max(1));
        let mut outcomes = std::pin::pin!(outcomes);
        while let Some(outcome) = outcomes.next().await {
            for problem in &outcome.problems {
                *summary.failures.entry(problem.kind).or_default() += 1;
                if reported < MAX_REPORTED_PROBLEMS {
                    reported += 1;
                    problems(problem);
                } else {
                    summary.problems_not_shown += 1;
                }
            }
            for (kind, n) in &outcome.skipped {
                *summary.skipped.entry(kind).or_default() += n;
            }
            for (reason, n) in &outcome.items_dropped {
                *summary.items_dropped.entry(reason).or_default() += n;
            }
            summary.tally += outcome.tally;
            summary.values_cut += outcome.values_cut;
            summary.fields_dropped += outcome.fields_dropped;
            summary.requests += outcome.requests;
            summary.retries += outcome.retries;
            summary.rate_limited += outcome.rate_limited;
            if let Some(stop) = outcome.stop {
                if outcome.unsent > 0 {
                    summary.unsent += outcome.unsent;
                    summary.unsent_reason.get_or_insert_with(|| {
                        "their batch was in flight when the run stopped".into()
                    });
                }
                summary.stopped = Some(stop);
                break;
            }
            if outcome.unsent > 0 {
                summary.unsent += outcome.unsent;
                summary.unsent_reason = outcome.unsent_reason;
                continue;
            }
            digests.extend(outcome.digests);
            if !summary.dry_run
                && let Some(checkpoint) = checkpoint.as_mut()
                && let Err(why) = checkpoint.record(outcome.first, outcome.last, outcome.tally)
            {
                summary.stopped = Some(Stop::Checkpoint(why));
                break;
            }
        }
    }
    if let Some(checkpoint) = checkpoint.as_mut()
        && let Err(why) = checkpoint.sync()
    {
        summary.stopped.get_or_insert(Stop::Checkpoint(why));
    }
    if let Some(delta) = delta {
        delta.remember(digests);
    }
    summary.lines = read.lines.load(Ordering::Relaxed);
    summary.lines_already_done = read.already_done.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    summary
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
    values_cut: u64,
    fields_dropped: u64,
    /// (user, object) digests of the users sent or found unchanged, for the delta state.
    digests: Vec<(u64, u64)>,
    unsent: u64,
    unsent_reason: Option<String>,
    requests: u64,
    retries: u64,
    rate_limited: u64,
    /// The run must stop: this batch is not done.
    stop: Option<Stop>,
}

struct BatchContext<'a, C> {
    catalog: &'a C,
    destination: &'a Destination<'a>,
    options: &'a Options,
    /// Shared by the batches in flight; never held across an await.
    memory: Mutex<Memory>,
    delta: Option<&'a Delta>,
}

/// One user's attribute object, ready to send: `{"external_id":…,"ATTRIBUTE":[…]}`.
struct Object {
    line: u64,
    key: String,
    json: String,
    /// (user, object) digests, with a delta state.
    digests: Option<(u64, u64)>,
}

/// How a request (or its retries) ended.
enum Delivery {
    Sent { refused: Vec<(usize, String)> },
    Refused { message: String },
}

pub const NONE_IN_CATALOG: &str = "none of the user's items is in the catalog";
pub const NONE_FITS: &str = "none of the user's items can be sent to Braze";

impl<C: Catalog> BatchContext<'_, C> {
    /// Joins and sends one batch.
    async fn process(&self, batch: Batch) -> Outcome {
        let mut outcome = Outcome {
            first: batch.first,
            last: batch.last,
            problems: batch.problems,
            ..Outcome::default()
        };
        outcome.tally.failed = outcome.problems.len() as u64;
        if batch.users.is_empty() {
            return outcome;
        }
        let join = Join {
            catalog: self.catalog,
            memory: &self.memory,
            fields: &self.options.fields,
            count: self.options.count,
            max_array_bytes: self.options.max_array_bytes,
            deadline: Instant::now() + CATALOG_BUDGET,
        };
        let lists = match join.lists(&batch.users).await {
            Ok(lists) => lists,
            Err(e) => {
                outcome.unsent = batch.users.len() as u64;
                outcome.unsent_reason = Some(format!("the catalog could not be read: {e}"));
                return outcome;
            }
        };
        let mut objects = Vec::with_capacity(batch.users.len());
        for (user, list) in batch.users.into_iter().zip(lists) {
            for (reason, n) in &list.left_out {
                *outcome.items_dropped.entry(reason).or_default() += n;
            }
            if list.items.is_empty() {
                outcome.tally.skipped += 1;
                let why = if list.found == 0 {
                    NONE_IN_CATALOG
                } else {
                    NONE_FITS
                };
                *outcome.skipped.entry(why).or_default() += 1;
                continue;
            }
            for item in &list.items {
                outcome.values_cut += u64::from(item.cut);
                outcome.fields_dropped += u64::from(item.dropped);
            }
            let json = self.object(&user.key, &list);
            // Digests only for delta sync: hashing every object would cost a plain run.
            let digests = self
                .delta
                .map(|_| (digest(user.key.as_bytes()), digest(json.as_bytes())));
            if let (Some(delta), Some((key, object))) = (self.delta, digests)
                && delta.unchanged(key, object)
            {
                outcome.tally.unchanged += 1;
                outcome.digests.push((key, object));
                continue;
            }
            objects.push(Object {
                line: user.line,
                key: user.key,
                json,
                digests,
            });
        }
        let Destination::Braze { braze, limiter } = self.destination else {
            outcome.tally.sent += objects.len() as u64;
            return outcome;
        };
        // A request Braze refuses whole (400) is split in halves until the refused users stand
        // alone, so one bad user never costs the others their lists.
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..objects.len());
        let mut delivered = 0;
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            let body = request_body(&objects[range.clone()]);
            let delivery = match self
                .deliver(braze, limiter, body, range.len(), &mut outcome)
                .await
            {
                Ok(delivery) => delivery,
                Err(stop) => {
                    outcome.stop = Some(stop);
                    outcome.unsent = (objects.len() - delivered) as u64;
                    return outcome;
                }
            };
            match delivery {
                Delivery::Sent { refused } => {
                    let objects = &objects[range.clone()];
                    for (index, why) in &refused {
                        let object = &objects[*index];
                        outcome.problems.push(Problem::new(
                            object.line,
                            Some(object.key.clone()),
                            "refused by Braze",
                            why.clone(),
                        ));
                    }
                    for (index, object) in objects.iter().enumerate() {
                        if let Some(digests) = object.digests
                            && !refused.iter().any(|(i, _)| *i == index)
                        {
                            outcome.digests.push(digests);
                        }
                    }
                    outcome.tally.sent += (objects.len() - refused.len()) as u64;
                    outcome.tally.failed += refused.len() as u64;
                    delivered += objects.len();
                }
                Delivery::Refused { message } if range.len() > 1 => {
                    tracing::debug!(%message, users = range.len(), "request refused; splitting it");
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
                Delivery::Refused { message } => {
                    let object = &objects[range.start];
                    outcome.tally.failed += 1;
                    delivered += 1;
                    outcome.problems.push(Problem::new(
                        object.line,
                        Some(object.key.clone()),
                        "refused by Braze",
                        format!("HTTP 400: {message}"),
                    ));
                }
            }
        }
        outcome
    }

    /// `{"external_id":KEY,"_update_existing_only":true,"ATTRIBUTE":[items…]}`.
    fn object(&self, key: &str, list: &List) -> String {
        let key = json_string(key);
        let attribute = json_string(&self.options.attribute);
        let mut object = String::with_capacity(64 + key.len() + attribute.len() + list.bytes);
        object.push_str(r#"{"external_id":"#);
        object.push_str(&key);
        if self.options.update_existing_only {
            object.push_str(r#","_update_existing_only":true"#);
        }
        object.push(',');
        object.push_str(&attribute);
        object.push_str(":[");
        for (i, item) in list.items.iter().enumerate() {
            if i > 0 {
                object.push(',');
            }
            object.push_str(&item.json);
        }
        object.push_str("]}");
        object
    }

    /// Sends one body of `objects` objects until Braze takes it or refuses it; `Err` when the
    /// run must stop (a wrong key or endpoint, or Braze failing every attempt).
    async fn deliver(
        &self,
        braze: &Braze,
        limiter: &Limiter,
        body: Bytes,
        objects: usize,
        outcome: &mut Outcome,
    ) -> Result<Delivery, Stop> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            limiter.acquire().await;
            outcome.requests += 1;
            let reply = braze.track(body.clone(), objects).await;
            if let Some(window) = reply.window
                && window.remaining == 0
            {
                // Braze says its window is spent: nobody sends until it resets.
                limiter.pause_until(Instant::now() + window.reset_in);
            }
            let (wait, why) = match reply.answer {
                Answer::Accepted { refused } => return Ok(Delivery::Sent { refused }),
                Answer::BadRequest { message } => return Ok(Delivery::Refused { message }),
                Answer::Unauthorized { status, message } => {
                    return Err(Stop::Unauthorized(format!(
                        "Braze refused the API key (HTTP {status}: {message}); it needs the users.track permission"
                    )));
                }
                Answer::WrongEndpoint { status, message } => {
                    return Err(Stop::Braze(format!(
                        "{} answered HTTP {status} ({message}), which is not how Braze's /users/track answers; check BRAZE_REST_ENDPOINT (your workspace's REST endpoint, such as https://rest.iad-01.braze.com)",
                        braze.endpoint()
                    )));
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
                return Err(Stop::Braze(format!(
                    "Braze kept failing: {why}, {attempt} attempts"
                )));
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

/// Full-jitter exponential backoff after attempt `n` (1-based).
fn backoff(attempt: u32) -> Duration {
    personalize_braze_core::encoding::backoff(attempt.saturating_sub(1), BACKOFF_BASE, BACKOFF_CAP)
}

/// A little spread so paused senders do not all return in the same millisecond.
fn jitter() -> Duration {
    Duration::from_millis(fastrand::u64(0..50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalize_braze_core::dataset::ItemRecord;
    use personalize_braze_core::item::UrlTemplates;
    use personalize_braze_local::file_catalog::FileCatalog;

    fn catalog() -> FileCatalog {
        let records: Vec<ItemRecord> = ["a", "b", "c", "long"]
            .iter()
            .map(|id| ItemRecord {
                id: id.to_string(),
                fields: vec![
                    ("NAME".to_owned(), format!("item {id}")),
                    (
                        "DESCRIPTION".to_owned(),
                        if *id == "long" {
                            "x".repeat(400)
                        } else {
                            "short".to_owned()
                        },
                    ),
                ],
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
            Journal::default(),
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
            r#"{"input":{"userId":"u1"},"output":{"recommendedItems":["c","zz","a","c","long","b"]},"error":null}"#,
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
        assert_eq!(summary.skipped.get(NONE_IN_CATALOG), Some(&1));
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
        assert_eq!(summary.items_dropped.get(memory::NOT_IN_CATALOG), Some(&2));
    }

    #[tokio::test]
    async fn a_long_description_is_cut_never_the_item() {
        let input =
            r#"{"input":{"userId":"u1"},"output":{"recommendedItems":["long","a"]},"error":null}"#;
        let options = Options {
            fields: Fields::parse("name,description").unwrap(),
            ..Options::default()
        };
        let (summary, _) = dry_run(input, &options).await;
        assert_eq!(summary.tally.sent, 1);
        assert_eq!(summary.values_cut, 1);
        assert!(
            summary.items_dropped.is_empty(),
            "{:?}",
            summary.items_dropped
        );
        assert!(
            summary
                .to_string()
                .contains("values cut to Braze's 255 characters: 1")
        );
    }

    #[tokio::test]
    async fn objects_ask_braze_not_to_create_profiles_unless_told() {
        let context = |options: &'static Options| BatchContext {
            catalog: Box::leak(Box::new(catalog())),
            destination: &Destination::DryRun,
            options,
            memory: Mutex::new(Memory::new(10)),
            delta: None,
        };
        let list = List::default();
        let default: &'static Options = Box::leak(Box::new(Options::default()));
        assert_eq!(
            context(default).object("u\"1", &list),
            r#"{"external_id":"u\"1","_update_existing_only":true,"recommendations":[]}"#
        );
        let create: &'static Options = Box::leak(Box::new(Options {
            update_existing_only: false,
            attribute: "picks".into(),
            ..Options::default()
        }));
        assert_eq!(
            context(create).object("u1", &list),
            r#"{"external_id":"u1","picks":[]}"#
        );
    }

    #[tokio::test]
    async fn only_the_first_problems_are_reported_and_the_rest_counted() {
        let line = r#"{"input":{"userId":"u"},"output":null,"error":"\u001b[31mUser not found"}"#;
        let input = format!("{line}\n").repeat(1000);
        let (summary, problems) = dry_run(&input, &Options::default()).await;
        assert_eq!(problems.len() as u64, MAX_REPORTED_PROBLEMS);
        assert_eq!(summary.problems_not_shown, 1000 - MAX_REPORTED_PROBLEMS);
        assert_eq!(summary.tally.failed, 1000);
        // Personalize's text reaches the terminal escaped.
        let shown = problems[0].to_string();
        assert!(
            !shown.contains('\u{1b}') && shown.contains("\\u{1b}[31m"),
            "{shown}"
        );
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
        assert!(backoff(1) <= BACKOFF_BASE);
    }
}
