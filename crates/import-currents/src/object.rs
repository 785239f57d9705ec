//! Reading one Currents object: an Avro object container file of one event type, streamed block
//! by block, so memory stays flat whatever the file's size.

use std::io::{Read, Write};

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::mapping::{Interaction, Mapping, Outcome, Record};
use crate::state::Seen;

/// A decoded string, bytes or block may be at most this long: a corrupt length is refused before
/// it is allocated. Real Currents records are kilobytes; blocks, a few megabytes.
pub const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// Rejected records named one by one per object; the rest are counted.
const NAMED_REJECTIONS: usize = 20;

/// What reading one object gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjectReport {
    pub currents_type: Option<String>,
    pub records: u64,
    pub interactions: u64,
    pub duplicates: u64,
    pub no_external_id: u64,
    pub not_mapped: u64,
    pub rejected: u64,
    /// The first rejected records: their number in the object (from 1) and why.
    pub rejections: Vec<(u64, String)>,
    /// Why the object could not be read to its end (it is read again next run); records before
    /// it were taken.
    pub error: Option<String>,
}

/// The Currents event type in a key's `event_type=` folder, as Currents lays an export out:
/// `…/event_type=users.behaviors.Purchase/date=2026-12-06-10/…/file.avro`.
pub fn type_in_key(key: &str) -> Option<&str> {
    key.split('/')
        .find_map(|segment| segment.strip_prefix("event_type="))
        .filter(|t| !t.is_empty())
}

/// The Currents event type a schema is for: its full name after Currents' `….inner.` namespace
/// (`dataexport.S3.inner.users.behaviors.Purchase` is `users.behaviors.Purchase`).
pub fn type_of_schema(schema: &Schema) -> Option<String> {
    let Schema::Record(record) = schema else {
        return None;
    };
    let full = record.name.fullname(None);
    let start = full
        .find(".inner.")
        .map(|i| i + ".inner.".len())
        .or_else(|| full.find("users."))?;
    Some(full[start..].to_owned())
}

/// Reads `input` to its end (or its first unreadable block), appending the interactions it maps
/// to `out` and taking their ids into `seen`. `currents_type` is the key's, if it names one.
pub fn read_object<R: Read, W: Write>(
    input: R,
    currents_type: Option<&str>,
    mapping: &Mapping,
    seen: &mut Seen,
    out: &mut csv::Writer<W>,
) -> ObjectReport {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let mut report = ObjectReport {
        currents_type: currents_type.map(str::to_owned),
        ..ObjectReport::default()
    };
    let reader = match apache_avro::Reader::new(input) {
        Ok(reader) => reader,
        Err(e) => {
            report.error = Some(format!("not a readable Avro file: {}", avro_problem(&e)));
            return report;
        }
    };
    let currents_type = match currents_type
        .map(str::to_owned)
        .or_else(|| type_of_schema(reader.writer_schema()))
    {
        Some(t) => t,
        None => {
            report.error = Some(
                "neither its key (event_type=…) nor its schema's name says its Currents event type"
                    .to_owned(),
            );
            return report;
        }
    };
    report.currents_type = Some(currents_type.clone());
    if !mapping.reads(&currents_type) {
        return report;
    }
    if let Err(problem) = has_required_fields(reader.writer_schema()) {
        report.error = Some(problem);
        return report;
    }

    for value in reader {
        let number = report.records + 1;
        let value = match value {
            Ok(value) => value,
            Err(e) => {
                report.error = Some(format!(
                    "record {number}: cannot be decoded: {}",
                    avro_problem(&e)
                ));
                break;
            }
        };
        report.records = number;
        let Value::Record(fields) = value else {
            reject(&mut report, number, "is not a record".to_owned());
            continue;
        };
        let record = Record(&fields);
        let Some(id) = record.string("id") else {
            reject(&mut report, number, "id is missing".to_owned());
            continue;
        };
        match mapping.map(&currents_type, &record) {
            Outcome::Interaction(interaction) => {
                if !seen.first_time(&currents_type, id) {
                    report.duplicates += 1;
                    continue;
                }
                if let Err(e) = write_row(out, &interaction) {
                    report.error = Some(format!("cannot write the output: {e}"));
                    break;
                }
                report.interactions += 1;
            }
            Outcome::NoExternalId => report.no_external_id += 1,
            Outcome::NotMapped => report.not_mapped += 1,
            Outcome::Rejected(problem) => reject(&mut report, number, problem),
        }
    }
    report
}

