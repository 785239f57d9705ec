//! Local mode through the built binary: no AWS configuration at all, only CSV files.

use std::path::{Path, PathBuf};

use super::http::HttpClient;
use super::processes::ServiceProcess;

pub(super) async fn start(vars: Vec<(&'static str, String)>) -> ServiceProcess {
    ServiceProcess::launch(&vars).await
}

pub(super) fn sample_data() -> String {
    format!("{}/examples/data", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_configuration_the_binary_serves_the_sample_data() {
    let service = start(vec![("DATA_DIR", sample_data())]).await;
    let http = HttpClient::new();

    let answer = http
        .get(&format!(
            "{}/recommendations?user_id=user-00001&count=5",
            service.base_url
        ))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    let items = answer.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        for field in ["id", "url", "name", "price", "image", "category"] {
            assert!(item.get(field).is_some(), "{field} missing in {item}");
        }
    }
    let log = service.log();
    // The start-up line names the model tuning chose for the sample data.
    assert!(
        log.contains("local mode: trained item co-occurrence blended with 16 matrix factors"),
        "{log}"
    );

    let bad = http
        .get(&format!("{}/recommendations?count=5", service.base_url))
        .await;
    assert_eq!(bad.status, 400);
    let unknown_filter = http
        .get(&format!(
            "{}/recommendations?user_id=u&filter=arn:x",
            service.base_url
        ))
        .await;
    assert_eq!(unknown_filter.status, 400);
    assert_eq!(unknown_filter.json()["error"]["parameter"], "filter");
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

fn dataset_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Personalize-format dataset that is not the sample: extra columns, quoted fields with commas
/// and newlines, other column names. The answer is exactly what co-occurrence predicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_personalize_dataset_answers_what_co_occurrence_predicts() {
    let dir = dataset_dir("books");
    write(
        &dir,
        "interactions.csv",
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n\
         r1,dune,1700000000,read,5\nr1,foundation,1700000000,read,4\n\
         r2,dune,1700000000,read,5\nr2,foundation,1700000000,read,5\nr2,neuromancer,1700000000,purchase,1\n\
         r3,foundation,1700000000,read,3\nr3,neuromancer,1700000000,read,4\n\
         r4,neuromancer,1700000000,read,2\nr4,emma,1700000000,read,5\n\
         r5,dune,1700000000,read,4\n",
    );
    write(
        &dir,
        "items.csv",
        "ITEM_ID,TITLE,GENRES,PAGES,BLURB\n\
         dune,Dune,sci-fi|classic,412,\"Spice, sand, \"\"worms\"\"\"\n\
         foundation,Foundation,sci-fi,255,\"Psychohistory\nin two lines\"\n\
         neuromancer,Neuromancer,sci-fi|cyberpunk,271,\n\
         emma,Emma,romance,474,Austen\n",
    );
    let service = start(vec![
        ("DATA_DIR", dir.display().to_string()),
        (
            "LOCAL_FILTERS",
            "genre=INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)".to_owned(),
        ),
        ("ITEM_URL_TEMPLATE", "https://books.example/{id}".to_owned()),
    ])
    .await;
    let http = HttpClient::new();
    let url = |q: &str| format!("{}/recommendations?{q}", service.base_url);

    // r5 read dune: cosine(dune, foundation) = 2/3, (dune, neuromancer) = 1/3, emma from popularity.
    let answer = http.get(&url("user_id=r5&count=3")).await;
    assert_eq!(
        answer.body,
        concat!(
            r#"[{"id":"foundation","url":"https://books.example/foundation","blurb":"Psychohistory\nin two lines","genres":"sci-fi","pages":255,"title":"Foundation"},"#,
            r#"{"id":"neuromancer","url":"https://books.example/neuromancer","genres":"sci-fi|cyberpunk","pages":271,"title":"Neuromancer"},"#,
            r#"{"id":"emma","url":"https://books.example/emma","blurb":"Austen","genres":"romance","pages":474,"title":"Emma"}]"#
        )
    );
    // Unknown reader: most read first (dune, foundation, neuromancer tie at 3 readers: by id).
    assert_eq!(
        http.get(&url("user_id=new-reader")).await.ids(),
        ["dune", "foundation", "neuromancer", "emma"]
    );
    assert_eq!(
        http.get(&url(
            "user_id=new-reader&filter=genre&filter_GENRE=cyberpunk,romance"
        ))
        .await
        .ids(),
        ["neuromancer", "emma"]
    );
    // The default filters belong to the sample data; this deployment named its own.
    assert_eq!(
        http.get(&url("user_id=r5&filter=not-purchased"))
            .await
            .status,
        400
    );
}

/// The books dataset's co-occurrence (readers per book: dune, foundation, neuromancer 3, emma 1):
/// cos(dune, foundation) = 2/3, cos(foundation, neuromancer) = 2/3, cos(dune, neuromancer) = 1/3,
/// cos(neuromancer, emma) = 1/√3, and emma never meets dune or foundation.
fn books(dir: &Path) {
    write(
        dir,
        "interactions.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n\
         r1,dune,read,1700000000\nr1,foundation,read,1700000000\n\
         r2,dune,read,1700000000\nr2,foundation,read,1700000000\nr2,neuromancer,purchase,1700000000\n\
         r3,foundation,read,1700000000\nr3,neuromancer,read,1700000000\n\
         r4,neuromancer,read,1700000000\nr4,emma,read,1700000000\n\
         r5,dune,read,1700000000\n",
    );
    write(
        dir,
        "items.csv",
        "ITEM_ID,TITLE\ndune,Dune\nfoundation,Foundation\nneuromancer,Neuromancer\nemma,Emma\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_serves_related_items_rankings_and_learns_from_events() {
    let dir = dataset_dir("books-endpoints");
    books(&dir);
    let service = start(vec![("DATA_DIR", dir.display().to_string())]).await;
    let http = HttpClient::new();
    let url = |path: &str| format!("{}{path}", service.base_url);

    // Neighbours by similarity, then popular items; never the item itself.
    assert_eq!(
        http.get(&url("/related-items?item_id=dune")).await.ids(),
        ["foundation", "neuromancer", "emma"]
    );
    assert_eq!(
        http.get(&url("/related-items?item_id=emma&count=2"))
            .await
            .ids(),
        ["neuromancer", "dune"]
    );

    // r5 read dune: foundation 2/3, neuromancer 1/3; dune and emma score nothing, so the more
    // popular first; the unknown id is dropped.
    let ranked = http
        .get(&url(
            "/rankings?user_id=r5&item_ids=emma,neuromancer,ghost,dune,foundation",
        ))
        .await;
    assert_eq!(ranked.status, 200, "{}", ranked.body);
    assert_eq!(ranked.ids(), ["foundation", "neuromancer", "dune", "emma"]);
    let posted = http
        .post(
            &url("/rankings"),
            r#"{"user_id":"r5","item_ids":["emma","foundation"],"count":1}"#,
        )
        .await;
    assert_eq!(posted.ids(), ["foundation"]);

    // Events join the history: r5 buys neuromancer, so it is seen, and emma (its neighbour)
    // rises; a newcomer's view of emma makes neuromancer their first pick.
    let before = http.get(&url("/recommendations?user_id=r5")).await.ids();
    assert_eq!(before, ["foundation", "neuromancer", "emma"]);
    let newcomer = http.get(&url("/recommendations?user_id=r9")).await.ids();
    assert_eq!(newcomer, ["dune", "foundation", "neuromancer", "emma"]);
    let accepted = http
        .post(
            &url("/events"),
            r#"[{"user_id":"r5","event_type":"purchase","item_id":"neuromancer"},
                {"user_id":"r9","event_type":"view","item_id":"emma"}]"#,
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(
        http.get(&url("/recommendations?user_id=r5")).await.ids(),
        ["foundation", "emma"]
    );
    assert_eq!(
        http.get(&url("/recommendations?user_id=r9")).await.ids(),
        ["neuromancer", "dune", "foundation"]
    );
    // The purchase counts for the default not-purchased filter too.
    assert_eq!(
        http.get(&url(
            "/rankings?user_id=r5&item_ids=neuromancer,emma&filter=not-purchased"
        ))
        .await
        .ids(),
        ["emma"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_stops_the_start_naming_file_line_and_problem() {
    let dir = dataset_dir("malformed");
    write(
        &dir,
        "interactions.csv",
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu1,a,view,1\nu2,b,view\n",
    );
    write(&dir, "items.csv", "ITEM_ID,NAME\na,A\n");
    let binary = env!("CARGO_BIN_EXE_personalize-braze");
    let output = std::process::Command::new(binary)
        .env_clear()
        .env("DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "personalize-braze: cannot start in local mode: {}, line 3: 3 fields, but the header has 4",
        dir.join("interactions.csv").display()
    );
    assert_eq!(stderr.trim(), expected);
}

/// The template's `LoggingConfig` sets `AWS_LAMBDA_LOG_LEVEL`; at ERROR the request lines go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployments_log_level_silences_info_lines() {
    let quiet = start(vec![
        ("DATA_DIR", sample_data()),
        ("AWS_LAMBDA_LOG_LEVEL", "ERROR".to_owned()),
    ])
    .await;
    let loud = start(vec![("DATA_DIR", sample_data())]).await;
    let http = HttpClient::new();
    for service in [&quiet, &loud] {
        let url = format!("{}/recommendations?user_id=user-00001", service.base_url);
        assert_eq!(http.get(&url).await.status, 200);
    }
    assert!(
        loud.log().contains(r#""message":"request""#),
        "{}",
        loud.log()
    );
    let log = quiet.log();
    assert!(!log.contains(r#""level":"INFO""#), "{log}");
}

/// The request line carries the X-Ray trace id API Gateway passes in `x-amzn-trace-id`, so one
/// request's lines can be found next to its trace; never the user id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_line_carries_the_trace_id_and_not_the_user() {
    let service = start(vec![("DATA_DIR", sample_data())]).await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let answer = HttpClient::new()
        .get_with_headers(
            &format!("{}/recommendations?user_id=user-00042", service.base_url),
            &[("x-amzn-trace-id", trace)],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let log = service.log();
    let line = log
        .lines()
        .find(|line| line.contains(r#""message":"request""#))
        .unwrap_or_else(|| panic!("no request line in:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], trace, "{line}");
    assert!(line.get("lambda_request_id").is_none(), "{line}");
    assert!(!log.contains("user-00042"), "{log}");
}
