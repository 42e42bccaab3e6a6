//! An `inventory` job's result as tables, shown by the job page and the stacks page.

use serde_json::Value;

/// One section of an inventory, as a table.
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A value in a cell: strings as they are, tags as `k=v` pairs, anything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(m) if m.values().all(Value::is_string) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// An `inventory` job's result as one table per section (VPCs, instances, databases, key
/// pairs, stacks), columns from the first row's fields.
#[must_use]
pub fn inventory_tables(result: &Value) -> Vec<Table> {
    let Some(sections) = result.as_object() else {
        return Vec::new();
    };
    sections
        .iter()
        .filter_map(|(title, items)| {
            let items = items.as_array()?;
            let columns: Vec<String> = items
                .first()
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            let rows = items
                .iter()
                .map(|i| columns.iter().map(|c| cell(&i[c])).collect())
                .collect();
            Some(Table {
                title: title.replace('_', " "),
                columns,
                rows,
            })
        })
        .collect()
}
