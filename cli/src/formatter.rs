//! docker's `--format` for lists: `table` (a header row, then columns
//! aligned by Go's tabwriter), `json` (`{{json .}}`), or any Go
//! template, run once per row.

use crate::error::Result;
use crate::tabwriter::docker_table;
use crate::template::{Template, Value};

/// `--format` as given and what the command uses without one.
#[derive(Debug, Clone)]
pub struct Format {
    pub text: String,
}

impl Format {
    /// Pick the template: `""`/`table` → `default_table`, `json` →
    /// `{{json .}}`, quiet (only when no custom format) → `quiet`.
    pub fn resolve(
        given: Option<&str>,
        quiet: bool,
        default_table: &str,
        quiet_format: &str,
    ) -> Format {
        let text = match given.map(str::trim) {
            None | Some("") | Some("table") if quiet => quiet_format.to_string(),
            None | Some("") | Some("table") => default_table.to_string(),
            Some("json") => "{{json .}}".to_string(),
            Some(f) => f.to_string(),
        };
        Format { text }
    }

    pub fn is_table(&self) -> bool {
        self.text.starts_with("table")
    }

    /// The template text as docker runs it: without `table`, trimmed,
    /// `\t` and `\n` written as escapes turned into the characters.
    fn body(&self) -> String {
        let t = self.text.strip_prefix("table").unwrap_or(&self.text);
        t.trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n")
    }

    /// Run over `rows`; `header` maps field names to column titles.
    pub fn render(&self, header: &[(&str, &str)], rows: &[Value]) -> Result<String> {
        let tmpl = Template::parse(&self.body())?;
        let mut out = String::new();
        for r in rows {
            out.push_str(&tmpl.execute(r)?);
            out.push('\n');
        }
        if !self.is_table() {
            return Ok(out);
        }
        let titles = Value::Map(
            header
                .iter()
                .map(|(k, v)| (k.to_string(), Value::str(*v)))
                .collect(),
        );
        let mut text = tmpl.for_header().execute(&titles)?;
        text.push('\n');
        text.push_str(&out);
        Ok(docker_table(&text))
    }
}

/// A row: docker's formatting context, its fields sorted (as its JSON is).
pub fn row(mut fields: Vec<(&str, Value)>) -> Value {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    Value::Struct(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// docker's `stringid.TruncateID`: without `sha256:`, 12 characters.
pub fn short_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, h)| h);
    id.chars().take(12).collect()
}

/// docker's `Ellipsis`: at most `n` characters, the last one `…`.
pub fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Value> {
        vec![
            row(vec![
                ("Repository", Value::str("busybox")),
                ("Tag", Value::str("latest")),
                ("ID", Value::str("0123456789ab")),
            ]),
            row(vec![
                ("Repository", Value::str("example.com/a/very-long-name")),
                ("Tag", Value::str("1")),
                ("ID", Value::str("ba9876543210")),
            ]),
        ]
    }

    const HEADER: &[(&str, &str)] = &[
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
    ];

    #[test]
    fn table_prefix_gives_a_header_and_aligned_columns() {
        let f = Format::resolve(Some(r"table {{.Repository}}\t{{.Tag}}"), false, "", "");
        assert_eq!(
            f.render(HEADER, &rows()).unwrap(),
            "REPOSITORY                     TAG\n\
             busybox                        latest\n\
             example.com/a/very-long-name   1\n"
        );
    }

    #[test]
    fn raw_templates_json_and_quiet() {
        let f = Format::resolve(Some("{{.ID}}: {{.Repository}}"), false, "", "");
        assert_eq!(
            f.render(HEADER, &rows()).unwrap(),
            "0123456789ab: busybox\nba9876543210: example.com/a/very-long-name\n"
        );
        let f = Format::resolve(Some("json"), false, "", "");
        let out = f.render(HEADER, &rows()[..1]).unwrap();
        assert_eq!(
            out,
            "{\"ID\":\"0123456789ab\",\"Repository\":\"busybox\",\"Tag\":\"latest\"}\n"
        );
        let f = Format::resolve(None, true, "table {{.Repository}}", "{{.ID}}");
        assert_eq!(f.render(HEADER, &rows()[..1]).unwrap(), "0123456789ab\n");
        // A custom format wins over -q.
        let f = Format::resolve(Some("{{.Tag}}"), true, "", "{{.ID}}");
        assert_eq!(f.render(HEADER, &rows()[..1]).unwrap(), "latest\n");
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
}
