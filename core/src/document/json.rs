//! Writing serde JSON values into automerge maps, and reading a hydrated document back as JSON,
//! so the typed model's serde derive is the one description of the stored shape.

use crate::Result;
use automerge::transaction::Transactable;
use automerge::{ObjId, ScalarValue, hydrate};
use serde_json::Value;

/// Puts `value` at `key` of the map `obj`. Objects become maps, arrays lists; `null` deletes.
///
/// A whole object tree goes in as one batch (`batch_create_object`): two op-set splices instead
/// of one per field, several times faster for a visit than field-by-field puts.
pub(crate) fn put_json<T: Transactable>(tx: &mut T, obj: &ObjId, key: &str, value: &Value) -> Result<()> {
    match value {
        Value::Null => {
            if tx.get(obj, key)?.is_some() {
                tx.delete(obj, key)?;
            }
        }
        Value::Object(_) | Value::Array(_) => {
            tx.batch_create_object(obj, key, &to_hydrated(value), false)?;
        }
        scalar => tx.put(obj, key, scalar_of(scalar))?,
    }
    Ok(())
}

/// JSON as a hydrated automerge value; `null` fields of objects are left out.
fn to_hydrated(value: &Value) -> hydrate::Value {
    match value {
        Value::Object(fields) => hydrate::Value::Map(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), to_hydrated(v)))
                .collect::<std::collections::HashMap<String, hydrate::Value>>()
                .into(),
        ),
        Value::Array(items) => hydrate::Value::List(items.iter().map(to_hydrated).collect::<Vec<_>>().into()),
        scalar => hydrate::Value::Scalar(scalar_of(scalar)),
    }
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

/// A hydrated automerge value as JSON: maps become objects, lists arrays, text strings. Counters
/// and timestamps become numbers; bytes and values from future automerge versions become null.
pub(crate) fn from_hydrated(value: &hydrate::Value) -> Value {
    match value {
        hydrate::Value::Map(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), from_hydrated(&v.value))).collect())
        }
        hydrate::Value::List(list) => Value::Array(list.iter().map(|item| from_hydrated(&item.value)).collect()),
        hydrate::Value::Text(text) => Value::String(text.to_string()),
        hydrate::Value::Scalar(scalar) => scalar_json(scalar),
    }
}

/// The JSON of one scalar, as [`from_hydrated`] gives it.
pub(crate) fn scalar_json(scalar: &ScalarValue) -> Value {
    match scalar {
        ScalarValue::Str(s) => Value::String(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Value::from(*i),
        ScalarValue::Uint(u) => Value::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        ScalarValue::Counter(c) => Value::from(i64::from(c)),
        ScalarValue::Boolean(b) => Value::Bool(*b),
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Value::Null,
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
        let back = from_hydrated(&doc.hydrate(None));
        let mut expected = value.clone();
        expected.as_object_mut().unwrap().remove("missing");
        assert_eq!(back["v"], expected);
        // The same as automerge's own serde view.
        assert_eq!(back, serde_json::to_value(AutoSerde::from(&doc)).unwrap());
    }
}
