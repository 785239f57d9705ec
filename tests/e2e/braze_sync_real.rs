//! braze-sync on data shaped like a customer's, and on Braze answering as Braze does when things
//! go wrong: a catalog with long descriptions, files naming hundreds of thousands of ids, a wrong
//! endpoint, Braze failing, partial successes, rotated and bad keys, a second day's delta.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::braze_sync::{KEY, checkpoint, joined, run};
use super::fake_braze::FakeBraze;
use super::processes::unique_name;

/// One product as a shop's export holds it.
struct Product {
    id: String,
    name: String,
    price: String,
    description: String,
}

/// 2,465 products whose descriptions run to 300-500 characters, with the commas, quotes,
/// line breaks and non-ASCII letters real copy has.
fn products() -> Vec<Product> {
    let mut rng = fastrand::Rng::with_seed(29);
    let words = [
        "soft",
        "merino",
        "wool",
        "blend",
        "tailored",
        "fit",
        "with",
        "a",
        "relaxed",
        "drape,",
        "hand-finished",
        "seams",
        "and",
        "\"signature\"",
        "buttons.",
        "Machine",
        "washable",
        "at",
        "30°C;",
        "crème",
        "lining",
        "naïve",
        "café",
        "colourway",
        "—",
        "ethically",
        "sourced",
        "from",
        "Portugal.\n",
        "Pairs",
        "well",
        "jeans",
        "or",
        "chinos.",
    ];
    (0..2465)
        .map(|i| {
            let mut description = String::new();
            let target = rng.usize(300..=500);
            while description.chars().count() < target {
                description.push_str(words[rng.usize(..words.len())]);
                description.push(' ');
            }
            let description: String = description.chars().take(target).collect();
            Product {
                id: format!("prod-{i:05}"),
                name: format!("Café Merino Sweater №{i} – Size {}", ["S", "M", "L"][i % 3]),
                price: format!("{}.{:02}", 10 + i % 190, i % 100),
                description,
            }
        })
        .collect()
}

fn items_csv(products: &[Product]) -> PathBuf {
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.csv", unique_name("real-items")));
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer
        .write_record(["ITEM_ID", "NAME", "PRICE", "URL", "IMAGE", "DESCRIPTION"])
        .unwrap();
    for p in products {
        writer
            .write_record([
                p.id.as_str(),
                &p.name,
                &p.price,
                &format!("https://shop.example/p/{}", p.id),
                &format!("https://cdn.shop.example/{}.jpg", p.id),
                &p.description,
            ])
            .unwrap();
    }
    writer.flush().unwrap();
    path
}

/// Batch output as a customer's job writes it: 2,000 users with 12 catalog items each, 3,000
/// users with one catalog item among 99 ids the catalog lacks (297,000 distinct unknown ids),
/// 200 users with nothing the catalog has, and repeats.
fn batch_lines(products: &[Product]) -> Vec<(String, Vec<String>)> {
    let mut rng = fastrand::Rng::with_seed(30);
    let mut lines = Vec::new();
    for u in 0..2000 {
        let mut ranked: Vec<String> = (0..12)
            .map(|_| products[rng.usize(..products.len())].id.clone())
            .collect();
        if u % 9 == 0 {
            ranked.insert(3, ranked[0].clone());
        }
        lines.push((format!("shopper-{u}"), ranked));
    }
    for u in 0..3000 {
        let mut ranked: Vec<String> = (0..99).map(|j| format!("retired-{u}-{j}")).collect();
        ranked.insert(
            rng.usize(..100),
            products[rng.usize(..products.len())].id.clone(),
        );
        lines.push((format!("browser-{u}"), ranked));
    }
    for u in 0..200 {
        lines.push((
            format!("newcomer-{u}"),
            (0..25).map(|j| format!("gone-{u}-{j}")).collect(),
        ));
    }
    rng.shuffle(&mut lines);
    lines
}

