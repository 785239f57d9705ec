//! load-items: the item catalog into the DynamoDB items table the endpoint reads.
//!
//! The file is validated whole before anything is written ([`file`]), against everything
//! DynamoDB itself would refuse: every problem is reported with its line and, if there is any,
//! nothing is written. Then [`table`] writes it, and with `--prune` deletes the items the file no
//! longer has, but refuses (before writing anything) to empty the table or delete more than a
//! tenth of it unless forced, since a truncated export looks just like a shrunken catalog.
//! [`catalog`] does the same into a Braze Catalog, sending only what differs.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub mod catalog;
pub mod file;
pub mod table;

/// One item as DynamoDB stores it.
pub type Row = HashMap<String, AttributeValue>;
