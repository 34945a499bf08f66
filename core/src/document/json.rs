//! Writing serde JSON values into automerge maps. Reading goes through [`automerge::AutoSerde`],
//! so the typed model's serde derive is the one description of the stored shape.

use crate::Result;
use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ScalarValue};
use serde_json::Value;

/// Puts `value` at `key` of the map `obj`. Objects become maps, arrays lists; `null` deletes.
pub(crate) fn put_json<T: Transactable>(tx: &mut T, obj: &ObjId, key: &str, value: &Value) -> Result<()> {
    match value {
        Value::Null => {
            if tx.get(obj, key)?.is_some() {
                tx.delete(obj, key)?;
            }
        }
        Value::Object(fields) => {
            let map = tx.put_object(obj, key, ObjType::Map)?;
            for (k, v) in fields {
                if !v.is_null() {
                    put_json(tx, &map, k, v)?;
                }
            }
        }
        Value::Array(items) => {
            let list = tx.put_object(obj, key, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_json(tx, &list, i, item)?;
            }
        }
        scalar => tx.put(obj, key, scalar_of(scalar))?,
    }
    Ok(())
}

fn insert_json<T: Transactable>(tx: &mut T, list: &ObjId, index: usize, value: &Value) -> Result<()> {
    match value {
        Value::Object(fields) => {
            let map = tx.insert_object(list, index, ObjType::Map)?;
            for (k, v) in fields {
                if !v.is_null() {
                    put_json(tx, &map, k, v)?;
                }
            }
        }
        Value::Array(items) => {
            let inner = tx.insert_object(list, index, ObjType::List)?;
            for (i, item) in items.iter().enumerate() {
                insert_json(tx, &inner, i, item)?;
            }
        }
        scalar => tx.insert(list, index, scalar_of(scalar))?,
    }
    Ok(())
}

fn scalar_of(value: &Value) -> ScalarValue {
    match value {
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int(i),
            (None, Some(f)) => ScalarValue::F64(f),
            (None, None) => ScalarValue::Null,
        },
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        Value::Null | Value::Object(_) | Value::Array(_) => ScalarValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{AutoSerde, Automerge, ROOT};
    use serde_json::json;

    #[test]
    fn json_round_trips_through_automerge() {
        let value = json!({
            "name": "王芳", "age": 67, "glucose": 7.5, "flag": true, "missing": null,
            "tags": ["a", {"b": 1}], "nested": {"x": -3}
        });
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        put_json(&mut tx, &ROOT, "v", &value).unwrap();
        tx.commit();
        let back = serde_json::to_value(AutoSerde::from(&doc)).unwrap();
        let mut expected = value.clone();
        expected.as_object_mut().unwrap().remove("missing");
        assert_eq!(back["v"], expected);
    }
}
