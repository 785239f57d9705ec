//! Reads the input a batch at a time, in bounded memory whatever the file holds.
//!
//! A batch is up to `batch_size` users (one `/users/track` request), and also ends after
//! [`MAX_LINES_PER_BATCH`] lines, so a file of millions of error lines still moves on and
//! checkpoints. A line longer than [`MAX_LINE_BYTES`] is a reported problem, read past without
//! being held. Lines an earlier run finished are skipped.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::checkpoint::FinishedLines;
use super::input::{Line, parse_line};
use super::{Problem, Stop};

/// A batch output line names at most 500 ids; this leaves room for the longest ids and scores.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Lines one batch may cover, whatever they hold.
pub const MAX_LINES_PER_BATCH: u64 = 1000;

/// How far the reader got, for the summary and a progress bar.
pub struct ReadCounts<'a> {
    pub bytes: &'a AtomicU64,
    pub lines: AtomicU64,
    pub already_done: AtomicU64,
}

/// Up to `batch_size` users' lines, and the problem lines among them.
pub struct Batch {
    /// First and last input line it covers (1-based, inclusive).
    pub first: u64,
    pub last: u64,
    pub users: Vec<User>,
    pub problems: Vec<Problem>,
}

pub struct User {
    pub line: u64,
    pub key: String,
    pub item_ids: Vec<String>,
}

pub struct Reader<'a, R> {
    input: R,
    /// The last line read.
    line: u64,
    buffer: Vec<u8>,
    finished: FinishedLines,
    batch_size: usize,
    counts: &'a ReadCounts<'a>,
    ended: bool,
    /// Whether a user's line has been read yet: a file that starts with items is refused.
    seen_a_user: bool,
}

impl<'a, R: AsyncBufRead + Unpin> Reader<'a, R> {
    pub fn new(
        input: R,
        finished: FinishedLines,
        batch_size: usize,
        counts: &'a ReadCounts<'a>,
    ) -> Self {
        Reader {
            input,
            line: 0,
            buffer: Vec::new(),
            finished,
            batch_size,
            counts,
            ended: false,
            seen_a_user: false,
        }
    }

