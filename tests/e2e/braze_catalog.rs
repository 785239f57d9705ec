//! `load-items --braze-catalog` against the project's fake Braze Catalogs API: thousands of
//! items with long descriptions land exactly, 50 a request; a rerun sends nothing; a change
//! sends only itself; a prune past the share is refused; a bad file sends nothing; Braze's rate
//! limit is kept.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use personalize_braze_testkit::binaries;
use personalize_braze_testkit::fake_braze_catalogs::FakeBrazeCatalogs;
use serde_json::json;

const KEY: &str = "catalogs-key";

fn load(fake: &FakeBrazeCatalogs, args: &[&str]) -> Output {
    std::process::Command::new(binaries::path("load-items"))
        .env_clear()
        .env("BRAZE_REST_ENDPOINT", &fake.endpoint)
        .env("BRAZE_API_KEY", KEY)
        .args(args)
        .output()
        .expect("run load-items")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A shop's items: ids, names, prices, a category and a 300-500 character description.
fn items_csv(name: &str, count: usize, changed: &[usize]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("braze-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut out = csv::Writer::from_path(&path).unwrap();
    out.write_record(["ITEM_ID", "NAME", "PRICE", "CATEGORY", "DESCRIPTION"])
        .unwrap();
    for i in 0..count {
        let price = if changed.contains(&i) {
            "1.00".to_owned()
        } else {
            format!("{}.99", 10 + i % 90)
        };
        let description = format!(
            "Item {i}: {}",
            "Soft, breathable, made to last; wash cold, dry flat. ".repeat(6 + i % 4)
        );
        out.write_record([
            format!("sku-{i:05}"),
            format!("Weekend Boot {i} – Brown"),
            price,
            ["shoes", "bags", "shirts"][i % 3].to_owned(),
            description,
        ])
        .unwrap();
    }
    out.flush().unwrap();
    path
}

async fn run(fake: &FakeBrazeCatalogs, args: Vec<String>) -> Output {
    let fake_endpoint = fake.endpoint.clone();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(binaries::path("load-items"))
            .env_clear()
            .env("BRAZE_REST_ENDPOINT", fake_endpoint)
            .env("BRAZE_API_KEY", KEY)
            .args(args)
            .output()
            .expect("run load-items")
    })
    .await
    .unwrap()
}

