//! import-currents: a Braze Currents export (Avro files in S3, or a local copy) into an Amazon
//! Personalize interactions CSV (`USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP`).
//!
//! - [`mapping`]: which events become interactions (purchases, custom events by name, message
//!   engagement by field);
//! - [`object`]: one Avro file, streamed;
//! - [`state`]: the objects and event ids earlier runs took, so each event is written once;
//!
//! [`import`] ties them together: a run reads only the objects no earlier run read to the end,
//! appends what they map to, and saves the state after the output.

pub mod mapping;
pub mod object;
pub mod state;

use std::fs::OpenOptions;
use std::io::{Seek, Write};
use std::path::PathBuf;

use mapping::Mapping;
use object::{HEADER, ObjectReport};
use personalize_braze_files::{Location, Store};
use state::State;

/// One run's settings.
pub struct Import {
    pub input: Location,
    pub output: Location,
    pub state: Location,
    pub mapping: Mapping,
}

/// What a run did, object by object.
#[derive(Debug, Default)]
pub struct Summary {
    /// Objects read now, with what each gave.
    pub read: Vec<(String, ObjectReport)>,
    /// Objects an earlier run read to the end.
    pub already_read: u64,
    /// Objects of event types the mapping does not take (read again once it does).
    pub skipped: u64,
    /// Bytes of an interrupted run's rows cut off the output's end before writing them again.
    pub cut_off: u64,
    /// Rows in the output after this run, header excluded.
    pub output_bytes: u64,
}

impl Summary {
    pub fn total(&self, field: impl Fn(&ObjectReport) -> u64) -> u64 {
        self.read.iter().map(|(_, r)| field(r)).sum()
    }

    pub fn failed(&self) -> impl Iterator<Item = &(String, ObjectReport)> {
        self.read.iter().filter(|(_, r)| r.error.is_some())
    }
}

/// Why a run could not start or finish; nothing is recorded as done then.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Runs one import on the calling (blocking) thread.
pub fn import(settings: &Import, store: &Store) -> Result<Summary, ImportError> {
    let stored = store.read(&settings.state).map_err(ImportError)?;
    let first_run = stored.is_none();
    let mut state = match stored {
        Some(bytes) => {
            State::from_json(&bytes).map_err(|e| ImportError(format!("{}: {e}", settings.state)))?
        }
        None => State::default(),
    };
    let mut summary = Summary::default();
    let (working, cut_off) = open_output(settings, store, &state, first_run)?;
    summary.cut_off = cut_off;
    let (file, path) = working;
    let fresh = state.output_bytes == 0;
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(std::io::BufWriter::with_capacity(256 * 1024, file));
    if fresh {
        out.write_record(HEADER)
            .map_err(|e| ImportError(format!("cannot write {}: {e}", settings.output)))?;
    }

    let listed = store.list(&settings.input, ".avro").map_err(ImportError)?;
    for object in listed {
        if state.objects.contains_key(&object.key) {
            summary.already_read += 1;
            continue;
        }
        let in_key = object::type_in_key(&object.key);
        if in_key.is_some_and(|t| !settings.mapping.reads(t)) {
            summary.skipped += 1;
            continue;
        }
        let name = if object.key.is_empty() {
            settings.input.to_string()
        } else {
            object.key.clone()
        };
        let report = match store.open(&settings.input, &object.key) {
            Ok(input) => {
                object::read_object(input, in_key, &settings.mapping, &mut state.seen, &mut out)
            }
            Err(problem) => ObjectReport {
                error: Some(problem),
                ..ObjectReport::default()
            },
        };
        let mapped = report
            .currents_type
            .as_deref()
            .is_none_or(|t| settings.mapping.reads(t));
        if report.error.is_none() {
            state.objects.insert(object.key.clone(), object.size);
        }
        if mapped || report.error.is_some() {
            summary.read.push((name, report));
        } else {
            summary.skipped += 1;
        }
    }

    // The output first, then the state that says how long it is: stopped between the two, the
    // next run finds the output longer than recorded and cuts the tail off.
    let file = out
        .into_inner()
        .map_err(|e| ImportError(format!("cannot write {}: {}", settings.output, e.error())))?
        .into_inner()
        .map_err(|e| ImportError(format!("cannot write {}: {}", settings.output, e.error())))?;
    file.sync_all()
        .map_err(|e| ImportError(format!("cannot write {}: {e}", settings.output)))?;
    state.output_bytes = file
        .metadata()
        .map_err(|e| ImportError(format!("cannot write {}: {e}", settings.output)))?
        .len();
    drop(file);
    if let Some(path) = &path {
        store
            .upload(path, &settings.output, "text/csv")
            .map_err(ImportError)?;
        let _ = std::fs::remove_file(path);
    }
    store
        .write(&settings.state, state.to_json())
        .map_err(ImportError)?;
    summary.output_bytes = state.output_bytes;
    Ok(summary)
}

/// The output, open for appending at the length the state recorded: the file itself, or for S3
/// a local copy (and its path) uploaded at the end. Also how many bytes were cut off.
#[allow(clippy::type_complexity)]
fn open_output(
    settings: &Import,
    store: &Store,
    state: &State,
    first_run: bool,
) -> Result<((std::fs::File, Option<PathBuf>), u64), ImportError> {
    let recorded = state.output_bytes;
    let (mut file, path, found) = match &settings.output {
        Location::Local(path) => {
            let found = match std::fs::metadata(path) {
                Ok(m) => Some(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ImportError(format!("cannot read {}: {e}", path.display()))),
            };
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| ImportError(format!("cannot write {}: {e}", path.display())))?;
            (file, None, found)
        }
        s3 => {
            let copy = std::env::temp_dir().join(format!(
                "import-currents-{}-{}.csv",
                std::process::id(),
                fastrand_suffix()
            ));
            let found = store.download(s3, recorded, &copy).map_err(ImportError)?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&copy)
                .map_err(|e| ImportError(format!("cannot write {}: {e}", copy.display())))?;
            (file, Some(copy), found)
        }
    };
    let found_bytes = found.unwrap_or(0);
    if found_bytes < recorded {
        return Err(ImportError(format!(
            "{} has {found_bytes} bytes, but {} says an earlier run left it with {recorded}: it \
             was changed or removed since. Restore it, or start over with a new output and state.",
            settings.output, settings.state
        )));
    }
    if first_run && found_bytes > 0 {
        return Err(ImportError(format!(
            "{} already exists, and {} has no record of writing it: refusing to append to a \
             file this import did not write. Name a new output, or remove it.",
            settings.output, settings.state
        )));
    }
    if first_run {
        // An empty state before the first row: a first run stopped midway leaves an output this
        // import knows it wrote, and the next run starts it over.
        store
            .write(&settings.state, state.to_json())
            .map_err(ImportError)?;
    }
    file.set_len(recorded)
        .and_then(|()| file.seek(std::io::SeekFrom::End(0)).map(drop))
        .and_then(|()| file.flush())
        .map_err(|e| ImportError(format!("cannot write {}: {e}", settings.output)))?;
    Ok(((file, path), found_bytes - recorded))
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
