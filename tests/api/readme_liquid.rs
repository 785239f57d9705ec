//! Every ```liquid block in the README is valid Liquid and works on the answers the service
//! really gives. Braze's own tags get faithful stand-ins: `connected_content` fetches the URL from
//! the real router (local mode over the sample data) into its `:save` variable, adding
//! `__http_status_code__` to object answers as Braze does; `abort_message` becomes a marker;
//! `catalog_items` looks its ids up in the sample items, as a Braze Catalog loaded with
//! `load-items --braze-catalog` would hold them, into `items`.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::local_app;

/// The user the snippets are rendered for. Braze external ids can hold anything: this one breaks
/// a URL (`+`, `&`, `#`, a space) and a JSON string (`"`) unless the snippet escapes it.
const USER: &str = "user-00001 \"vip\" +1&count=1#x";

/// What Braze's `url_param_escape` makes of a value: safe as one query parameter.
fn url_param_escape(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// What Braze's `json_escape` makes of a value: safe inside a JSON string's quotes.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The README and the pages of `docs/` it links to, as one text: wherever a snippet lives, it is
/// tested.
fn documentation() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "docs/ holds the README's pages");
    for page in pages {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(page).unwrap());
    }
    text
}

/// Every ```liquid block of the README and its pages.
fn liquid_blocks() -> Vec<String> {
    documentation()
        .split("```liquid\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

/// The blocks that call the endpoint.
fn snippets() -> Vec<String> {
    let blocks = liquid_blocks();
    for block in &blocks {
        assert!(
            block.contains("{% connected_content ")
                || block.contains(ATTRIBUTE)
                || block.contains(IDS_ATTRIBUTE),
            "a README Liquid block neither calls the endpoint nor reads the attribute:\n{block}"
        );
    }
    blocks
        .into_iter()
        .filter(|b| b.contains("{% connected_content "))
        .collect()
}

/// How a message reads the attribute braze-sync sets.
const ATTRIBUTE: &str = "{{custom_attribute.${recommendations}}}";
/// And the ids-only attribute (`braze-sync --ids-only --attribute recommended_ids`).
const IDS_ATTRIBUTE: &str = "{{custom_attribute.${recommended_ids}}}";

/// The sample items as a Braze Catalog holds them after `load-items --braze-catalog`: the id,
/// and the other columns lower-cased, numbers as numbers.
fn catalog_item(id: &str) -> Option<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/items.csv");
    let records = personalize_braze_core::dataset::read_items(&path).unwrap();
    let record = records.into_iter().find(|r| r.id == id)?;
    let mut item = serde_json::Map::new();
    item.insert("id".into(), Value::from(record.id));
    for (name, text) in record.fields {
        let value = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(text));
        item.insert(name.to_lowercase(), value);
    }
    Some(Value::Object(item))
}

/// `{% catalog_items NAME ids… %}` as Braze runs it: the ids (Liquid in them rendered first)
/// looked up in the catalog, into `items`, in the order given.
fn catalog_items(template: &mut String, globals: &mut liquid::Object) {
    let Some(start) = template.find("{% catalog_items ") else {
        return;
    };
    let end = start + template[start..].find("%}").unwrap() + 2;
    let args = template[start + "{% catalog_items ".len()..end - 2]
        .trim()
        .to_owned();
    let (_catalog, ids) = args.split_once(' ').expect("a catalog and ids");
    // The ids may name a variable the template assigned before the tag (`{% assign ids = … %}`).
    let mut scope = globals.clone();
    for assign in template[..start].split("{% assign ").skip(1) {
        let statement = assign.split("%}").next().unwrap_or_default();
        if let Some((name, source)) = statement.split_once('=') {
            let source = source.trim();
            if let Some(value) = globals.get(source) {
                scope.insert(name.trim().to_owned().into(), value.clone());
            }
        }
    }
    let ids = liquid::ParserBuilder::with_stdlib()
        .build()
        .unwrap()
        .parse(ids)
        .unwrap_or_else(|e| panic!("catalog_items' ids are not Liquid: {e}"))
        .render(&scope)
        .unwrap();
    let items: Vec<Value> = ids
        .split([' ', ','])
        .filter(|id| !id.is_empty())
        .filter_map(catalog_item)
        .collect();
    globals.insert(
        "items".into(),
        liquid::model::to_value(&Value::Array(items)).unwrap(),
    );
    template.replace_range(start..end, "");
}