/// braze-sync on `file` with the catalog `items` and a fresh checkpoint, Braze's defaults else.
async fn sync(
    braze: &FakeBraze,
    file: &Path,
    items: &Path,
    name: &str,
) -> super::braze_sync::Finished {
    run(
        braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--checkpoint",
            &checkpoint(name),
        ],
    )
    .await
}

fn write_batch(name: &str, lines: &[(String, Vec<String>)]) -> PathBuf {
    let mut text = String::new();
    for (user, ranked) in lines {
        let line = json!({"input": {"userId": user}, "output": {"recommendedItems": ranked, "scores": vec![0.5; ranked.len()]}, "error": null});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.json.out", unique_name(name)));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_catalog_reaches_every_user_who_has_an_item_exactly_once_with_the_fields_chosen() {
    let products = products();
    let items = items_csv(&products);
    let lines = batch_lines(&products);
    let distinct: HashSet<&String> = lines.iter().flat_map(|(_, r)| r).collect();
    assert!(distinct.len() > 200_000, "{} distinct ids", distinct.len());
    let file = write_batch("real", &lines);
    let braze = FakeBraze::start(KEY).await;
    let known: HashSet<String> = products.iter().map(|p| p.id.clone()).collect();
    let by_id: HashMap<&str, &Product> = products.iter().map(|p| (p.id.as_str(), p)).collect();

    // The default fields: the endpoint's contract.
    let finished = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--count",
            "10",
            "--rate",
            "off",
            "--concurrency",
            "8",
            "--checkpoint",
            &checkpoint("real"),
        ],
    )
    .await;
    finished.exited(0);
    let reachable: Vec<&(String, Vec<String>)> = lines
        .iter()
        .filter(|(_, ranked)| ranked.iter().any(|id| known.contains(id)))
        .collect();
    assert_eq!(reachable.len(), 5000);
    assert!(
        finished
            .stdout
            .contains("5000 users sent, 200 skipped, 0 failed"),
        "{}",
        finished.stdout
    );
    assert!(
        finished
            .stdout
            .contains("skipped: 200 × none of the user's items is in the catalog"),
        "{}",
        finished.stdout
    );
    let received = braze.by_user();
    assert_eq!(received.len(), 5000);
    for (user, ranked) in &reachable {
        let objects = &received[user];
        assert_eq!(objects.len(), 1, "{user} sent once");
        let expected: Vec<Value> = joined(ranked, &known, 10)
            .iter()
            .map(|id| {
                let p = by_id[id.as_str()];
                json!({
                    "id": p.id,
                    "url": format!("https://shop.example/p/{}", p.id),
                    "name": p.name,
                    "price": p.price.parse::<f64>().unwrap(),
                    "image": format!("https://cdn.shop.example/{}.jpg", p.id),
                })
            })
            .collect();
        assert_eq!(
            objects[0]["recommendations"],
            Value::Array(expected),
            "{user}"
        );
    }

    // A message that shows the description: cut at Braze's 255 characters, never dropped.
    let braze = FakeBraze::start(KEY).await;
    let finished = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--count",
            "10",
            "--fields",
            "name,description",
            "--attribute",
            "picks",
            "--create-profiles",
            "--rate",
            "off",
            "--checkpoint",
            &checkpoint("real-descriptions"),
        ],
    )
    .await;
    finished.exited(0);
    assert!(
        finished
            .stdout
            .contains("values cut to Braze's 255 characters"),
        "{}",
        finished.stdout
    );
    let received = braze.by_user();
    assert_eq!(received.len(), 5000);
    for (user, ranked) in &reachable {
        let object = &received[user][0];
        assert!(object.get("_update_existing_only").is_none());
        let list = object["picks"].as_array().unwrap();
        assert_eq!(list.len(), joined(ranked, &known, 10).len());
        for item in list {
            let p = by_id[item["id"].as_str().unwrap()];
            let description: String = p.description.chars().take(255).collect();
            assert_eq!(
                item,
                &json!({"id": p.id, "name": p.name, "description": description})
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_endpoint_or_a_failing_braze_stops_the_run_and_marks_nobody_done() {
    let products = products();
    let items = items_csv(&products);
    let lines: Vec<(String, Vec<String>)> = (0..300)
        .map(|u| (format!("user-{u}"), vec![products[u].id.clone()]))
        .collect();
    let file = write_batch("wrong-endpoint", &lines);
    let braze = FakeBraze::start(KEY).await;
    let cp = checkpoint("wrong-endpoint");
    let args = [
        file.to_str().unwrap(),
        "--items",
        items.to_str().unwrap(),
        "--max-attempts",
        "2",
        "--checkpoint",
        &cp,
    ];
    // A path Braze does not serve answers 404.
    let wrong = format!("{}/v2", braze.endpoint);
    let finished = run(&braze, &[("BRAZE_REST_ENDPOINT", &wrong)], &args).await;
    finished.exited(3);
    finished.says("answered HTTP 404");
    finished.says("check BRAZE_REST_ENDPOINT");
    assert!(
        finished
            .stdout
            .contains("0 users sent, 0 skipped, 0 failed"),
        "{}",
        finished.stdout
    );
    let recorded = std::fs::read_to_string(&cp).unwrap();
    assert_eq!(recorded.lines().count(), 1, "only the header: {recorded}");

    // Whole requests answered 405, 413 or 503 (retried, then given up): the same.
    for (status, says) in [
        (405, "HTTP 405"),
        (413, "HTTP 413"),
        (503, "Braze kept failing: HTTP 503"),
    ] {
        braze.answer_all(Some(status));
        let finished = run(&braze, &[], &args).await;
        assert_eq!(finished.code, Some(3), "{status}: {}", finished.stdout);
        assert!(finished.stdout.contains(says), "{}", finished.stdout);
        assert_eq!(std::fs::read_to_string(&cp).unwrap().lines().count(), 1);
    }
    assert!(braze.accepted().is_empty());

    // With the endpoint right, the rerun sends everyone, once.
    braze.answer_all(None);
    let finished = run(&braze, &[], &args).await;
    finished.exited(0);
    finished.says("300 users sent");
    assert_eq!(braze.by_user().len(), 300);
    assert!(braze.by_user().values().all(|o| o.len() == 1));

    // The key never travels in clear text to another machine.
    let clear = run(
        &braze,
        &[("BRAZE_REST_ENDPOINT", "http://rest.iad-01.braze.com")],
        &args,
    )
    .await;
    assert_eq!(clear.code, Some(2));
    assert!(
        clear.stderr.contains("must be an https:// URL"),
        "{}",
        clear.stderr
    );
    // An absurd rate is a clear error, not a panic.
    let absurd = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--rate",
            "4294967295/18446744073709551615s",
        ],
    )
    .await;
    assert_eq!(absurd.code, Some(2));
    assert!(
        absurd.stderr.contains("--rate") && !absurd.stderr.contains("panicked"),
        "{}",
        absurd.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_refused_inside_a_201_are_failed_once_each_and_the_rest_land() {
    let products = products();
    let items = items_csv(&products);
    let braze = FakeBraze::start(KEY).await;
    // Braze names index 0 twice for a one-user request: one user failed, never a wrapped count.
    braze.refuse_in_201(&["only-user", "user-7", "user-140"], true);
    let one = write_batch(
        "one-user",
        &[("only-user".to_owned(), vec![products[0].id.clone()])],
    );
    let cp = checkpoint("one-user");
    let finished = run(
        &braze,
        &[],
        &[
            one.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--checkpoint",
            &cp,
        ],
    )
    .await;
    finished.exited(1);
    assert!(
        finished
            .stdout
            .contains("0 users sent, 0 skipped, 1 failed"),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stderr.contains(
            r#"line 1 (user "only-user"): refused by Braze: Invalid value for custom attribute"#
        ),
        "{}",
        finished.stderr
    );
    let recorded = std::fs::read_to_string(&cp).unwrap();
    assert!(recorded.contains(r#""sent":0,"failed":1"#), "{recorded}");

    let lines: Vec<(String, Vec<String>)> = (0..200)
        .map(|u| {
            (
                format!("user-{u}"),
                vec![products[u].id.clone(), products[u + 1].id.clone()],
            )
        })
        .collect();
    let many = write_batch("partial", &lines);
    let finished = sync(&braze, &many, &items, "partial").await;
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stdout
            .contains("198 users sent, 0 skipped, 2 failed"),
        "{}",
        finished.stdout
    );
    let received = braze.by_user();
    assert_eq!(received.len(), 198);
    assert!(!received.contains_key("user-7") && !received.contains_key("user-140"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_related_items_file_is_refused_and_sends_nothing() {
    let products = products();
    let items = items_csv(&products);
    let mut text = String::new();
    for p in products.iter().take(50) {
        text.push_str(&json!({"input": {"itemId": p.id}, "output": {"recommendedItems": [products[7].id], "scores": [0.4]}, "error": null}).to_string());
        text.push('\n');
    }
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.json.out", unique_name("similar")));
    std::fs::write(&file, text).unwrap();
    let braze = FakeBraze::start(KEY).await;
    let finished = sync(&braze, &file, &items, "similar").await;
    finished.exited(3);
    finished.says("related-items (Similar-Items)");
    assert!(braze.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_days_run_sends_only_the_lists_that_changed() {
    let products = products();
    let items = items_csv(&products);
    let day_one: Vec<(String, Vec<String>)> = (0..1000)
        .map(|u| {
            (
                format!("user-{u}"),
                (0..5)
                    .map(|k| products[(u * 7 + k) % 2465].id.clone())
                    .collect(),
            )
        })
        .collect();
    let mut day_two = day_one.clone();
    for (u, (_, ranked)) in day_two.iter_mut().enumerate() {
        if u % 10 == 0 {
            ranked.reverse();
        }
    }
    let state = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.state", unique_name("delta")))
        .display()
        .to_string();
    let braze = FakeBraze::start(KEY).await;
    let args = |file: &Path, cp: &str| -> Vec<String> {
        [
            file.to_str().unwrap(),
            "--items",
            items.to_str().unwrap(),
            "--changed-only",
            "--state",
            &state,
            "--checkpoint",
            cp,
        ]
        .map(String::from)
        .to_vec()
    };
    let first = write_batch("day-one", &day_one);
    let args_one = args(&first, &checkpoint("day-one"));
    let one = run(
        &braze,
        &[],
        &args_one.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(one.code, Some(0), "{}\n{}", one.stdout, one.stderr);
    one.says("1000 users sent, 0 skipped");

    let second = write_batch("day-two", &day_two);
    let args_two = args(&second, &checkpoint("day-two"));
    let two = run(
        &braze,
        &[],
        &args_two.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(two.code, Some(0), "{}\n{}", two.stdout, two.stderr);
    assert!(
        two.stdout
            .contains("100 users sent, 900 unchanged (not sent)"),
        "{}",
        two.stdout
    );
    let received = braze.by_user();
    for u in 0..1000 {
        let expected = if u % 10 == 0 { 2 } else { 1 };
        assert_eq!(received[&format!("user-{u}")].len(), expected, "user-{u}");
    }

    // A state made for another attribute is refused, not misused.
    let mut other = args(&second, &checkpoint("day-two-other"));
    other.extend(["--attribute".to_owned(), "picks".to_owned()]);
    let refused = run(
        &braze,
        &[],
        &other.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(refused.code, Some(2), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("was made for attribute \"recommendations\""),
        "{}",
        refused.stderr
    );
}
