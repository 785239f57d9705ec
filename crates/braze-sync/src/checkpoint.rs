//! The checkpoint: a journal of finished batches, so an interrupted run continues where it
//! stopped.
//!
//! The first line names the input; each later line is one finished batch: the input lines it
//! covered and what became of its users. A line is appended (one `write`) as each batch finishes,
//! so a run killed at any moment has recorded every batch that finished, and a resumed run sends
//! again only the batches that were in flight. A torn last line is a batch not recorded.
//!
//! The header is synced to disk before anything is sent, and entries at least every
//! [`SYNC_EVERY`] and when the checkpoint closes: a machine that loses power forgets at most that
//! much, and those batches are sent again, never skipped. A torn header (the machine died while
//! writing it, before any batch) is written again. The file is locked while a run holds it, so a
//! second run on the same checkpoint refuses to start rather than send the same users.
//!
//! ```text
//! {"input":"s3://bucket/out/users.json.out","version":"\"9b2cf535f27731c974343645a3985328\""}
//! {"lines":[1,75],"sent":74,"failed":1,"skipped":0}
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Entries reach the disk at least this often.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);

/// Which input a checkpoint belongs to: its location and its version (S3's ETag, or a local
/// file's size and modification time), so a new file at the same place starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    pub input: String,
    pub version: String,
}

/// What became of one batch's users; summed over the batches a checkpoint records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Delta sync: users whose list was the one Braze already had, so not sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchanged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.unchanged += other.unchanged;
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// First and last input line (1-based, inclusive).
    lines: [u64; 2],
    #[serde(flatten)]
    tally: Tally,
}

pub struct Checkpoint {
    path: PathBuf,
    file: File,
    /// Finished line ranges, sorted and merged, until a run takes them.
    done: Vec<[u64; 2]>,
    /// What earlier runs recorded.
    earlier: Tally,
    /// When entries were last synced to disk, and whether some were written since.
    synced: Instant,
    dirty: bool,
}

/// The input lines earlier runs finished.
#[derive(Debug, Default)]
pub struct FinishedLines {
    /// Sorted, merged, inclusive ranges.
    ranges: Vec<[u64; 2]>,
    /// Where `contains` last looked; lines are asked about in increasing order.
    cursor: usize,
}

impl FinishedLines {
    /// Whether an earlier run finished input line `line`. Ask in increasing line order.
    pub fn contains(&mut self, line: u64) -> bool {
        while let Some(range) = self.ranges.get(self.cursor) {
            if line > range[1] {
                self.cursor += 1;
            } else {
                return line >= range[0];
            }
        }
        false
    }
}

impl Checkpoint {
    /// Opens (or starts) the checkpoint at `path` for `identity`, and locks it for this run. A
    /// checkpoint of another input is refused: resuming it would skip lines of a file it never
    /// saw. So is one another run holds.
    pub fn open(path: &Path, identity: &InputIdentity) -> Result<Checkpoint, String> {
        let shown = path.display();
        let cannot = |e: std::io::Error| format!("cannot use checkpoint {shown}: {e}");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "checkpoint {shown} is in use by another braze-sync run; wait for it to end (two runs on one checkpoint would send the same users twice)"
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
        }
        let mut done = Vec::new();
        let mut earlier = Tally::default();
        let mut lines = BufReader::new(&file).lines();
        let header = lines.next().transpose().map_err(cannot)?;
        let mut fresh = true;
        if let Some(header) = header {
            match serde_json::from_str::<InputIdentity>(&header) {
                Ok(theirs) if &theirs != identity => {
                    return Err(format!(
                        "checkpoint {shown} belongs to {} (version {}), not {} (version {}); delete it or choose another --checkpoint",
                        theirs.input, theirs.version, identity.input, identity.version
                    ));
                }
                Ok(_) => fresh = false,
                Err(e) => {
                    // Only a header the machine tore while writing it, with nothing after it, is
                    // ours to write again; anything else may be someone's file.
                    let torn = header.starts_with("{\"input\"") && lines.next().is_none();
                    if !torn {
                        return Err(format!(
                            "{shown} is not a braze-sync checkpoint ({e}); choose another --checkpoint, or delete it if it is an old checkpoint of this file (the next run then sends every line)"
                        ));
                    }
                    tracing::warn!(checkpoint = %shown, "the checkpoint's header was torn before any batch was recorded; writing it again");
                }
            }
        }
        if !fresh {
            for line in lines {
                let line = line.map_err(cannot)?;
                // A line the kill tore in half is a batch that did not finish.
                let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
                    continue;
                };
                done.push(entry.lines);
                earlier += entry.tally;
            }
        }
        if fresh {
            file.set_len(0).map_err(cannot)?;
            let mut header = serde_json::to_string(identity).unwrap_or_default();
            header.push('\n');
            file.write_all(header.as_bytes()).map_err(cannot)?;
            file.sync_all().map_err(cannot)?;
            sync_directory(path);
        } else if !ends_with_newline(path) {
            // A torn last line must not swallow the next entry.
            file.write_all(b"\n").map_err(cannot)?;
        }
        done.sort_unstable();
        let mut merged: Vec<[u64; 2]> = Vec::with_capacity(done.len());
        for range in done {
            match merged.last_mut() {
                Some(last) if range[0] <= last[1] + 1 => last[1] = last[1].max(range[1]),
                _ => merged.push(range),
            }
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            file,
            done: merged,
            earlier,
            synced: Instant::now(),
            dirty: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Users earlier runs sent, failed or skipped.
    pub fn earlier(&self) -> Tally {
        self.earlier
    }

    /// The lines earlier runs finished, for the run that resumes them.
    pub fn finished_lines(&mut self) -> FinishedLines {
        FinishedLines {
            ranges: std::mem::take(&mut self.done),
            cursor: 0,
        }
    }

    /// Records a finished batch. One `write` of one line: the kernel has it even if the
    /// process is killed right after; the disk has it within [`SYNC_EVERY`].
    pub fn record(&mut self, first: u64, last: u64, tally: Tally) -> Result<(), String> {
        let mut line = serde_json::to_string(&Entry {
            lines: [first, last],
            tally,
        })
        .unwrap_or_default();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot write checkpoint {}: {e}", self.path.display()))?;
        self.dirty = true;
        if self.synced.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Puts every entry written so far on disk.
    pub fn sync(&mut self) -> Result<(), String> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| format!("cannot sync checkpoint {}: {e}", self.path.display()))?;
            self.dirty = false;
        }
        self.synced = Instant::now();
        Ok(())
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "the checkpoint's last entries may not be on disk");
        }
    }
}

