//! `Catalog` over the items CSV, held in memory: local mode's stand-in for the DynamoDB table.
//! Column names become attribute names: `ITEM_ID` is `id`, every other column is lower-cased.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::dataset::ItemRecord;
use personalize_braze_core::item::{Item, UrlTemplates};
use personalize_braze_core::upstream::UpstreamError;

pub struct FileCatalog {
    items: HashMap<String, Arc<Item>>,
}

impl FileCatalog {
    pub fn new(records: &[ItemRecord], templates: &UrlTemplates) -> Self {
        let items = records
            .iter()
            .map(|record| {
                let columns = record.fields.iter().map(|(c, v)| (c.as_str(), v.as_str()));
                let item = Item::from_columns(&record.id, columns, templates);
                (record.id.clone(), Arc::new(item))
            })
            .collect();
        FileCatalog { items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Catalog for FileCatalog {
    async fn items(
        &self,
        ids: &[String],
        _deadline: Instant,
    ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.items.get(id).map(|item| (id.clone(), item.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn columns_map_to_attributes_and_numbers_keep_their_text() {
        let records = vec![ItemRecord {
            id: "a1".into(),
            fields: vec![
                ("NAME".into(), "Shoe, \"wide\"".into()),
                ("PRICE".into(), "19.90".into()),
                ("SKU".into(), "007".into()),
                ("Category_L1".into(), "shoes|sale".into()),
            ],
        }];
        let templates = UrlTemplates {
            url: Some("https://shop.example/p/{id}".into()),
            image: None,
        };
        let catalog = FileCatalog::new(&records, &templates);
        let found = catalog
            .items(&["a1".into(), "missing".into()], Instant::now())
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            serde_json::to_string(&found["a1"]).unwrap(),
            r#"{"id":"a1","url":"https://shop.example/p/a1","name":"Shoe, \"wide\"","price":19.90,"category_l1":"shoes|sale","sku":"007"}"#
        );
    }
}