fn reject(report: &mut ObjectReport, number: u64, problem: String) {
    report.rejected += 1;
    if report.rejections.len() < NAMED_REJECTIONS {
        report.rejections.push((number, problem));
    }
}

/// The fields every mapped event needs, checked once per file against its schema, so a file of
/// an unexpected shape is one error, not one per record.
fn has_required_fields(schema: &Schema) -> Result<(), String> {
    let Schema::Record(record) = schema else {
        return Err("its schema is not a record".to_owned());
    };
    let missing: Vec<&str> = ["id", "external_user_id", "time"]
        .into_iter()
        .filter(|name| !record.fields.iter().any(|f| f.name == *name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "its schema has no {} field (is it a Currents export?)",
            missing.join(", ")
        ))
    }
}

/// The columns of the interactions file, in Personalize's names.
pub const HEADER: [&str; 5] = [
    "USER_ID",
    "ITEM_ID",
    "EVENT_TYPE",
    "EVENT_VALUE",
    "TIMESTAMP",
];

fn write_row<W: Write>(out: &mut csv::Writer<W>, row: &Interaction) -> csv::Result<()> {
    let value = row.event_value.map(|v| v.to_string()).unwrap_or_default();
    out.write_record([
        row.user_id.as_str(),
        row.item_id.as_str(),
        row.event_type.as_str(),
        value.as_str(),
        row.timestamp.to_string().as_str(),
    ])
}

/// An Avro error in words: the reader's own text (which names the codec, the marker or the
/// length that was wrong), its causes, and what it likely means.
fn avro_problem(e: &apache_avro::Error) -> String {
    let mut texts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !texts.iter().any(|t| t.contains(&text)) {
            texts.push(text);
        }
        source = cause.source();
    }
    let text = texts.join(": ");
    let hint = if text.contains("magic") {
        " (an Avro object container file starts with Obj and 0x01)"
    } else if text.contains("fill whole buffer") {
        " (the file ends inside a block: truncated, or still being written)"
    } else if text.contains("Codec") {
        " (import-currents reads the null, deflate and snappy codecs)"
    } else {
        " (the block is corrupt)"
    };
    format!("{text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_key_or_the_schema() {
        assert_eq!(
            type_in_key(
                "p/dataexport.prod-01.S3.integration.5f/event_type=users.behaviors.Purchase/date=2026-12-06-10/x.avro"
            ),
            Some("users.behaviors.Purchase")
        );
        assert_eq!(type_in_key("users.behaviors.Purchase.avro"), None);
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"Purchase","namespace":"dataexport.S3.inner.users.behaviors","fields":[{"name":"id","type":"string"}]}"#,
        )
        .unwrap();
        assert_eq!(
            type_of_schema(&schema).as_deref(),
            Some("users.behaviors.Purchase")
        );
    }

    #[test]
    fn bytes_that_are_not_avro_are_one_clear_error() {
        let mut out = csv::Writer::from_writer(Vec::new());
        let report = read_object(
            &b"USER_ID,ITEM_ID\n"[..],
            None,
            &Mapping::default(),
            &mut Seen::default(),
            &mut out,
        );
        assert!(
            report
                .error
                .as_deref()
                .unwrap()
                .starts_with("not a readable Avro file"),
            "{report:?}"
        );
        assert_eq!(report.records, 0);
    }
}
