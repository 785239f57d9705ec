//! A generated catalog with awkward attributes, loaded into DynamoDB Local with the real SDK,
//! and the exact JSON the service must answer for each item.

use std::collections::HashMap;
use std::sync::OnceLock;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};

use super::processes::shared_dynamodb;

pub const URL_TEMPLATE: &str = "https://shop.example/item/{id}";
pub const IMAGE_TEMPLATE: &str = "https://img.example/{id}.png";

/// (stored as N, as DynamoDB returns it): DynamoDB keeps the value, not trailing zeros.
const PRICES: [(&str, &str); 6] = [
    ("19.90", "19.9"),
    ("0.5", "0.5"),
    ("1200", "1200"),
    ("39.99", "39.99"),
    ("123456789.123456789", "123456789.123456789"),
    ("0.10", "0.1"),
];

pub struct CatalogItem {
    pub id: String,
    pub attributes: HashMap<String, AttributeValue>,
    /// The JSON object the service must answer for this item, byte for byte.
    pub expected: String,
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub fn item(i: usize) -> CatalogItem {
    let id = format!("item-{i:05}");
    let name = match i % 4 {
        0 => format!("Classic Tee {i}"),
        1 => format!("Shoe, size {} \"wide\"", 36 + i % 12),
        2 => format!("Crème brûlée set №{i} — 日本"),
        _ => format!("Back\\slash, bag {i}"),
    };
    let (price, returned_price) = PRICES[i % PRICES.len()];
    let category = ["shoes", "shirts", "hats", "bags"][i % 4];
    let url = (!i.is_multiple_of(5)).then(|| format!("https://shop.example/p/{id}"));
    let image = (!i.is_multiple_of(7)).then(|| format!("https://cdn.example/{id}.jpg"));

    let mut attributes = HashMap::from([
        ("id".to_owned(), AttributeValue::S(id.clone())),
        ("name".to_owned(), AttributeValue::S(name.clone())),
        ("price".to_owned(), AttributeValue::N(price.to_owned())),
        (
            "category".to_owned(),
            AttributeValue::S(category.to_owned()),
        ),
    ]);
    if let Some(url) = &url {
        attributes.insert("url".into(), AttributeValue::S(url.clone()));
    }
    if let Some(image) = &image {
        attributes.insert("image".into(), AttributeValue::S(image.clone()));
    }
    if i.is_multiple_of(3) {
        attributes.insert("in_stock".into(), AttributeValue::Bool(i.is_multiple_of(2)));
    }
    if i.is_multiple_of(10) {
        attributes.insert(
            "tags".into(),
            AttributeValue::L(vec![
                AttributeValue::S("sale".into()),
                AttributeValue::N("2".into()),
            ]),
        );
    }

    // id, url, name, price, image, then the rest by name.
    let url = url.unwrap_or_else(|| URL_TEMPLATE.replace("{id}", &id));
    let image = image.unwrap_or_else(|| IMAGE_TEMPLATE.replace("{id}", &id));
    let mut expected = format!(
        r#"{{"id":{},"url":{},"name":{},"price":{returned_price},"image":{},"category":{}"#,
        quoted(&id),
        quoted(&url),
        quoted(&name),
        quoted(&image),
        quoted(category)
    );
    if i.is_multiple_of(3) {
        expected.push_str(&format!(r#","in_stock":{}"#, i.is_multiple_of(2)));
    }
    if i.is_multiple_of(10) {
        expected.push_str(r#","tags":["sale",2]"#);
    }
    expected.push('}');
    CatalogItem {
        id,
        attributes,
        expected,
    }
}

pub const CATALOG_SIZE: usize = 3000;

pub fn all_ids() -> Vec<String> {
    (0..CATALOG_SIZE).map(|i| item(i).id).collect()
}

/// The expected list-form body for these ids, in order.
pub fn expected_list(ids: &[String]) -> String {
    let by_id: HashMap<String, String> = (0..CATALOG_SIZE)
        .map(item)
        .map(|c| (c.id, c.expected))
        .collect();
    let parts: Vec<&str> = ids.iter().map(|id| by_id[id].as_str()).collect();
    format!("[{}]", parts.join(","))
}

pub async fn client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

pub async fn create_table(client: &Client, table: &str) {
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {table}: {e:?}"));
}

/// BatchWriteItem, 25 items a call, retrying anything unprocessed.
pub async fn put_items(client: &Client, table: &str, items: Vec<HashMap<String, AttributeValue>>) {
    let requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let output = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .unwrap_or_else(|e| panic!("load {table}: {e:?}"));
            pending = output
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
        }
    }
}

/// The generated catalog in the shared DynamoDB Local, loaded once per test process.
/// Loaded on a thread of its own: an SDK client must not outlive the runtime it was used on.
pub fn shared_catalog_table() -> (&'static str, &'static str) {
    static TABLE: OnceLock<()> = OnceLock::new();
    let endpoint = shared_dynamodb();
    TABLE.get_or_init(|| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = client(endpoint).await;
                create_table(&client, "catalog").await;
                put_items(
                    &client,
                    "catalog",
                    (0..CATALOG_SIZE).map(|i| item(i).attributes).collect(),
                )
                .await;
            });
        })
        .join()
        .expect("loading the catalog into DynamoDB Local");
    });
    (endpoint, "catalog")
}
