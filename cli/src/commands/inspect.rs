//! `inspect`, `image inspect` (and, as they come, the other kinds): the
//! daemon's JSON as an indented array, or `-f` run over each object.

use super::print;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::template::{Template, Value};

/// What a name may be, in the order docker tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "container" => Kind::Container,
            "image" => Kind::Image,
            "volume" => Kind::Volume,
            "network" => Kind::Network,
            other => {
                return Err(CliError::Usage(format!(
                    "\"{other}\" is not a valid value for --type"
                )));
            }
        })
    }

    fn path(self, name: &str, size: bool) -> String {
        let n = crate::commands::images::enc_path(name);
        match self {
            Kind::Container => format!("/containers/{n}/json{}", if size { "?size=1" } else { "" }),
            Kind::Image => format!("/images/{n}/json"),
            Kind::Volume => format!("/volumes/{n}"),
            Kind::Network => format!("/networks/{n}"),
        }
    }
}

/// Go's `json.MarshalIndent(v, "", "    ")`, HTML characters escaped
/// as Go escapes them.
pub fn indent_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("values serialize");
    String::from_utf8(buf)
        .expect("JSON is UTF-8")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `volume inspect`: docker decodes volumes into its `volume.Volume`
/// struct before printing (generic `inspect` prints the daemon's JSON),
/// so the keys come in that struct's field order, which is alphabetical.
pub async fn inspect_volumes(c: &Client, names: &[String], format: Option<&str>) -> Result<()> {
    inspect_with(c, names, &[Kind::Volume], format, false, true).await
}

/// Print the objects found under `names`: `kinds` are tried in order; a
/// name found under none is an error, reported after the others print.
pub async fn inspect(
    c: &Client,
    names: &[String],
    kinds: &[Kind],
    format: Option<&str>,
    size: bool,
) -> Result<()> {
    inspect_with(c, names, kinds, format, size, false).await
}

async fn inspect_with(
    c: &Client,
    names: &[String],
    kinds: &[Kind],
    format: Option<&str>,
    size: bool,
    sort_keys: bool,
) -> Result<()> {
    let tmpl = match format {
        Some(f) if f != "json" => Some(Template::parse(f)?),
        _ => None,
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let mut last = None;
        let mut hit = None;
        for k in kinds {
            match c.get_raw(&k.path(name, size)).await {
                Ok(raw) => {
                    hit = Some(raw);
                    break;
                }
                Err(e) if e.is_not_found() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        match hit {
            Some(raw) => {
                let mut v =
                    serde_json::from_slice::<Value>(&raw).map_err(|e| CliError::Decode {
                        what: format!("inspect {name}"),
                        message: e.to_string(),
                    })?;
                if let (true, Value::Map(m)) = (sort_keys, &mut v) {
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                }
                found.push(v)
            }
            None if kinds.len() > 1 => errors.push(format!("Error: No such object: {name}")),
            None => errors.push(last.map_or_else(
                || format!("Error: No such object: {name}"),
                |e| e.to_string(),
            )),
        }
    }
    let mut out = String::new();
    match &tmpl {
        Some(t) => {
            for v in &found {
                out.push_str(&t.execute(v)?);
                out.push('\n');
            }
        }
        None if format == Some("json") => {
            for v in &found {
                out.push_str(&v.to_json());
                out.push('\n');
            }
        }
        None => {
            if found.is_empty() {
                out.push_str("[]\n");
            } else {
                out.push_str(&indent_json(&Value::List(found)));
                out.push('\n');
            }
        }
    }
    print(&out)?;
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        super::eprint(&format!("{e}\n"));
    }
    Err(CliError::Status(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_like_go() {
        let v: Value =
            serde_json::from_str(r#"[{"Id":"x","Tags":["<none>:<none>"],"E":{}}]"#).unwrap();
        assert_eq!(
            indent_json(&v),
            "[\n    {\n        \"Id\": \"x\",\n        \"Tags\": [\n            \"\\u003cnone\\u003e:\\u003cnone\\u003e\"\n        ],\n        \"E\": {}\n    }\n]"
        );
    }
}