    pub async fn next_batch(&mut self) -> Result<Option<Batch>, Stop> {
        if self.ended {
            return Ok(None);
        }
        let mut batch = Batch {
            first: self.line + 1,
            last: self.line,
            users: Vec::with_capacity(self.batch_size),
            problems: Vec::new(),
        };
        while batch.users.len() < self.batch_size
            && batch.last + 1 - batch.first < MAX_LINES_PER_BATCH
        {
            let (read, whole) = self.read_line().await.map_err(|e| {
                Stop::Input(format!("reading the input after line {}: {e}", self.line))
            })?;
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
                batch.last = batch.last.max(batch.first - 1);
                continue;
            }
            batch.last = line;
            if !whole {
                batch.problems.push(Problem::new(
                    line,
                    None,
                    "malformed line",
                    format!("longer than {MAX_LINE_BYTES} bytes; not read"),
                ));
                continue;
            }
            let text = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
            match parse_line(text) {
                Ok(Line::Blank) => {}
                Ok(Line::Ranked { key, item_ids }) => {
                    self.seen_a_user = true;
                    batch.users.push(User {
                        line,
                        key,
                        item_ids,
                    });
                }
                Ok(Line::Related { item_id, .. }) if !self.seen_a_user => {
                    return Err(Stop::Input(format!(
                        "line {line} names an item (itemId {item_id:?}), not a user: this is a related-items (Similar-Items) batch output, one list per item. braze-sync sets per-user attributes, so it sends nothing rather than give item lists to users whose ids match item ids; --related-to-catalog NAME writes such a file into a Braze Catalog's items instead"
                    )));
                }
                Ok(Line::Related { item_id, .. }) => batch.problems.push(Problem::new(
                    line,
                    None,
                    "malformed line",
                    format!("names an item (itemId {item_id:?}) in a file of users"),
                )),
                Ok(Line::Failed { key, error }) => batch.problems.push(Problem::new(
                    line,
                    key,
                    "Personalize could not recommend",
                    error,
                )),
                Err(why) => batch
                    .problems
                    .push(Problem::new(line, None, "malformed line", why)),
            }
        }
        if batch.first > batch.last {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// One line into `buffer`, unless it is longer than [`MAX_LINE_BYTES`]: then it is read
    /// past and `buffer` is left empty. Returns the bytes read and whether the line was kept.
    async fn read_line(&mut self) -> std::io::Result<(usize, bool)> {
        self.buffer.clear();
        let mut read = 0;
        let mut whole = true;
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                return Ok((read, whole));
            }
            let (taken, ends) = match memchr::memchr(b'\n', available) {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            if whole {
                if self.buffer.len() + taken > MAX_LINE_BYTES + 1 {
                    whole = false;
                    self.buffer = Vec::new();
                } else {
                    self.buffer.extend_from_slice(&available[..taken]);
                }
            }
            self.input.consume(taken);
            read += taken;
            if ends {
                return Ok((read, whole));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(bytes: &AtomicU64) -> ReadCounts<'_> {
        ReadCounts {
            bytes,
            lines: AtomicU64::new(0),
            already_done: AtomicU64::new(0),
        }
    }

    async fn batches(input: &[u8], batch_size: usize) -> Result<Vec<Batch>, Stop> {
        let bytes = AtomicU64::new(0);
        let counts = counts(&bytes);
        let mut reader = Reader::new(input, FinishedLines::default(), batch_size, &counts);
        let mut all = Vec::new();
        while let Some(batch) = reader.next_batch().await? {
            all.push(batch);
        }
        assert_eq!(bytes.load(Ordering::Relaxed), input.len() as u64);
        Ok(all)
    }

    const USER: &str =
        r#"{"input":{"userId":"u"},"output":{"recommendedItems":["a"]},"error":null}"#;

    #[tokio::test]
    async fn batches_hold_at_most_the_batch_size() {
        let input = format!("{USER}\n").repeat(160);
        let sizes: Vec<_> = batches(input.as_bytes(), 75)
            .await
            .unwrap()
            .iter()
            .map(|b| (b.first, b.last, b.users.len()))
            .collect();
        assert_eq!(sizes, vec![(1, 75, 75), (76, 150, 75), (151, 160, 10)]);
    }

    #[tokio::test]
    async fn a_file_of_error_lines_moves_on_in_bounded_batches() {
        let error = r#"{"input":{"userId":"u"},"output":null,"error":"User not found"}"#;
        let input = format!("{error}\n").repeat(2500);
        let all = batches(input.as_bytes(), 75).await.unwrap();
        let sizes: Vec<_> = all
            .iter()
            .map(|b| (b.first, b.last, b.problems.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![(1, 1000, 1000), (1001, 2000, 1000), (2001, 2500, 500)]
        );
    }

    #[tokio::test]
    async fn an_endless_line_is_a_problem_and_the_next_line_still_counts() {
        let mut input = vec![b'{'; MAX_LINE_BYTES * 3];
        input.push(b'\n');
        input.extend_from_slice(USER.as_bytes());
        let all = batches(&input, 75).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].users.len(), 1);
        assert_eq!(all[0].problems.len(), 1);
        assert!(all[0].problems[0].detail.contains("longer than"));
        // Exactly at the limit is fine.
        let mut exact = USER.as_bytes().to_vec();
        exact.resize(MAX_LINE_BYTES, b' ');
        let all = batches(&exact, 75).await.unwrap();
        assert_eq!(all[0].users.len(), 1);
    }

    #[tokio::test]
    async fn a_related_items_file_is_refused_before_anything_is_sent() {
        let item = r#"{"input":{"itemId":"i1"},"output":{"recommendedItems":["a"]},"error":null}"#;
        let input = format!("\n{item}\n{USER}\n");
        let Err(Stop::Input(why)) = batches(input.as_bytes(), 75).await else {
            panic!("a related-items file must be refused");
        };
        assert!(
            why.contains("line 2") && why.contains("Similar-Items"),
            "{why}"
        );
        // After users, an item line is one bad line.
        let input = format!("{USER}\n{item}\n");
        let all = batches(input.as_bytes(), 75).await.unwrap();
        assert_eq!((all[0].users.len(), all[0].problems.len()), (1, 1));
    }
}
