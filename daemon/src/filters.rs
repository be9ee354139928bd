//! The `filters` query parameter: JSON, `{"key": {"value": true}}` or the
//! older `{"key": ["value"]}`.

use std::collections::BTreeMap;

use crate::error::{ApiError, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> Result<Filters> {
        let raw = match raw.map(str::trim) {
            None | Some("") => return Ok(Filters::default()),
            Some(r) => r,
        };
        let bad = |e: serde_json::Error| ApiError::InvalidParameter(format!("invalid filter: {e}"));
        let v: serde_json::Value = serde_json::from_str(raw).map_err(bad)?;
        let serde_json::Value::Object(map) = v else {
            return Err(ApiError::InvalidParameter(
                "invalid filter: not a JSON object".into(),
            ));
        };
        let mut out = BTreeMap::new();
        for (key, values) in map {
            let values: Vec<String> = match values {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k)
                    .collect(),
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(ApiError::InvalidParameter(format!(
                            "invalid filter value for {key:?}: {other}"
                        ))),
                    })
                    .collect::<Result<_>>()?,
                other => {
                    return Err(ApiError::InvalidParameter(format!(
                        "invalid filter value for {key:?}: {other}"
                    )));
                }
            };
            out.insert(key, values);
        }
        Ok(Filters(out))
    }

    /// dockerd's `invalid filter 'key'` for a key it does not know.
    pub fn allow(&self, keys: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(ApiError::InvalidParameter(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// A boolean filter (`dangling=true`): `None` when absent.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        let mut out = None;
        for v in self.get(key) {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::InvalidParameter(format!(
                        "invalid filter '{key}={v}'"
                    )));
                }
            };
            if out.is_some_and(|o| o != b) {
                return Err(ApiError::InvalidParameter(format!(
                    "invalid filter '{key}': conflicting values"
                )));
            }
            out = Some(b);
        }
        Ok(out)
    }

    /// `label=key` or `label=key=value` against a label map: every given
    /// label must match.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.get("label").iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(l.as_str()),
        })
    }
}

/// Go's `path.Match` for `*` and `?` (neither crosses a `/`); other
/// characters match themselves.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => {
                let mut i = 0;
                loop {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i == n.len() || n[i] == '/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some(('?', rest)) => n.first().is_some_and(|&c| c != '/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(&p, &n)
}

/// dockerd's `reference` filter: the pattern matches the familiar name
/// with its tag (`busybox:latest`) or without it (`busybox`).
pub fn reference_matches(pattern: &str, familiar: &str) -> bool {
    if glob(pattern, familiar) {
        return true;
    }
    let last_slash = familiar.rfind('/').map_or(0, |i| i + 1);
    match familiar[last_slash..].rfind([':', '@']) {
        Some(i) => glob(pattern, &familiar[..last_slash + i]),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes() {
        let a = Filters::parse(Some(
            r#"{"reference":{"busybox":true},"dangling":{"false":true}}"#,
        ))
        .unwrap();
        assert_eq!(a.get("reference"), ["busybox"]);
        assert_eq!(a.bool("dangling").unwrap(), Some(false));
        let b = Filters::parse(Some(r#"{"reference":["busybox"]}"#)).unwrap();
        assert_eq!(b.get("reference"), ["busybox"]);
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
        assert_eq!(Filters::parse(Some("")).unwrap(), Filters::default());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Filters::parse(Some("{")).is_err());
        assert!(Filters::parse(Some("[1]")).is_err());
        assert!(Filters::parse(Some(r#"{"a":5}"#)).is_err());
        let f = Filters::parse(Some(r#"{"color":["red"]}"#)).unwrap();
        assert_eq!(
            f.allow(&["reference"]).unwrap_err().to_string(),
            "invalid filter 'color'"
        );
        let d = Filters::parse(Some(r#"{"dangling":["maybe"]}"#)).unwrap();
        assert!(d.bool("dangling").is_err());
        let c = Filters::parse(Some(r#"{"dangling":["true","false"]}"#)).unwrap();
        assert!(c.bool("dangling").is_err());
    }

    #[test]
    fn globs_like_path_match() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/*", "library/busybox"));
        assert!(!glob("busy", "busybox"));
        assert!(glob("", ""));
    }

    #[test]
    fn references_match_with_or_without_tag() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(reference_matches("localhost:5000/a", "localhost:5000/a:v1"));
        assert!(!reference_matches("alpine", "busybox:latest"));
    }

    #[test]
    fn labels() {
        let f = Filters::parse(Some(r#"{"label":["a","b=2"]}"#)).unwrap();
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.labels_match(&l));
        l.insert("b".to_string(), "2".to_string());
        assert!(f.labels_match(&l));
    }
}
