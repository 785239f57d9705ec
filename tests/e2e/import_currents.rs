//! import-currents as a user runs it: Currents exports written by fastavro (an Avro
//! implementation independent of the one the importer reads with), laid out as Currents lays them
//! out, in a folder and in a real S3 (moto). Every expected row is written here by hand.
//!
//! `CURRENTS_PYTHON` is the virtualenv `tests/run` makes from `tests/currents/requirements.txt`.
//! `CURRENTS_EXAMPLES`, when set, is a checkout of Braze's `Appboy/currents-examples`, whose
//! sample files may not be copied into this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::braze_sync::{Finished, s3};
use personalize_braze_testkit::binaries;

/// The interactions of `make-export.py good`, mapped as [`MAPPING`] says, in the order the
/// importer writes them (objects by key: custom events, purchases, then clicks).
const GOOD: &str = "\
USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP
u1,sku-2,view,,1764586800
u2,7,view,,1764586980
u3,sku-4,wishlist,,1764666000
u1,sku-1,purchase,19.99,1764583200
u2,sku-2,purchase,5,1764583260
u1,sku-3,purchase,120.5,1764583380
u3,sku-1,purchase,19.99,1764662400
u3,card-9,click,,1764676800
";

const MAPPING: &[&str] = &[
    "--custom-event",
    "Viewed Product=product_id:view",
    "--custom-event",
    "Added to Wishlist=sku:wishlist",
    "--engagement",
    "users.messages.contentcard.Click=content_card_id:click",
];

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("import-currents-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an export with tests/currents/make-export.py.
fn make_export(kind: &str, into: &Path) {
    let python = std::env::var("CURRENTS_PYTHON")
        .expect("CURRENTS_PYTHON is not set; run the tests with tests/run");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/currents/make-export.py");
    let status = Command::new(python)
        .arg(script)
        .arg(kind)
        .arg(into)
        .status()
        .expect("run make-export.py");
    assert!(status.success(), "make-export.py {kind} failed");
}

fn import(vars: &[(&str, &str)], args: &[&str]) -> Finished {
    let output = Command::new(binaries::path("import-currents"))
        .envs(vars.iter().copied())
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_REGION", "us-east-1")
        .args(args)
        .output()
        .expect("run import-currents");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn args<'a>(input: &'a str, output: &'a str) -> Vec<&'a str> {
    let mut args = vec![input, "--output", output];
    args.extend_from_slice(MAPPING);
    args
}

#[test]
fn an_export_gives_exactly_the_expected_interactions_once() {
    let dir = scratch("good");
    let export = dir.join("export");
    make_export("good", &export);
    let output = dir.join("interactions.csv");
    let (input, out) = (export.to_str().unwrap(), output.to_str().unwrap());

    // One custom event breaks the mapping (no product_id): named, counted, and the run says so.
    let first = import(&[], &args(input, out));
    first
        .exited(1)
        .says("5 objects read (0 failed), 0 already read, 1 of unmapped event types skipped")
        .says("13 records: 8 interactions written, 1 duplicates, 2 without an external id, 1 not mapped, 1 rejected");
    assert!(
        first.stderr.contains(
            "event_type=users.behaviors.CustomEvent/date=2025-12-01-11/0/0/dataexport.prod-01.S3.integration.5f0c+0+0.avro: record 3: properties has no product_id"
        ),
        "{}",
        first.stderr
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), GOOD);

    // A rerun reads nothing it has read, and writes nothing.
    import(&[], &args(input, out))
        .exited(0)
        .says("0 objects read (0 failed), 5 already read, 1 of unmapped event types skipped")
        .says("0 records: 0 interactions written");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), GOOD);

    // A later delivery: one new purchase, and p-1 delivered again.
    make_export("later", &export);
    import(&[], &args(input, out))
        .exited(0)
        .says("1 objects read (0 failed), 5 already read")
        .says("2 records: 1 interactions written, 1 duplicates");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        format!("{GOOD}u2,sku-4,purchase,42,1764745200\n")
    );
}

