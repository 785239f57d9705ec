//! The catalog loader (`load-items`) against DynamoDB Local.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use aws_sdk_dynamodb::types::AttributeValue;

use super::catalog::{client, create_table};
use super::processes::shared_dynamodb;

fn load_items(args: &[&str]) -> Output {
    std::process::Command::new(personalize_braze_testkit::binaries::path("load-items"))
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
        .args(args)
        .output()
        .expect("run load-items")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The load was refused (exit code 1) with each of `expected` on stderr; returns stderr.
fn assert_refused(output: &Output, expected: &[&str]) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    for expected in expected {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    stderr
}

/// Row `i` of a generated items CSV: (ITEM_ID, NAME, PRICE as written, PRICE as DynamoDB returns it).
fn row(i: usize) -> (String, String, &'static str, &'static str) {
    let prices = [
        ("19.90", "19.9"),
        ("0.5", "0.5"),
        ("1200", "1200"),
        ("123456789.123456789", "123456789.123456789"),
    ];
    let name = match i % 3 {
        0 => format!("Shoe, size {} \"wide\"", 36 + i % 12),
        1 => format!("Crème brûlée №{i} — 日本"),
        _ => format!("Plain item {i}"),
    };
    let (written, returned) = prices[i % prices.len()];
    (format!("id-{i:05}"), name, written, returned)
}

fn csv(dir: &Path, name: &str, ids: impl Iterator<Item = usize>) -> PathBuf {
    let path = dir.join(name);
    let mut out = csv::Writer::from_path(&path).unwrap();
    out.write_record(["ITEM_ID", "NAME", "PRICE", "CATEGORY", "EMPTY"])
        .unwrap();
    for i in ids {
        let (id, name, price, _) = row(i);
        out.write_record([id.as_str(), &name, price, "shoes|sale", ""])
            .unwrap();
    }
    out.flush().unwrap();
    path
}

fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn scan(table: &str) -> HashMap<String, HashMap<String, AttributeValue>> {
    let client = client(shared_dynamodb()).await;
    let items: Vec<HashMap<String, AttributeValue>> = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .expect("scan");
    items
        .into_iter()
        .map(|item| (item["id"].as_s().unwrap().clone(), item))
        .collect()
}

async fn new_table(name: &str) {
    let endpoint = tokio::task::spawn_blocking(shared_dynamodb).await.unwrap();
    create_table(&client(endpoint).await, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_10000_items_exactly_and_a_second_load_changes_nothing() {
    new_table("load-10k").await;
    let file = csv(&workdir("loader-10k"), "items.csv", 0..10_000);

    let output = load_items(&["--table", "load-10k", "--items", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("wrote 10000 items to load-10k"),
        "{}",
        text(&output.stdout)
    );

    let first = scan("load-10k").await;
    assert_eq!(first.len(), 10_000);
    for i in [0, 1, 2, 3, 4999, 9998, 9999] {
        let (id, name, _, price) = row(i);
        let item = &first[&id];
        assert_eq!(item["name"], AttributeValue::S(name), "{id}");
        assert_eq!(item["price"], AttributeValue::N(price.to_owned()), "{id}");
        assert_eq!(
            item["category"],
            AttributeValue::S("shoes|sale".into()),
            "{id}"
        );
        assert!(!item.contains_key("empty"), "empty fields are left out");
        assert_eq!(item.len(), 4, "{id}: {item:?}");
    }

    // `--file`, the flag's older name, still works.
    let again = load_items(&["--table", "load-10k", "--file", file.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        scan("load-10k").await,
        first,
        "a second load leaves the same content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_exactly_the_items_the_file_dropped() {
    new_table("load-prune").await;
    let dir = workdir("loader-prune");
    let full = csv(&dir, "full.csv", 0..300);
    assert!(
        load_items(&["--table", "load-prune", "--items", full.to_str().unwrap()])
            .status
            .success()
    );

    // The shrunk catalog drops every eleventh item (28 of 300, under the tenth pruned freely).
    let kept: Vec<usize> = (0..300).filter(|i| i % 11 != 0).collect();
    let shrunk = csv(&dir, "shrunk.csv", kept.iter().copied());
    let output = load_items(&[
        "--table",
        "load-prune",
        "--items",
        shrunk.to_str().unwrap(),
        "--prune",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dropped = 300 - kept.len();
    assert!(
        text(&output.stdout).contains(&format!("pruned {dropped} items")),
        "{}",
        text(&output.stdout)
    );

    let mut ids: Vec<String> = scan("load-prune").await.into_keys().collect();
    ids.sort();
    let expected: Vec<String> = kept.iter().map(|i| row(*i).0).collect();
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_reports_every_problem_and_writes_nothing() {
    new_table("load-bad").await;
    let dir = workdir("loader-bad");
    let path = dir.join("bad.csv");
    let huge = "x".repeat(410 * 1024);
    let mut content =
        b"ITEM_ID,NAME,PRICE\nok-1,Fine,1\n,No id,2\nok-2,Short\nok-1,Again,3\n".to_vec();
    content.extend_from_slice(format!("big,{huge},4\n").as_bytes());
    content.extend_from_slice(b"utf,\xff\xfe,5\nok-3,Also fine,6\n");
    std::fs::write(&path, content).unwrap();

    let output = load_items(&["--table", "load-bad", "--items", path.to_str().unwrap()]);

    assert_refused(
        &output,
        &[
            "line 3: ITEM_ID is empty",
            "line 4: 2 fields, but the header has 3",
            "line 5: ITEM_ID \"ok-1\" repeats line 2",
            "line 7: invalid UTF-8",
            "nothing was written",
        ],
    );
    assert!(scan("load-bad").await.is_empty());

    // Fix the listed rows but keep the oversized one: still refused, with the size named.
    let oversized = format!("ITEM_ID,NAME,PRICE\nok-1,Fine,1\nbig,{huge},4\n");
    std::fs::write(&path, oversized).unwrap();
    let output = load_items(&["--table", "load-bad", "--items", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("line 3: item is"),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stderr).contains("over DynamoDB's 400 KB limit"));
    assert!(scan("load-bad").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_load_with_types_and_dry_run_writes_nothing() {
    new_table("load-jsonl").await;
    let path = workdir("loader-jsonl").join("items.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"ITEM_ID":"j1","name":"Boot, \"tall\"","price":19.95,"in_stock":true,"tags":["a",2],"gone":null}"#,
            "\n",
            r#"{"id":"j2","name":"Second","price":0.5}"#,
            "\n"
        ),
    )
    .unwrap();

    let dry = load_items(&["--items", path.to_str().unwrap(), "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("2 items, all valid"),
        "{}",
        text(&dry.stdout)
    );
    assert!(scan("load-jsonl").await.is_empty());

    let output = load_items(&["--table", "load-jsonl", "--items", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let items = scan("load-jsonl").await;
    let j1 = &items["j1"];
    assert_eq!(j1["name"], AttributeValue::S("Boot, \"tall\"".into()));
    assert_eq!(j1["price"], AttributeValue::N("19.95".into()));
    assert_eq!(j1["in_stock"], AttributeValue::Bool(true));
    assert_eq!(
        j1["tags"],
        AttributeValue::L(vec![
            AttributeValue::S("a".into()),
            AttributeValue::N("2".into())
        ])
    );
    assert!(!j1.contains_key("gone"));
    assert_eq!(items["j2"]["price"], AttributeValue::N("0.5".into()));
}

/// A truncated export must never empty production: `--prune` refuses a file without items or a
/// prune of more than a tenth of the table before writing anything; `--dry-run --prune` says
/// what it would delete; `--force` goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_refuses_to_empty_the_table_or_delete_most_of_it_without_force() {
    new_table("load-prune-guard").await;
    let dir = workdir("loader-prune-guard");
    let table = "load-prune-guard";
    let full = csv(&dir, "full.csv", 0..100);
    assert!(
        load_items(&["--table", table, "--items", full.to_str().unwrap()])
            .status
            .success()
    );
    let before = scan(table).await;
    assert_eq!(before.len(), 100);

    // A header-only file, as an export cut off after its first line.
    let empty = csv(&dir, "empty.csv", 0..0);
    let output = load_items(&[
        "--table",
        table,
        "--items",
        empty.to_str().unwrap(),
        "--prune",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("refusing to prune: the file has no items"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(scan(table).await, before);

    // Half the catalog, renamed: refused before anything is written, renames included.
    let half = dir.join("half.csv");
    let mut out = csv::Writer::from_path(&half).unwrap();
    out.write_record(["ITEM_ID", "NAME"]).unwrap();
    for i in 0..50 {
        out.write_record([row(i).0.as_str(), "Renamed"]).unwrap();
    }
    out.flush().unwrap();
    let half = half.to_str().unwrap();
    let output = load_items(&["--table", table, "--items", half, "--prune"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("50 of the 100 items in the table (50%) would be deleted"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(scan(table).await, before, "not even the renames");

    // A dry run says what would go, and still writes nothing.
    let output = load_items(&["--table", table, "--items", half, "--prune", "--dry-run"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("--prune would delete 50 of them: id-00050, id-00051,"),
        "{stdout}"
    );
    assert!(
        stdout.contains("and 30 more (dry run: nothing written)"),
        "{stdout}"
    );
    assert!(text(&output.stderr).contains("refusing to prune"));
    assert_eq!(scan(table).await, before);

    // --force goes ahead: the renames land and the other half goes.
    let output = load_items(&["--table", table, "--items", half, "--prune", "--force"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("pruned 50 items"));
    let after = scan(table).await;
    assert_eq!(after.len(), 50);
    assert_eq!(
        after["id-00000"]["name"],
        AttributeValue::S("Renamed".into())
    );

    // And an empty file with --force empties the table, as asked.
    let output = load_items(&[
        "--table",
        table,
        "--items",
        empty.to_str().unwrap(),
        "--prune",
        "--force",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(scan(table).await.is_empty());
}

/// Everything DynamoDB itself would refuse is found before the first write: numbers out of its
/// range or precision, items over 400 KB by their attribute names, ambiguous or colliding ids and
/// names. Otherwise the load would stop halfway, the first batches written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_dynamodb_would_refuse_is_found_before_anything_is_written() {
    new_table("load-refused").await;
    let dir = workdir("loader-refused");
    let path = dir.join("items.jsonl");
    // 300 attributes with 1,400-character names: 420 KB of names around tiny values.
    let long_names: serde_json::Map<String, serde_json::Value> = (0..300)
        .map(|i| (format!("{i:03}{}", "n".repeat(1397)), serde_json::json!(1)))
        .collect();
    let mut wide = serde_json::Map::from_iter([("id".to_owned(), serde_json::json!("wide"))]);
    wide.extend(long_names);
    let lines = [
        r#"{"id":"fine-1","price":19.9}"#.to_owned(),
        r#"{"ITEM_ID":"both","id":"other","price":1}"#.to_owned(),
        r#"{"id":"huge","price":1e126}"#.to_owned(),
        r#"{"id":"tiny","specs":{"weights":[1E-131]}}"#.to_owned(),
        r#"{"id":"precise","code":123456789012345678901234567890123456789}"#.to_owned(),
        r#"{"id":"cased","Name":"a","name":"b"}"#.to_owned(),
        serde_json::Value::Object(wide).to_string(),
        r#"{"id":"fine-2","price":1E-130}"#.to_owned(),
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();

    let output = load_items(&["--table", "load-refused", "--items", path.to_str().unwrap()]);

    let stderr = assert_refused(
        &output,
        &[
            "line 2: both ITEM_ID and id are given",
            "line 3: price: 1e126 is outside DynamoDB's number range",
            "line 4: specs.weights[0]: 1E-131 is outside DynamoDB's number range",
            "line 5: code: 123456789012345678901234567890123456789 has 39 significant digits",
            "line 6: Name and name would both be stored as the attribute \"name\"",
            "line 7: item is 420",
            "(attribute names included), over DynamoDB's 400 KB limit",
            "6 problem(s)",
            "nothing was written",
        ],
    );
    assert!(
        !stderr.contains("line 1:") && !stderr.contains("line 8:"),
        "{stderr}"
    );
    assert!(scan("load-refused").await.is_empty());

    // The same in a CSV: a number past 38 digits, and an ID column beside ITEM_ID.
    let path = dir.join("items.csv");
    std::fs::write(
        &path,
        "ITEM_ID,ID,CODE\nc1,x,1\nc2,,123456789012345678901234567890123456789\n",
    )
    .unwrap();
    let output = load_items(&["--table", "load-refused", "--items", path.to_str().unwrap()]);
    assert_refused(
        &output,
        &[
            "line 2: ITEM_ID and ID would both be stored as the attribute \"id\"",
            "line 3: code: 1234567890",
        ],
    );
    assert!(scan("load-refused").await.is_empty());
}
