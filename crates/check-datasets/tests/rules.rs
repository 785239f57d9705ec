//! check-datasets as a user runs it: for each rule, a file that breaks it and the finding it
//! gets (file, line, rule); the project's sample data, which passes; and schemas written by one
//! run that a second run checks against.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: Option<i32>,
    stdout: String,
}

fn run(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_check-datasets"))
        .args(args)
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run check-datasets");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    }
}

fn file(name: &str, content: impl AsRef<[u8]>) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// Runs with one file of `dataset` and says: the exit code is `code`, and `finding` (with the
/// file's path in front of `:LINE`) is in the output.
fn finds(dataset: &str, name: &str, content: impl AsRef<[u8]>, code: i32, finding: &str) {
    let path = file(name, content);
    let flag = format!("--{dataset}");
    let result = run(&[&flag, &path, "--no-minimums"]);
    let expected = finding.replace("FILE", &path);
    assert!(
        result.stdout.contains(&expected),
        "{name}: {expected:?} not in:\n{}",
        result.stdout
    );
    assert_eq!(result.code, Some(code), "{name}:\n{}", result.stdout);
}

#[test]
fn required_columns_are_there_and_names_are_case_sensitive() {
    finds(
        "interactions",
        "no-timestamp.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE\nu1,a,view\n",
        1,
        "error[required-column] FILE:1: missing column TIMESTAMP",
    );
    finds(
        "items",
        "lower-case.csv",
        "item_id,NAME\na,b\n",
        1,
        "error[required-column] FILE:1: missing column ITEM_ID; item_id is there, but names are case-sensitive",
    );
}

#[test]
fn timestamps_are_seconds() {
    finds(
        "interactions",
        "millis.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu1,a,view,1764547200\nu1,b,view,1764547200000\n",
        1,
        "error[timestamp-seconds] FILE:3: TIMESTAMP 1764547200000 is in milliseconds (or finer); Personalize takes seconds",
    );
    finds(
        "interactions",
        "dates.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu1,a,view,2025-12-01\n",
        1,
        "error[timestamp-seconds] FILE:2: TIMESTAMP \"2025-12-01\" is not Unix epoch seconds",
    );
}

#[test]
fn ids_fit_personalize_and_come_once() {
    let long = "u".repeat(257);
    finds(
        "users",
        "long-id.csv",
        format!("USER_ID,TIER\nok,gold\n{long},gold\n"),
        1,
        "error[id-length] FILE:3: USER_ID is 257 characters; Personalize takes at most 256",
    );
    finds(
        "items",
        "twice.csv",
        "ITEM_ID,NAME\na,x\nb,y\na,z\n",
        1,
        "error[duplicate] FILE:4: ITEM_ID \"a\" repeats line 2",
    );
    // The same interaction twice is accepted, and likely a mistake.
    finds(
        "interactions",
        "same-row.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu1,a,view,1\nu1,a,view,1\n",
        0,
        "warning[duplicate] FILE:3: the same interaction as line 2",
    );
}

#[test]
fn event_values_are_numbers() {
    finds(
        "interactions",
        "value.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP\nu1,a,purchase,19.99,1\nu1,b,purchase,free,2\n",
        1,
        "error[event-value] FILE:3: EVENT_VALUE \"free\" is not a number",
    );
}

#[test]
fn categorical_values_are_split_on_the_bar_and_each_is_short() {
    // 1,000 characters on each side of a bar: fine.
    let (a, b) = ("a".repeat(1000), "b".repeat(1000));
    finds(
        "items",
        "bar.csv",
        format!("ITEM_ID,GENRES\n1,{a}|{b}\n2,x\n"),
        0,
        "FILE: 2 Items rows, 2 fields: Personalize would accept it",
    );
    let c = "c".repeat(1001);
    finds(
        "items",
        "long-category.csv",
        format!("ITEM_ID,GENRES\n1,x|y\n2,x|{c}\n"),
        1,
        "error[categorical-length] FILE:3: GENRES has a categorical value of 1001 characters; Personalize takes at most 1000",
    );
}

#[test]
fn long_text_is_textual_and_past_twenty_thousand_characters_is_a_warning() {
    let long = "word ".repeat(5000);
    finds(
        "items",
        "description.csv",
        format!("ITEM_ID,CATEGORY,DESCRIPTION\n1,shoes,\"{long}\"\n2,bags,short\n"),
        0,
        "warning[textual-length] FILE:2: DESCRIPTION is 25000 characters of text; Personalize reads the first 20000 and ignores the rest",
    );
}