#[test]
fn an_interrupted_run_is_taken_up_and_a_foreign_output_is_refused() {
    let dir = scratch("interrupted");
    let export = dir.join("export");
    make_export("good", &export);
    let output = dir.join("interactions.csv");
    let (input, out) = (export.to_str().unwrap(), output.to_str().unwrap());
    import(&[], &args(input, out)).exited(1);

    // Rows a run appended before it stopped, without saving its state: cut off, never doubled.
    make_export("later", &export);
    let mut torn = std::fs::read_to_string(&output).unwrap();
    torn.push_str("u2,sku-4,purchase,42,1764745200\nu9,half-writ");
    std::fs::write(&output, &torn).unwrap();
    let resumed = import(&[], &args(input, out));
    resumed.exited(0).says("1 interactions written");
    assert!(
        resumed.stderr.contains("cut 44 bytes"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        format!("{GOOD}u2,sku-4,purchase,42,1764745200\n")
    );

    // An output this import has no state for is someone's file: refused, untouched.
    let foreign = dir.join("mine.csv");
    std::fs::write(&foreign, "USER_ID,ITEM_ID\nkeep,me\n").unwrap();
    let refused = import(&[], &args(input, foreign.to_str().unwrap()));
    refused.exited(2);
    assert!(
        refused.stderr.contains("has no record of writing it"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "USER_ID,ITEM_ID\nkeep,me\n"
    );
}

#[test]
fn broken_files_are_named_and_everything_else_imports() {
    let dir = scratch("bad");
    let export = dir.join("export");
    make_export("bad", &export);
    let output = dir.join("interactions.csv");
    let (input, out) = (export.to_str().unwrap(), output.to_str().unwrap());
    let run = import(&[], &args(input, out));
    run.exited(1).says("6 objects read (4 failed)").says(
        "24 interactions written, 0 duplicates, 0 without an external id, 0 not mapped, 1 rejected",
    );
    let part = |n: u32| {
        format!("date=2025-12-04-10/0/0/dataexport.prod-01.S3.integration.5f0c+{n}+0.avro")
    };
    for expected in [
        format!(
            "{}: not a readable Avro file: wrong magic in header",
            part(1)
        ),
        format!("{}: record 15: cannot be decoded", part(2)),
        "(the file ends inside a block: truncated, or still being written)".to_owned(),
        format!("{}: record 9: cannot be decoded", part(3)),
        format!(
            "{}: not a readable Avro file: Codec 'bzip2' is not supported",
            part(4)
        ),
        format!(
            "{}: record 1: properties is 5242915 bytes; Braze caps event properties at 50 KB",
            part(0)
        ),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "{expected:?} not in:\n{}",
            run.stderr
        );
    }
    // The good file, the good custom event beside the huge one, and the records before each
    // broken block: u1's two, 14 of u9's truncated 40, 8 of u8's corrupt 40.
    let written = std::fs::read_to_string(&output).unwrap();
    let by_user = |user: &str| written.lines().filter(|l| l.starts_with(user)).count();
    assert_eq!(
        (by_user("u1,"), by_user("u9,"), by_user("u8,")),
        (2, 14, 8),
        "{written}"
    );
    assert!(written.contains("u1,sku-2,view,,1764806520\n"), "{written}");

    // Failed objects are read again next run; what they gave is not written twice.
    import(&[], &args(input, out))
        .exited(1)
        .says("4 objects read (4 failed), 2 already read")
        .says("0 interactions written, 22 duplicates");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_in_s3_imports_into_s3() {
    let moto = super::processes::shared_moto();
    let dir = scratch("s3");
    let export = dir.join("export");
    make_export("good", &export);
    let client = s3(moto);
    client
        .create_bucket()
        .bucket("currents")
        .send()
        .await
        .unwrap();
    for file in files(&export) {
        let key = format!(
            "braze/{}",
            file.strip_prefix(&export).unwrap().to_str().unwrap()
        );
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&file)
            .await
            .unwrap();
        client
            .put_object()
            .bucket("currents")
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap();
    }
    let vars = [("AWS_ENDPOINT_URL_S3", moto)];
    let args = args(
        "s3://currents/braze/",
        "s3://currents/personalize/interactions.csv",
    );
    let first = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        move || import(&vars, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    first.exited(1).says("8 interactions written");
    let read = |key: &'static str| {
        let client = client.clone();
        async move {
            let object = client
                .get_object()
                .bucket("currents")
                .key(key)
                .send()
                .await
                .unwrap();
            String::from_utf8(object.body.collect().await.unwrap().to_vec()).unwrap()
        }
    };
    assert_eq!(read("personalize/interactions.csv").await, GOOD);
    assert!(
        read("personalize/interactions.csv.state.json")
            .await
            .contains(r#""output_bytes":291"#)
    );

    let again = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        move || import(&vars, &args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    again
        .exited(0)
        .says("0 objects read (0 failed), 5 already read");
    assert_eq!(read("personalize/interactions.csv").await, GOOD);
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Braze's published sample files, as they are: every event type's file opens, and the three
/// mapped types give one interaction each. Runs when `CURRENTS_EXAMPLES` names a checkout of
/// `Appboy/currents-examples` (their licence forbids copying them here; CI has no GitHub).
#[test]
fn braze_published_samples_import() {
    let Ok(checkout) = std::env::var("CURRENTS_EXAMPLES") else {
        eprintln!("CURRENTS_EXAMPLES is not set: Braze's sample files were not tried");
        return;
    };
    let samples = Path::new(&checkout).join("sample-data/Avro");
    let dir = scratch("samples");
    let output = dir.join("interactions.csv");
    let run = import(
        &[],
        &[
            samples.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--custom-event",
            "name=stringProperty:custom",
            "--engagement",
            "users.messages.contentcard.Click=content_card_id:click",
        ],
    );
    run.exited(0)
        .says("3 objects read (0 failed)")
        .says("3 records: 3 interactions written, 0 duplicates");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP\n\
         external_user_id,properties,custom,,2033802504\n\
         external_user_id,product_id,purchase,3.14,2033802504\n\
         external_user_id,content_card_id,click,,2033802504\n"
    );
}
