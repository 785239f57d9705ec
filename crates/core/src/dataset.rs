//! Reading datasets in Amazon Personalize's own CSV schemas, for local mode:
//! interactions (`USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP`, extra columns allowed), items
//! (`ITEM_ID` plus metadata columns) and users (`USER_ID` plus metadata columns). The same files a
//! user imports into Personalize.

use std::path::{Path, PathBuf};

use crate::rules;

/// One interaction: `TIMESTAMP` is Unix epoch seconds, as Personalize requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub user_id: String,
    pub item_id: String,
    pub event_type: String,
    pub timestamp: i64,
}

/// One row of the items file: the id and every non-empty metadata field, by original column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    pub id: String,
    pub fields: Vec<(String, String)>,
}

/// One row of the users file: the id and every non-empty metadata field (`TIER`, `AGE`, …), by
/// original column name. Filters test them as `CurrentUser.FIELD`.
pub type UserRecord = ItemRecord;

/// The ids of a file so far (`ITEM_ID` unless made `for_column`): each must be given, and once.
pub struct ItemIds {
    column: &'static str,
    first_seen: std::collections::HashMap<String, u64>,
}

impl Default for ItemIds {
    fn default() -> Self {
        ItemIds::for_column("ITEM_ID")
    }
}

impl ItemIds {
    pub fn for_column(column: &'static str) -> ItemIds {
        ItemIds {
            column,
            first_seen: std::collections::HashMap::new(),
        }
    }

    /// Takes the id found on `line`, or says what is wrong with it.
    pub fn check(&mut self, id: &str, line: u64) -> Result<(), String> {
        let column = self.column;
        crate::rules::id(column, id)?;
        match self.first_seen.insert(id.to_owned(), line) {
            Some(first) => Err(format!("{column} {id:?} repeats line {first}")),
            None => Ok(()),
        }
    }
}

/// A problem in a data file, with where it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{}: {problem}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct DataError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub problem: String,
}

fn error(file: &Path, line: Option<u64>, problem: impl Into<String>) -> DataError {
    DataError {
        file: file.to_owned(),
        line,
        problem: problem.into(),
    }
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>, DataError> {
    let file =
        std::fs::File::open(path).map_err(|e| error(path, None, format!("cannot open: {e}")))?;
    // Flexible so a short or long row is reported by us, with its line, not as a generic error.
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

fn header(path: &Path, reader: &mut csv::Reader<std::fs::File>) -> Result<Vec<String>, DataError> {
    let headers = reader
        .headers()
        .map_err(|e| error(path, Some(1), csv_problem(&e)))?;
    Ok(headers.iter().map(|h| h.trim().to_owned()).collect())
}

fn column(path: &Path, headers: &[String], name: &str) -> Result<usize, DataError> {
    headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            error(
                path,
                Some(1),
                format!(
                    "missing column {name} (the header has {})",
                    headers.join(",")
                ),
            )
        })
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_owned(),
        _ => e.to_string(),
    }
}

/// Iterates the data rows with their line numbers, checking each has the header's width.
fn rows(
    path: &Path,
    reader: csv::Reader<std::fs::File>,
    width: usize,
) -> impl Iterator<Item = Result<(u64, csv::StringRecord), DataError>> {
    let path = path.to_owned();
    reader.into_records().map(move |record| {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            error(&path, line, csv_problem(&e))
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != width {
            return Err(error(
                &path,
                Some(line),
                format!("{} fields, but the header has {width}", record.len()),
            ));
        }
        Ok((line, record))
    })
}

pub fn read_interactions(path: &Path) -> Result<Vec<Interaction>, DataError> {
    let mut reader = open(path)?;
    let headers = header(path, &mut reader)?;
    let [user, item, event, time] =
        ["USER_ID", "ITEM_ID", "EVENT_TYPE", "TIMESTAMP"].map(|name| column(path, &headers, name));
    let (user, item, event, time) = (user?, item?, event?, time?);

    let value = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("EVENT_VALUE"));

    let mut interactions = Vec::new();
    for row in rows(path, reader, headers.len()) {
        let (line, record) = row?;
        let at = |problem| error(path, Some(line), problem);
        let id = |i: usize, name: &str| {
            let value = record[i].trim();
            rules::id(name, value)
                .map(|()| value.to_owned())
                .map_err(at)
        };
        let event_type = record[event].trim();
        if event_type.is_empty() {
            return Err(at("EVENT_TYPE is empty".to_owned()));
        }
        if let Some(value) = value {
            rules::event_value(&record[value]).map_err(at)?;
        }
        interactions.push(Interaction {
            user_id: id(user, "USER_ID")?,
            item_id: id(item, "ITEM_ID")?,
            event_type: event_type.to_owned(),
            timestamp: rules::timestamp(&record[time]).map_err(at)?,
        });
    }
    Ok(interactions)
}

pub fn read_items(path: &Path) -> Result<Vec<ItemRecord>, DataError> {
    check_items(path).map_err(|mut problems| problems.remove(0))
}

/// Reads the whole items file and reports every problem in it, not only the first, each with
/// its line: what a loader needs to say before it refuses to write anything.
pub fn check_items(path: &Path) -> Result<Vec<ItemRecord>, Vec<DataError>> {
    check_records(path, "ITEM_ID")
}

/// The users file (`USER_ID` and metadata columns), or its first problem.
pub fn read_users(path: &Path) -> Result<Vec<UserRecord>, DataError> {
    check_records(path, "USER_ID").map_err(|mut problems| problems.remove(0))
}

