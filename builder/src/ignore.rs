//! `.dockerignore` with moby/patternmatcher's rules: cleaned patterns,
//! `*` `?` `[...]` within a path component, `**` across any number of
//! them, `!` exceptions, the last matching pattern winning, a path
//! excluded when a parent directory is.

use std::path::{Path, PathBuf};

use regex::Regex;

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("{file}:{line}: {reason}")]
    Pattern {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
enum Match {
    Exact,
    /// `dir/**`: everything under the prefix.
    Prefix,
    /// `**/name`.
    Suffix,
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned, without the `!`.
    text: String,
    exclusion: bool,
    kind: Match,
}

impl Pattern {
    fn new(raw: &str) -> Result<Pattern, String> {
        let mut p = clean(raw.trim());
        let exclusion = p.starts_with('!');
        if exclusion {
            p = clean(p[1..].trim());
            if p == "." && raw.trim() == "!" {
                return Err("illegal exclusion pattern: \"!\"".into());
            }
        }
        let kind = compile(&p)?;
        Ok(Pattern {
            text: p,
            exclusion,
            kind,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Match::Exact => path == self.text,
            Match::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Match::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/') == Some(path)
            }
            Match::Regex(re) => re.is_match(path),
        }
    }

    /// The pattern's leading part without wildcards.
    fn literal_prefix(&self) -> &str {
        let end = self
            .text
            .find(['*', '?', '[', '\\'])
            .unwrap_or(self.text.len());
        &self.text[..end]
    }
}

fn compile(p: &str) -> Result<Match, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut kind = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 regex
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    re.push_str(&regex::escape(&chars[i].to_string()));
                }
                '[' | '&' | '~' | '-' if c != '-' => {
                    re.push('\\');
                    re.push(c);
                }
                _ => re.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let at_start = i == 0;
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == 0 {
                        kind = 1;
                    } else {
                        re.push_str(".*");
                        kind = 3;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = 3;
                }
                if at_start {
                    kind = 2;
                }
                continue;
            }
            '*' => {
                re.push_str("[^/]*");
                kind = 3;
            }
            '?' => {
                re.push_str("[^/]");
                kind = 3;
            }
            '[' => {
                in_class = true;
                re.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
                kind = 3;
            }
            '\\' => {
                if let Some(n) = chars.get(i + 1) {
                    re.push_str(&regex::escape(&n.to_string()));
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    if in_class {
        return Err(format!(
            "syntax error in pattern {p:?}: unterminated character class"
        ));
    }
    Ok(match kind {
        0 => Match::Exact,
        1 => Match::Prefix,
        2 => Match::Suffix,
        _ => {
            re.push('$');
            Match::Regex(Regex::new(&re).map_err(|e| format!("bad pattern {p:?}: {e}"))?)
        }
    })
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// A compiled set of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

impl IgnoreMatcher {
    /// Read a `.dockerignore` file's text: `#` comments, blank lines
    /// skipped, leading `/` dropped.
    pub fn parse(file: &str, text: &str) -> Result<IgnoreMatcher, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut cleaned = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let line = if invert {
                format!("!{cleaned}")
            } else {
                cleaned
            };
            patterns.push(Pattern::new(&line).map_err(|reason| IgnoreError::Pattern {
                file: file.to_string(),
                line: n + 1,
                reason,
            })?);
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// From patterns given one by one (COPY `--exclude`).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<IgnoreMatcher, String> {
        let patterns = patterns
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
            .map(Pattern::new)
            .collect::<Result<_, _>>()?;
        Ok(IgnoreMatcher { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is excluded: the last
    /// pattern that matches it or one of its parent directories decides.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(p) => path[..p].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for pat in &self.patterns {
            // An inclusion cannot change an already excluded path, nor an
            // exception one that is not excluded.
            if pat.exclusion != matched {
                continue;
            }
            let mut hit = pat.matches(&path);
            if !hit {
                for i in 0..parents.len() {
                    if pat.matches(&parents[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// Whether an exception could re-include something below the
    /// excluded directory `dir`, so the walk must still enter it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{}/", clean(dir));
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let prefix = p.literal_prefix();
            // `**` or a wildcard early in the pattern can reach anywhere.
            prefix.starts_with(&dir_slash)
                || dir_slash.starts_with(prefix)
                || p.text.starts_with("**")
        })
    }
}

/// The ignore file for a build: `<Dockerfile>.dockerignore` next to the
/// Dockerfile if it exists, else the context's `.dockerignore`, else none.
pub fn read_dockerignore(context: &Path, dockerfile: &Path) -> Result<IgnoreMatcher, IgnoreError> {
    let mut specific = dockerfile.as_os_str().to_owned();
    specific.push(".dockerignore");
    for candidate in [PathBuf::from(specific), context.join(".dockerignore")] {
        match std::fs::read_to_string(&candidate) {
            Ok(text) => {
                let name = candidate
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return IgnoreMatcher::parse(&name, &text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(IgnoreError::Read {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(IgnoreMatcher::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("dir/"), "dir");
    }
}