/// The `{% connected_content URL … :save NAME … %}` tag: (the whole tag, URL, NAME).
fn connected_content(snippet: &str) -> (String, String, String) {
    let start = snippet
        .find("{% connected_content ")
        .expect("a connected_content tag");
    let end = start + snippet[start..].find("%}").unwrap() + 2;
    let tag = &snippet[start..end];
    // The URL may hold `{{${user_id} | url_param_escape}}`, spaces included: it ends at the first option.
    let body = tag["{% connected_content ".len()..tag.len() - 2].trim();
    let (url, options) = body.split_once(" :").unwrap_or((body, ""));
    let url = url.trim().to_owned();
    let save = options
        .split(" :")
        .find_map(|option| option.strip_prefix("save "))
        .map(|name| name.split_whitespace().next().unwrap().to_owned())
        .expect(":save");
    (tag.to_owned(), url, save)
}

/// An item of the sample data, standing in for the item id a triggering event carries.
const ITEM: &str = "sku-10001";
/// Items of the sample data, standing in for a cart held in a custom attribute.
const CART: &str = "sku-10001,sku-10002,sku-10003";

/// Fills each `{{…}}` in the text with what Braze would put there for the test user and `item`.
fn fill(text: &str, item: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut end = start + rest[start..].find("}}").expect("a closed {{") + 2;
        // `{{${user_id}}}` closes its `${…}` and its `{{…}}` in one run of braces.
        while rest[end..].starts_with('}') {
            end += 1;
        }
        let expression = &rest[start..end];
        out.push_str(&rest[..start]);
        let value = if expression.contains("${user_id}") {
            USER
        } else if expression.contains("${item_id}") {
            item
        } else if expression.contains("${cart_item_ids}") {
            // A custom attribute array, after Liquid's `join: ','`.
            CART
        } else if expression.contains("${recommendation_id}") {
            ""
        } else if expression.contains("${dispatch_id}") {
            "dispatch-1"
        } else {
            panic!("no stand-in for {expression}")
        };
        // Filters as Braze applies them; anything unfiltered goes in as it is.
        out.push_str(&if expression.contains("url_param_escape") {
            url_param_escape(value)
        } else if expression.contains("json_escape") {
            json_escape(value)
        } else {
            value.to_owned()
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// What Braze would call: the path after the stage, with the Liquid in it filled in.
fn path_of(url: &str) -> String {
    let path = &url[url.find("/Prod/").expect("a /Prod/ URL") + "/Prod".len()..];
    fill(path, ITEM)
}

async fn fetch(app: &axum::Router, path: &str) -> (u16, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let mut json: Value = serde_json::from_slice(&bytes).unwrap();
    if let Value::Object(object) = &mut json
        && (200..300).contains(&status)
    {
        object.insert("__http_status_code__".into(), Value::from(status));
    }
    (status, json)
}

fn render(snippet: &str, tag: &str, save: &str, answer: &Value) -> String {
    let mut template = snippet.replace(tag, "");
    while let Some(start) = template.find("{% abort_message(") {
        let end = start + template[start..].find("%}").unwrap() + 2;
        let reason = template[start + "{% abort_message(".len()..end - 3]
            .trim_end_matches(')')
            .to_owned();
        template.replace_range(start..end, &format!("ABORTED({reason})"));
    }
    let mut globals = liquid::Object::new();
    globals.insert(
        save.to_owned().into(),
        liquid::model::to_value(answer).unwrap(),
    );
    catalog_items(&mut template, &mut globals);
    let parsed = liquid::ParserBuilder::with_stdlib()
        .build()
        .unwrap()
        .parse(&template)
        .unwrap_or_else(|e| panic!("not valid Liquid: {e}\n{template}"));
    parsed
        .render(&globals)
        .unwrap_or_else(|e| panic!("does not render: {e}\n{template}"))
}

#[tokio::test]
async fn every_readme_snippet_renders_against_real_answers() {
    let app = local_app();
    let snippets = snippets();
    assert!(
        snippets.len() >= 4,
        "expected the README's Braze snippets, found {}",
        snippets.len()
    );

    for snippet in &snippets {
        let (tag, url, save) = connected_content(snippet);
        let path = path_of(&url);
        // The user (and any item) arrive whole, whatever their ids hold.
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert!(
            params.contains(&("user_id".to_owned(), USER.to_owned())),
            "{url} does not escape the user id: Braze would call {path}"
        );
        let (status, answer) = fetch(&app, &path).await;
        assert_eq!(status, 200, "{url}: {answer}");
        let output = render(snippet, &tag, &save, &answer);
        assert!(
            !output.contains("ABORTED"),
            "aborted on a real answer:\n{output}"
        );

        let answered = answer.get("items").unwrap_or(&answer).as_array().unwrap();
        // `format=ids`: the items are what the catalog holds for them.
        let looked_up: Vec<Value>;
        let items = if answered.iter().all(Value::is_string) {
            looked_up = answered
                .iter()
                .map(|id| catalog_item(id.as_str().unwrap()).expect("an id of the catalog"))
                .collect();
            &looked_up
        } else {
            answered
        };
        let first = items[0]["name"].as_str().unwrap();
        // Snippets that show items show the real first one (HTML-escaped where they escape).
        if snippet.contains("[0].name") {
            assert!(output.contains(first), "{first:?} not in:\n{output}");
        }
        if snippet.contains("{% for item in") {
            assert_eq!(
                output.matches("<a href=\"https://shop.example/p/").count(),
                items.len(),
                "{output}"
            );
        }

        // The A/B variant shows which recommender answered; the promotion badges its items.
        if snippet.contains("{{ result.recommender }}") {
            let name = answer["recommender"].as_str().expect("a named recommender");
            assert!(output.contains(&format!("variant: {name}")), "{output}");
        }
        if snippet.contains("{% if item.promotion %}") {
            let promoted = items
                .iter()
                .filter(|i| i.get("promotion").is_some())
                .count();
            assert!(promoted > 0, "no promoted item in {answer}");
            assert_eq!(
                output.matches("<b>New in bags</b>").count(),
                promoted,
                "{output}"
            );
        }

        // The same snippet with no recommendations must abort rather than render a blank.
        if snippet.contains("abort_message('no recommendations')") {
            let empty = match answer {
                Value::Object(_) => {
                    serde_json::json!({"items": [], "recommendation_id": null, "__http_status_code__": 200})
                }
                _ => serde_json::json!([]),
            };
            // abort_message stops Braze's rendering there: render up to the end of its line.
            let guard = snippet.find("abort_message('no recommendations')").unwrap();
            let until = guard + snippet[guard..].find('\n').unwrap_or(snippet.len() - guard);
            let output = render(&snippet[..until], &tag, &save, &empty);
            assert!(output.contains("ABORTED('no recommendations')"), "{output}");
        }
    }
}

/// The README's webhook body for `/events`, rendered as Braze would, is accepted, and in local
/// mode the event changes what the user is recommended next.
#[tokio::test]
async fn the_readme_webhook_body_is_accepted_and_changes_the_next_recommendations() {
    let webhook = readme_json_block("\"event_type\"");
    let app = local_app();
    let recommended = |app: axum::Router| async move {
        let path = format!(
            "/recommendations?user_id={}&count=100",
            url_param_escape(USER)
        );
        let (status, answer) = fetch(&app, &path).await;
        assert_eq!(status, 200);
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // The user clicks their first recommendation.
    let before = recommended(app.clone()).await;
    let clicked = before[0].clone();
    let body = fill(&webhook, &clicked);
    let event: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the webhook body is not JSON once rendered ({e}):\n{body}"));
    assert_eq!(event["user_id"], USER, "the user id arrives whole");
    assert!(
        event["event_id"]
            .as_str()
            .is_some_and(|id| id.contains("dispatch-1")),
        "the README shows how to give each event its id: {event}"
    );

    let (status, answer) = post_event(&app, &body).await;
    assert_eq!(status, 202, "{body}: {answer}");

    let after = recommended(app).await;
    assert!(
        !after.contains(&clicked),
        "an item the user clicked is seen now"
    );
    assert_ne!(before, after);
}

/// The A/B section's webhook body for a variant without a Personalize list is accepted, its
/// `attribution_source` as Braze renders it.
#[tokio::test]
async fn the_readme_attribution_webhook_body_is_accepted() {
    let webhook = readme_json_block("\"attribution_source\"");
    let body = fill(&webhook, ITEM);
    let event: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("not JSON once rendered ({e}):\n{body}"));
    assert_eq!(event["attribution_source"], "braze-control");
    assert!(
        event.get("recommendation_id").is_none(),
        "Personalize lets the source win: the README sends one or the other"
    );
    let (status, answer) = post_event(&local_app(), &body).await;
    assert_eq!(status, 202, "{body}: {answer}");
}

/// The first ```json block of the README and its pages that holds `marker`.
fn readme_json_block(marker: &str) -> String {
    documentation()
        .split("```json\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no JSON block with {marker} in the README"))
        .to_owned()
}

/// `POST /events` with `body`: the status and the answer's text.
async fn post_event(app: &axum::Router, body: &str) -> (u16, String) {
    let request = Request::post("/events")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The batch section's snippet reads the attribute braze-sync sets: the endpoint's item objects
/// with braze-sync's default fields, `id`, `url`, `name`, `price`, `image` (the e2e tests check
/// braze-sync sends exactly those), and aborts for a user without it.
#[tokio::test]
async fn the_readme_attribute_snippet_renders_the_synced_list_and_aborts_without_it() {
    let blocks: Vec<String> = liquid_blocks()
        .into_iter()
        .filter(|b| b.contains(ATTRIBUTE))
        .collect();
    assert_eq!(blocks.len(), 1, "the batch section's snippet");
    // Braze substitutes the attribute's value where the tag names it; here, a variable holding it.
    let template = blocks[0].replace(ATTRIBUTE, "synced");
    let app = local_app();
    let (status, answer) = fetch(&app, "/recommendations?user_id=user-00001&count=10").await;
    assert_eq!(status, 200);
    let fields = ["id", "url", "name", "price", "image"];
    let list = Value::Array(
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                fields
                    .iter()
                    .filter_map(|f| Some((f.to_string(), item.get(*f)?.clone())))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect(),
    );
    let output = render(&template, "", "synced", &list);
    let first = list[0]["name"].as_str().unwrap();
    assert!(
        output.contains(&format!("Picked for you: {first}")),
        "{output}"
    );
    assert_eq!(
        output.matches("<a href=\"https://shop.example/p/").count(),
        3,
        "{output}"
    );
    assert!(!output.contains("ABORTED"), "{output}");

    for missing in [Value::Null, serde_json::json!([])] {
        let guard = template.find("abort_message").unwrap();
        let until = guard + template[guard..].find('\n').unwrap();
        let output = render(&template[..until], "", "synced", &missing);
        assert!(output.contains("ABORTED('no recommendations')"), "{output}");
    }
}

/// The ids-only attribute (`braze-sync --ids-only`), looked up in the catalog at send time.
#[tokio::test]
async fn the_readme_ids_attribute_snippet_looks_the_items_up_in_the_catalog() {
    let blocks: Vec<String> = liquid_blocks()
        .into_iter()
        .filter(|b| b.contains(IDS_ATTRIBUTE))
        .collect();
    assert_eq!(blocks.len(), 1, "the catalog section's attribute snippet");
    let template = blocks[0].replace(IDS_ATTRIBUTE, "synced");
    let app = local_app();
    let (status, answer) = fetch(
        &app,
        "/recommendations?user_id=user-00001&count=3&format=ids",
    )
    .await;
    assert_eq!(status, 200);
    let output = render(&template, "", "synced", &answer);
    let first = catalog_item(answer[0].as_str().unwrap()).unwrap();
    assert!(output.contains(first["name"].as_str().unwrap()), "{output}");
    assert_eq!(
        output.matches("<a href=\"https://shop.example/p/").count(),
        3,
        "{output}"
    );
    let guard = template.find("abort_message").unwrap();
    let until = guard + template[guard..].find('\n').unwrap();
    let output = render(&template[..until], "", "synced", &serde_json::json!([]));
    assert!(output.contains("ABORTED('no recommendations')"), "{output}");
}