fn args(file: &Path, more: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--braze-catalog".to_owned(),
        "shop".to_owned(),
        "--items".to_owned(),
        file.display().to_string(),
    ];
    args.extend(more.iter().map(|a| a.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_items_land_exactly_and_a_rerun_sends_nothing() {
    let fake = FakeBrazeCatalogs::start(KEY).await;
    let file = items_csv("shop.csv", 3_000, &[]);
    let first = run(&fake, args(&file, &[])).await;
    assert!(
        first.status.success(),
        "{}\n{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let stdout = text(&first.stdout);
    assert!(stdout.contains("created catalog shop with fields id, category (string), description (string), name (string), price (number)"), "{stdout}");
    assert!(
        stdout.contains("sent 3000 items to catalog shop (0 unchanged)"),
        "{stdout}"
    );

    let catalog = fake.catalog("shop").unwrap();
    assert_eq!(catalog.items.len(), 3_000);
    // Item 7 exactly as the file says, the price a number.
    let seven = &catalog.items["sku-00007"];
    assert_eq!(seven["name"], "Weekend Boot 7 – Brown");
    assert_eq!(seven["price"], json!(17.99));
    assert_eq!(seven["category"], "bags");
    assert!(
        seven["description"]
            .as_str()
            .unwrap()
            .starts_with("Item 7: Soft, breathable")
    );
    let requests = fake.item_requests();
    assert_eq!(requests.len(), 60, "3,000 items, 50 a request");
    assert!(
        requests
            .iter()
            .all(|(method, n)| method == "PUT" && *n <= 50)
    );

    // A rerun sends nothing; a change of two prices sends those two alone.
    let again = run(&fake, args(&file, &[])).await;
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("sent 0 items to catalog shop (3000 unchanged)"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(fake.item_requests().len(), 60);
    let changed = items_csv("shop-changed.csv", 3_000, &[5, 2_999]);
    let update = run(&fake, args(&changed, &[])).await;
    assert!(update.status.success());
    assert_eq!(fake.item_requests().len(), 61);
    assert_eq!(fake.item_requests()[60].1, 2);
    assert_eq!(
        fake.catalog("shop").unwrap().items["sku-02999"]["price"],
        json!(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_past_the_share_is_refused_and_forced_deletes_exactly_the_dropped() {
    let fake = FakeBrazeCatalogs::start(KEY).await;
    let all = items_csv("prune-all.csv", 200, &[]);
    assert!(run(&fake, args(&all, &[])).await.status.success());
    let half = items_csv("prune-half.csv", 100, &[]);
    let refused = run(&fake, args(&half, &["--prune"])).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("nothing was sent"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(fake.catalog("shop").unwrap().items.len(), 200);
    let requests = fake.item_requests().len();

    let forced = run(&fake, args(&half, &["--prune", "--force"])).await;
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(
        text(&forced.stdout).contains("pruned 100 items"),
        "{}",
        text(&forced.stdout)
    );
    let left = fake.catalog("shop").unwrap().items;
    assert_eq!(left.len(), 100);
    assert!(left.contains_key("sku-00099") && !left.contains_key("sku-00100"));
    let deletes: Vec<_> = fake.item_requests()[requests..].to_vec();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(
        deletes
            .iter()
            .all(|(method, n)| method == "DELETE" && *n == 50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_sends_nothing_and_names_each_problem() {
    let fake = FakeBrazeCatalogs::start(KEY).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("braze-catalog-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    let long = "x".repeat(5_001);
    std::fs::write(
        &bad,
        format!(
            "ITEM_ID,NAME,DESCRIPTION\nsku-1,Fine,ok\nsku 2,Space in the id,ok\nsku-3,Long,{long}\n"
        ),
    )
    .unwrap();
    let output = load(
        &fake,
        &["--braze-catalog", "shop", "--items", bad.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("line 3: id \"sku 2\""), "{stderr}");
    assert!(
        stderr.contains("line 4: description is 5001 characters"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(
        fake.catalog("shop").is_none(),
        "not even the catalog was created"
    );
    assert!(fake.item_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brazes_rate_limit_is_kept_and_a_wrong_key_stops_the_run() {
    let fake = FakeBrazeCatalogs::start(KEY).await;
    // 10 requests a second: 1,000 items are 20 requests, which must take their time.
    fake.set_limit(10, Duration::from_secs(1));
    let file = items_csv("limited.csv", 1_000, &[]);
    let started = std::time::Instant::now();
    let output = run(&fake, args(&file, &[])).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(fake.catalog("shop").unwrap().items.len(), 1_000);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let wrong = std::process::Command::new(binaries::path("load-items"))
        .env_clear()
        .env("BRAZE_REST_ENDPOINT", &fake.endpoint)
        .env("BRAZE_API_KEY", "not-the-key")
        .args(["--braze-catalog", "shop", "--items", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains("401"),
        "{}",
        text(&wrong.stderr)
    );
}

/// A Similar-Items batch output lands as each item's `related_ids` column: at most `--count`
/// ids, never the item itself or an id a catalog cannot hold, 50 items a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items_output_lands_in_the_catalog_column() {
    let fake = FakeBrazeCatalogs::start(KEY).await;
    let file = items_csv("related.csv", 120, &[]);
    assert!(run(&fake, args(&file, &[])).await.status.success());
    let before = fake.item_requests().len();

    let dir = file.parent().unwrap().to_owned();
    let output = dir.join("similar.json.out");
    let mut text = String::new();
    for i in 0..120 {
        let related: Vec<String> = std::iter::once(format!("sku-{i:05}"))
            .chain(std::iter::once("not an id".to_owned()))
            .chain((1..=8).map(|k| format!("sku-{:05}", (i + k * 7) % 120)))
            .collect();
        text.push_str(
            &json!({"input": {"itemId": format!("sku-{i:05}")}, "output": {"recommendedItems": related, "scores": []}, "error": null})
                .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&output, text).unwrap();
    let endpoint = fake.endpoint.clone();
    let synced = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binaries::path("braze-sync"))
            .env_clear()
            .env("BRAZE_REST_ENDPOINT", endpoint)
            .env("BRAZE_API_KEY", KEY)
            .args([
                output.to_str().unwrap(),
                "--related-to-catalog",
                "shop",
                "--count",
                "5",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&synced.stdout);
    assert!(
        synced.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(
        stdout.contains("120 items' related ids written to catalog shop, column related_ids"),
        "{stdout}"
    );

    let catalog = fake.catalog("shop").unwrap();
    assert!(
        catalog
            .fields
            .contains(&("related_ids".to_owned(), "array".to_owned()))
    );
    assert_eq!(
        catalog.items["sku-00003"]["related_ids"],
        json!([
            "sku-00010",
            "sku-00017",
            "sku-00024",
            "sku-00031",
            "sku-00038"
        ])
    );
    // The item's own fields are kept: PATCH edits the column alone.
    assert_eq!(catalog.items["sku-00003"]["name"], "Weekend Boot 3 – Brown");
    let patches: Vec<_> = fake.item_requests()[before..].to_vec();
    assert_eq!(patches.len(), 3, "{patches:?}");
    assert!(
        patches
            .iter()
            .all(|(method, n)| method == "PATCH" && *n <= 50)
    );
}
