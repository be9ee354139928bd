//! Variable expansion in Dockerfile words, with the rules of BuildKit's
//! shell lexer: `$a ${a}` and the modifiers `:- - :+ + :? ? # ## % %% /
//! //`, single quotes protecting, double quotes expanding, the escape
//! character making the next character literal, nested words.

use std::collections::{BTreeMap, HashMap};

use crate::glob::Glob;

/// Where expansion looks names up.
pub trait Env {
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// An ordered list of `(name, value)`; the last entry for a name wins.
impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// No variables at all.
pub struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

/// Expand `word` as one word: quotes are removed, whitespace is kept.
pub fn expand_word(word: &str, env: &dyn Env, escape: char) -> Result<String, String> {
    let mut lx = Lexer::new(word, env, escape);
    let (s, _) = lx.process_stop_on(None, false)?;
    Ok(s)
}

/// Expand `word` and split the result into words on unquoted whitespace,
/// including whitespace that came from a variable's value.
pub fn expand_words(word: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, String> {
    let mut lx = Lexer::new(word, env, escape);
    let (_, words) = lx.process_stop_on(None, false)?;
    Ok(words)
}

/// The names a word refers to, whether set or not, sorted (to know which
/// build args an instruction uses).
pub fn referenced_names(word: &str, escape: char) -> Vec<String> {
    struct Recorder(std::cell::RefCell<Vec<String>>);
    impl Env for Recorder {
        fn lookup(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_string());
            None
        }
    }
    let rec = Recorder(Default::default());
    let _ = expand_word(word, &rec, escape);
    let mut names = rec.0.into_inner();
    names.sort();
    names.dedup();
    names
}

/// Words being built, split on unquoted blanks.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn blank(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            self.blank();
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        self.blank();
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    escape: char,
}

