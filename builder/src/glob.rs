//! Shell glob patterns (`*`, `?`, `[...]`, escapes), as `${a#p}` and
//! COPY sources use them.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compile `pattern`; `escape` makes the next character literal. A
    /// lenient glob reads an unterminated `[` as a literal (as shells do);
    /// a strict one rejects it (as Go's `filepath.Match` does).
    pub fn new(pattern: &str, escape: char, lenient: bool) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == escape {
                match chars.get(i + 1) {
                    Some(&n) => {
                        tokens.push(Token::Char(n));
                        i += 2;
                    }
                    None if lenient => {
                        tokens.push(Token::Char(c));
                        i += 1;
                    }
                    None => return Err(format!("bad pattern {pattern:?}: trailing escape")),
                }
                continue;
            }
            match c {
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '[' => match parse_class(&chars, i, escape) {
                    Some((tok, next)) => {
                        tokens.push(tok);
                        i = next;
                        continue;
                    }
                    None if lenient => tokens.push(Token::Char('[')),
                    None => {
                        return Err(format!(
                            "bad pattern {pattern:?}: unterminated character class"
                        ));
                    }
                },
                _ => tokens.push(Token::Char(c)),
            }
            i += 1;
        }
        Ok(Glob { tokens })
    }

    /// Whether the whole of `s` matches. With `slash_special`, no wildcard
    /// matches a `/` (path globs: one path component per `*`).
    pub fn matches(&self, s: &str, slash_special: bool) -> bool {
        let chars: Vec<char> = s.chars().collect();
        self.matches_chars(&chars, slash_special)
    }

    pub(crate) fn matches_chars(&self, s: &[char], slash_special: bool) -> bool {
        match_from(&self.tokens, s, slash_special)
    }

    /// Whether the pattern has any wildcard at all.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Char(_)))
    }
}

/// Parse `[...]` starting at `start` (the `[`); returns the token and the
/// index after `]`, or None when unterminated.
fn parse_class(chars: &[char], start: usize, escape: char) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let mut negated = false;
    if matches!(chars.get(i), Some('!') | Some('^')) {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        if c == escape {
            i += 1;
            c = *chars.get(i)?;
        }
        i += 1;
        let mut hi = c;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            hi = chars[i + 1];
            i += 2;
            if hi == escape {
                hi = *chars.get(i)?;
                i += 1;
            }
        }
        ranges.push((c, hi));
    }
}

fn match_from(tokens: &[Token], s: &[char], slash_special: bool) -> bool {
    let Some((tok, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match tok {
        Token::Star => {
            // Collapse runs of stars: they match the same as one.
            let rest_start = rest
                .iter()
                .position(|t| *t != Token::Star)
                .unwrap_or(rest.len());
            let rest = &rest[rest_start..];
            for i in 0..=s.len() {
                if match_from(rest, &s[i..], slash_special) {
                    return true;
                }
                if i < s.len() && slash_special && s[i] == '/' {
                    return false;
                }
            }
            false
        }
        Token::One => match s.split_first() {
            Some((&c, tail)) if !(slash_special && c == '/') => {
                match_from(rest, tail, slash_special)
            }
            _ => false,
        },
        Token::Char(c) => match s.split_first() {
            Some((h, tail)) if h == c => match_from(rest, tail, slash_special),
            _ => false,
        },
        Token::Class { negated, ranges } => match s.split_first() {
            Some((&c, tail)) => {
                if slash_special && c == '/' {
                    return false;
                }
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && match_from(rest, tail, slash_special)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p, '\\', false).unwrap().matches(s, true)
    }

    #[test]
    fn path_globs_stay_in_one_component() {
        assert!(m("*.txt", "a.txt"));
        assert!(!m("*.txt", "dir/a.txt"));
        assert!(m("*/*.txt", "dir/a.txt"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("[]]", "]"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "a"));
        assert!(Glob::new("[abc", '\\', false).is_err());
        assert!(
            Glob::new("[abc", '\\', true)
                .unwrap()
                .matches("[abc", false)
        );
    }
}