/// Rows of an id column and metadata columns, with every problem, each with its line.
fn check_records(path: &Path, id_column: &'static str) -> Result<Vec<ItemRecord>, Vec<DataError>> {
    let mut reader = open(path).map_err(|e| vec![e])?;
    let headers = header(path, &mut reader).map_err(|e| vec![e])?;
    let id = column(path, &headers, id_column).map_err(|e| vec![e])?;

    let mut items: Vec<ItemRecord> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = ItemIds::for_column(id_column);
    for row in rows(path, reader, headers.len()) {
        let (line, record) = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let item_id = record[id].trim();
        if let Err(problem) = seen.check(item_id, line) {
            problems.push(error(path, Some(line), problem));
            continue;
        }
        let fields = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, (_, value))| *i != id && !value.is_empty())
            .map(|(_, (name, value))| (name.clone(), value.to_owned()))
            .collect();
        items.push(ItemRecord {
            id: item_id.to_owned(),
            fields,
        });
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_an_id_and_metadata_and_ids_come_once() {
        let path = file("users.csv", b"USER_ID,TIER,AGE\nu1,gold,34\nu2,,51\n");
        let users = read_users(&path).unwrap();
        assert_eq!(users[0].id, "u1");
        assert_eq!(
            users[0].fields,
            [
                ("TIER".to_owned(), "gold".to_owned()),
                ("AGE".to_owned(), "34".to_owned())
            ]
        );
        assert_eq!(users[1].fields, [("AGE".to_owned(), "51".to_owned())]);
        let twice = file("users-twice.csv", b"USER_ID,TIER\nu1,gold\nu1,silver\n");
        assert_eq!(
            read_users(&twice).unwrap_err().problem,
            r#"USER_ID "u1" repeats line 2"#
        );
    }

    fn file(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pb-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn items_keep_quoted_fields_commas_newlines_and_utf8() {
        let path = file(
            "items-ok.csv",
            "ITEM_ID,NAME,PRICE,DESCRIPTION,EMPTY\n\
             a1,\"Shoe, \"\"wide\"\"\",19.90,\"two\nlines\",\n\
             b2,Crème brûlée — 日本,0.5,,\n"
                .as_bytes(),
        );
        let items = read_items(&path).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "a1");
        assert_eq!(
            items[0].fields,
            vec![
                ("NAME".to_owned(), "Shoe, \"wide\"".to_owned()),
                ("PRICE".to_owned(), "19.90".to_owned()),
                ("DESCRIPTION".to_owned(), "two\nlines".to_owned()),
            ]
        );
        assert_eq!(items[1].fields[0].1, "Crème brûlée — 日本");
    }

    #[test]
    fn interactions_allow_extra_columns_in_any_order() {
        let path = file(
            "interactions-ok.csv",
            b"TIMESTAMP,EVENT_TYPE,ITEM_ID,USER_ID,EVENT_VALUE\n1700000000,purchase,a1,u1,19.9\n",
        );
        assert_eq!(
            read_interactions(&path).unwrap(),
            vec![Interaction {
                user_id: "u1".into(),
                item_id: "a1".into(),
                event_type: "purchase".into(),
                timestamp: 1_700_000_000,
            }]
        );
    }

    #[test]
    fn malformed_files_name_the_file_line_and_problem() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "no-item-id.csv",
                b"ID,NAME\na,b\n",
                "line 1: missing column ITEM_ID (the header has ID,NAME)",
            ),
            (
                "short-row.csv",
                b"ITEM_ID,NAME,PRICE\na,b,1\nc,d\n",
                "line 3: 2 fields, but the header has 3",
            ),
            (
                "empty-id.csv",
                b"ITEM_ID,NAME\n,b\n",
                "line 2: ITEM_ID is empty",
            ),
            (
                "duplicate.csv",
                b"ITEM_ID,NAME\na,b\nx,y\na,c\n",
                "line 4: ITEM_ID \"a\" repeats line 2",
            ),
            (
                "bad-utf8.csv",
                b"ITEM_ID,NAME\na,\xff\xfe\n",
                "line 2: invalid UTF-8",
            ),
        ];
        for (name, content, expected) in cases {
            let path = file(name, content);
            let err = read_items(&path).unwrap_err().to_string();
            assert_eq!(err, format!("{}, {expected}", path.display()), "{name}");
        }

        let path = file(
            "bad-time.csv",
            b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu,a,view,yesterday\n",
        );
        let err = read_interactions(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("line 2: TIMESTAMP \"yesterday\" is not Unix epoch seconds"),
            "{err}"
        );
        let path = file(
            "no-user.csv",
            b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n,a,view,1\n",
        );
        assert!(
            read_interactions(&path)
                .unwrap_err()
                .to_string()
                .ends_with("line 2: USER_ID is empty")
        );

        let path = file("several.csv", b"ITEM_ID,NAME\na,b\n,c\nd\na,e\n");
        let all: Vec<String> = check_items(&path)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        let lines: Vec<&str> = all
            .iter()
            .map(|e| e.rsplit_once(", line ").unwrap().1)
            .collect();
        assert_eq!(
            lines,
            [
                "3: ITEM_ID is empty",
                "4: 1 fields, but the header has 2",
                "5: ITEM_ID \"a\" repeats line 2"
            ]
        );

        let missing = read_items(Path::new("/nonexistent/items.csv")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/items.csv: cannot open"),
            "{missing}"
        );
    }
}