impl<'a> Lexer<'a> {
    fn new(word: &str, env: &'a dyn Env, escape: char) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Read up to `stop` (consumed) or the end. `raw_escapes` keeps escape
    /// characters in the result, for patterns that give them meaning.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote(raw_escapes)?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                _ => {
                    self.next();
                    if c == self.escape {
                        if raw_escapes {
                            result.push(c);
                            words.add_raw_char(c);
                        }
                        // An escape at the very end escapes nothing: dropped.
                        let Some(n) = self.next() else { break };
                        words.add_raw_char(n);
                        result.push(n);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quote(&mut self, raw_escapes: bool) -> Result<String, String> {
        self.next();
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(
                    "unexpected end of statement while looking for matching double-quote".into(),
                );
            };
            if c == '"' {
                self.next();
                return Ok(s);
            }
            if c == '$' {
                s.push_str(&self.dollar()?);
                continue;
            }
            self.next();
            if c == self.escape {
                match self.peek() {
                    None => continue,
                    // Inside double quotes only these can be escaped; any
                    // other escape character stays as written.
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        if raw_escapes {
                            s.push(c);
                        }
                        self.next();
                        s.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            s.push(c);
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && "@*#?-$!0".contains(c) {
                self.next();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.env.lookup(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut ops = op.to_string();
        let mut colon = false;
        match op {
            '}' => Ok(self.env.lookup(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if op == ':' {
                    colon = true;
                    op = self.next().ok_or("syntax error: missing '}'")?;
                    ops.push(op);
                    if !matches!(op, '+' | '-' | '?') {
                        return Err(format!("unsupported modifier ({ops}) in substitution"));
                    }
                }
                let pattern_op = op == '#' || op == '%';
                let (word, _) = self.process_stop_on(Some('}'), pattern_op).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_string()
                    } else {
                        e
                    }
                })?;
                let value = self.env.lookup(&name);
                let unset = value.is_none() || (colon && value.as_deref() == Some(""));
                match op {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if value.is_none() {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        if unset {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        Ok(value.unwrap_or_default())
                    }
                    _ => {
                        let value = value.unwrap_or_default();
                        let (longest, pattern) = match word.strip_prefix(op) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word),
                        };
                        let glob = Glob::new(&pattern, self.escape, true)?;
                        Ok(if op == '#' {
                            trim_prefix(&glob, &value, longest)
                        } else {
                            trim_suffix(&glob, &value, longest)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_string()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self.process_stop_on(Some('}'), false).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_string()
                    } else {
                        e
                    }
                })?;
                let value = self.env.lookup(&name).unwrap_or_default();
                let glob = Glob::new(&pattern, self.escape, true)?;
                Ok(replace(
                    &glob,
                    pattern.is_empty(),
                    &value,
                    &replacement,
                    all,
                ))
            }
            _ => Err(format!("unsupported modifier ({ops}) in substitution")),
        }
    }
}

fn trim_prefix(glob: &Glob, value: &str, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut ends: Vec<usize> = (0..=chars.len()).collect();
    if longest {
        ends.reverse();
    }
    for end in ends {
        if glob.matches_chars(&chars[..end], false) {
            return chars[end..].iter().collect();
        }
    }
    value.to_string()
}

fn trim_suffix(glob: &Glob, value: &str, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut starts: Vec<usize> = (0..=chars.len()).collect();
    if !longest {
        starts.reverse();
    }
    for start in starts {
        if glob.matches_chars(&chars[start..], false) {
            return chars[..start].iter().collect();
        }
    }
    value.to_string()
}

/// Replace the leftmost longest match (every match with `all`), as bash's
/// `${a/p/r}` and `${a//p/r}` do. An empty pattern replaces nothing.
fn replace(glob: &Glob, empty: bool, value: &str, replacement: &str, all: bool) -> String {
    if empty {
        return value.to_string();
    }
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < chars.len() {
        let found = if replaced && !all {
            None
        } else {
            (i + 1..=chars.len())
                .rev()
                .find(|&end| glob.matches_chars(&chars[i..end], false))
        };
        match found {
            Some(end) => {
                out.push_str(replacement);
                i = end;
                replaced = true;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("a", "hello"),
            ("path", "/usr/local/lib/file.tar.gz"),
            ("empty", ""),
            ("spaced", "one two  three"),
            ("b", "bee"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn x(w: &str) -> String {
        expand_word(w, &env(), '\\').unwrap()
    }

    fn err(w: &str) -> String {
        expand_word(w, &env(), '\\').unwrap_err()
    }

    #[test]
    fn plain_references() {
        assert_eq!(x("$a"), "hello");
        assert_eq!(x("${a}"), "hello");
        assert_eq!(x("pre${a}post"), "prehellopost");
        assert_eq!(x("$a.txt"), "hello.txt");
        assert_eq!(x("$nope-x"), "-x");
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$ b"), "a$ b");
        assert_eq!(x("$1x"), "x");
    }

    #[test]
    fn default_and_alternative_modifiers() {
        assert_eq!(x("${nope:-dflt}"), "dflt");
        assert_eq!(x("${empty:-dflt}"), "dflt");
        assert_eq!(x("${empty-dflt}"), "");
        assert_eq!(x("${nope-dflt}"), "dflt");
        assert_eq!(x("${a:-dflt}"), "hello");
        assert_eq!(x("${a:+alt}"), "alt");
        assert_eq!(x("${empty:+alt}"), "");
        assert_eq!(x("${empty+alt}"), "alt");
        assert_eq!(x("${nope+alt}"), "");
        assert_eq!(x("${a:?boom}"), "hello");
        assert_eq!(x("${empty?boom}"), "");
    }

    #[test]
    fn required_modifiers_fail_with_the_message() {
        assert_eq!(err("${nope:?must be set}"), "nope: must be set");
        assert_eq!(err("${empty:?}"), "empty: is not allowed to be empty");
        assert_eq!(err("${nope?}"), "nope: is not allowed to be unset");
        assert_eq!(err("${nope?gone}"), "nope: gone");
    }

    #[test]
    fn pattern_removal() {
        assert_eq!(x("${path#*/}"), "usr/local/lib/file.tar.gz");
        assert_eq!(x("${path##*/}"), "file.tar.gz");
        assert_eq!(x("${path%.*}"), "/usr/local/lib/file.tar");
        assert_eq!(x("${path%%.*}"), "/usr/local/lib/file");
        assert_eq!(x("${a#h?l}"), "lo");
        assert_eq!(x("${a%[lo]}"), "hell");
        assert_eq!(x("${a%%[lo]*}"), "he");
        assert_eq!(x("${a#x}"), "hello");
        assert_eq!(x(r"${a#\*}"), "hello");
    }

    #[test]
    fn replacement() {
        assert_eq!(x("${a/l/L}"), "heLlo");
        assert_eq!(x("${a//l/L}"), "heLLo");
        assert_eq!(x("${a/l*/X}"), "heX");
        assert_eq!(x("${path//\\//:}"), ":usr:local:lib:file.tar.gz");
        assert_eq!(x("${a/zz/X}"), "hello");
        assert_eq!(x("${a//[eo]/0}"), "h0ll0");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$a'"), "$a");
        assert_eq!(x("\"$a\""), "hello");
        assert_eq!(x("\\$a"), "$a");
        assert_eq!(x("\"\\$a\""), "$a");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("\"say \\\"hi\\\"\""), "say \"hi\"");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(x("x\\"), "x");
        assert_eq!(expand_word("`$a", &env(), '`').unwrap(), "$a");
        assert_eq!(expand_word("c:\\dir", &env(), '`').unwrap(), "c:\\dir");
        assert!(err("'open").contains("single-quote"));
        assert!(err("\"open").contains("double-quote"));
        assert_eq!(err("${a"), "syntax error: missing '}'");
        assert_eq!(err("${}"), "syntax error: bad substitution");
        assert_eq!(err("${a:#x}"), "unsupported modifier (:#) in substitution");
        assert_eq!(err("${a!x}"), "unsupported modifier (!) in substitution");
    }

    #[test]
    fn nested_words() {
        assert_eq!(x("${nope:-${a}}"), "hello");
        assert_eq!(x("${nope:-${nope2:-${b}x}}"), "beex");
        assert_eq!(x("${a:+\"${b} }\"}"), "bee }");
        assert_eq!(x("${nope:-'$a'}"), "$a");
    }

    #[test]
    fn words_split_on_unquoted_blanks_and_values() {
        let w = expand_words("$spaced \"x  y\" 'q r' z\\ z", &env(), '\\').unwrap();
        assert_eq!(w, vec!["one", "two", "three", "x  y", "q r", "z z"]);
        assert_eq!(
            expand_word("$spaced", &env(), '\\').unwrap(),
            "one two  three"
        );
    }

    #[test]
    fn names_referenced() {
        assert_eq!(
            referenced_names("$a ${b:-$c} '$d'", '\\'),
            vec!["a", "b", "c"]
        );
    }
}

/// Expand a heredoc body the way a shell expands an unquoted heredoc:
/// variables are replaced, quotes are ordinary characters, a backslash
/// escapes only `$`, `` ` ``, `\` and a newline.
pub fn expand_heredoc(text: &str, env: &dyn Env) -> Result<String, String> {
    let mut lx = Lexer::new(text, env, '\\');
    let mut out = String::new();
    while let Some(c) = lx.peek() {
        match c {
            '$' => out.push_str(&lx.dollar()?),
            '\\' => {
                lx.next();
                match lx.peek() {
                    Some(n @ ('$' | '`' | '\\')) => {
                        lx.next();
                        out.push(n);
                    }
                    Some('\n') => {
                        lx.next();
                    }
                    _ => out.push('\\'),
                }
            }
            _ => {
                lx.next();
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod heredoc_tests {
    use super::*;

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let env = vec![("NAME".to_string(), "berth".to_string())];
        assert_eq!(
            expand_heredoc("hello '$NAME' \"${NAME}\" \\$HOME \\n\n", &env).unwrap(),
            "hello 'berth' \"berth\" $HOME \\n\n"
        );
    }
}