#[test]
fn reserved_names_keep_their_types_and_their_dataset() {
    finds(
        "users",
        "reserved.csv",
        "USER_ID,TIER,CREATION_TIMESTAMP\nu1,gold,1\n",
        1,
        "error[schema] FILE: CREATION_TIMESTAMP is reserved in Items; Users cannot use it",
    );
    let schema = file(
        "interactions-schema.json",
        r#"{"type":"record","name":"Interactions","fields":[
            {"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"},
            {"name":"EVENT_VALUE","type":"string"},{"name":"TIMESTAMP","type":"long"}]}"#,
    );
    let data = file(
        "interactions-valued.csv",
        "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP\nu1,a,1.5,1\n",
    );
    let result = run(&[
        "--interactions",
        &data,
        "--interactions-schema",
        &schema,
        "--no-minimums",
    ]);
    assert_eq!(result.code, Some(1), "{}", result.stdout);
    assert!(
        result.stdout.contains(&format!(
            "error[schema] {data}: EVENT_VALUE is a reserved name in Interactions: it must be float"
        )),
        "{}",
        result.stdout
    );
}

#[test]
fn values_match_the_schema_given() {
    let schema = file(
        "items-schema.json",
        r#"{"type":"record","name":"Items","fields":[
            {"name":"ITEM_ID","type":"string"},{"name":"PRICE","type":"float"},
            {"name":"CATEGORY","type":"string","categorical":true}]}"#,
    );
    let data = file(
        "items-typed.csv",
        "ITEM_ID,PRICE,CATEGORY,COLOR\na,9.5,shoes,red\nb,cheap,bags,blue\nc,1,,green\n",
    );
    let result = run(&["--items", &data, "--items-schema", &schema]);
    assert_eq!(result.code, Some(1), "{}", result.stdout);
    for expected in [
        format!("error[schema] {data}:1: column COLOR is not a field of the schema"),
        format!("error[type] {data}:3: PRICE \"cheap\" is not a number"),
        format!("error[required-value] {data}:4: CATEGORY is empty, and its type is not nullable"),
    ] {
        assert!(
            result.stdout.contains(&expected),
            "{expected:?} not in:\n{}",
            result.stdout
        );
    }
}

#[test]
fn too_many_event_types_and_fields_together_are_refused() {
    let mut rows = String::from("USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n");
    for t in 0..10 {
        rows.push_str(&format!("u1,a,type-{t},1\n"));
    }
    finds(
        "interactions",
        "types.csv",
        rows,
        1,
        "error[field-count] FILE: 1 optional fields and 10 event types make 11; Personalize takes at most 10 together",
    );
}

#[test]
fn broken_csv_is_named_by_line() {
    finds(
        "items",
        "short-row.csv",
        "ITEM_ID,NAME,PRICE\na,b,1\nc,d\n",
        1,
        "error[csv] FILE:3: 2 fields, but the header has 3",
    );
    finds(
        "items",
        "latin1.csv",
        b"ITEM_ID,NAME\na,caf\xe9\n".as_slice(),
        1,
        "error[csv] FILE:2: invalid UTF-8 (Personalize reads UTF-8)",
    );
    finds(
        "users",
        "header-only.csv",
        "USER_ID,TIER\n",
        1,
        "error[empty] FILE: the file has no rows",
    );
}

#[test]
fn training_needs_its_minimums() {
    let mut rows = String::from("USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n");
    for user in 0..30 {
        rows.push_str(&format!("u{user},a,view,1\n"));
    }
    let path = file("few.csv", rows);
    let result = run(&["--interactions", &path]);
    assert_eq!(result.code, Some(1), "{}", result.stdout);
    assert!(
        result.stdout.contains(&format!(
            "error[minimums] {path}: 30 interactions, 0 users with at least 2: training needs at least 1000 interactions and 25 such users"
        )),
        "{}",
        result.stdout
    );
}

#[test]
fn the_sample_data_passes_and_its_written_schemas_check_it_again() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/data");
    let schemas =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemas-{}", std::process::id()));
    let path = |name: &str| data.join(name).display().to_string();
    let first = run(&[
        "--interactions",
        &path("interactions.csv"),
        "--items",
        &path("items.csv"),
        "--users",
        &path("users.csv"),
        "--write-schemas",
        schemas.to_str().unwrap(),
    ]);
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert!(!first.stdout.contains("error"), "{}", first.stdout);
    let users = std::fs::read_to_string(schemas.join("users.schema.json")).unwrap();
    assert!(users.contains(r#""name": "TIER","#), "{users}");

    let schema = |name: &str| schemas.join(name).display().to_string();
    let again = run(&[
        "--interactions",
        &path("interactions.csv"),
        "--interactions-schema",
        &schema("interactions.schema.json"),
        "--items",
        &path("items.csv"),
        "--items-schema",
        &schema("items.schema.json"),
        "--users",
        &path("users.csv"),
        "--users-schema",
        &schema("users.schema.json"),
    ]);
    assert_eq!(again.code, Some(0), "{}", again.stdout);
}