/// A new file's name is on disk once its directory is synced.
fn sync_directory(path: &Path) {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
}

fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return true;
    };
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(version: &str) -> InputIdentity {
        InputIdentity {
            input: "s3://b/k".into(),
            version: version.into(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("braze-sync-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_resumed_run_skips_exactly_the_recorded_batches() {
        let path = temp("resume");
        let mut first = Checkpoint::open(&path, &identity("v1")).unwrap();
        assert!(!first.finished_lines().contains(1));
        let one = Tally {
            sent: 75,
            ..Tally::default()
        };
        first.record(1, 80, one).unwrap();
        // Batches finish out of order; the one at 81..=160 was in flight.
        first.record(161, 240, one).unwrap();
        drop(first);

        let mut second = Checkpoint::open(&path, &identity("v1")).unwrap();
        assert_eq!(second.earlier().sent, 150);
        let mut finished = second.finished_lines();
        let done: Vec<u64> = (1..=300).filter(|&l| finished.contains(l)).collect();
        let expected: Vec<u64> = (1..=80).chain(161..=240).collect();
        assert_eq!(done, expected);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_torn_last_line_is_a_batch_not_done_and_the_next_entry_survives() {
        let path = temp("torn");
        let mut cp = Checkpoint::open(&path, &identity("v1")).unwrap();
        cp.record(1, 10, Tally::default()).unwrap();
        drop(cp);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"lines":[11,2"#).unwrap();
        drop(file);

        let mut cp = Checkpoint::open(&path, &identity("v1")).unwrap();
        let mut finished = cp.finished_lines();
        assert!(finished.contains(10) && !finished.contains(11));
        cp.record(11, 20, Tally::default()).unwrap();
        drop(cp);
        let mut cp = Checkpoint::open(&path, &identity("v1")).unwrap();
        assert!(cp.finished_lines().contains(20));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_torn_header_is_written_again_and_a_foreign_file_is_left_alone() {
        let path = temp("torn-header");
        std::fs::write(&path, br#"{"input":"s3://b/k","vers"#).unwrap();
        let mut cp = Checkpoint::open(&path, &identity("v1")).unwrap();
        cp.record(1, 10, Tally::default()).unwrap();
        drop(cp);
        let mut cp = Checkpoint::open(&path, &identity("v1")).unwrap();
        assert!(cp.finished_lines().contains(10));
        drop(cp);

        std::fs::write(&path, b"user,notes\nsomeone else's file\n").unwrap();
        let err = Checkpoint::open(&path, &identity("v1"))
            .err()
            .expect("refused");
        assert!(err.contains("not a braze-sync checkpoint"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"user,notes\nsomeone else's file\n"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_second_run_on_the_same_checkpoint_refuses_to_start() {
        let path = temp("locked");
        let first = Checkpoint::open(&path, &identity("v1")).unwrap();
        let err = Checkpoint::open(&path, &identity("v1"))
            .err()
            .expect("refused");
        assert!(err.contains("in use by another braze-sync run"), "{err}");
        drop(first);
        Checkpoint::open(&path, &identity("v1")).unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn another_inputs_checkpoint_is_refused() {
        let path = temp("other");
        Checkpoint::open(&path, &identity("v1")).unwrap();
        let err = Checkpoint::open(&path, &identity("v2"))
            .err()
            .expect("refused");
        assert!(err.contains("delete it"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
