//! Go's `text/template` syntax: text and `{{actions}}` (with `{{-`/`-}}`
//! trimming and comments), pipelines, variables, `if`/`else if`/`range`/
//! `with`/`end`.

use super::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If(Branch),
    Range(Branch),
    With(Branch),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub pipe: Pipeline,
    pub body: Vec<Node>,
    pub otherwise: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    /// `$x :=` or `$i, $v :=`.
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.A.B`; empty: `.` itself.
    Field(Vec<String>),
    /// `$x.A.B`; `$` is the name `""`... kept as `$`.
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.A.B`, written together.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// `.A.B` right after `)`.
    Chain(Vec<String>),
    Ident(String),
    Str(String),
    Num(String),
    Char(char),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Dot,
}

fn line_of(src: &str, pos: usize) -> usize {
    src[..pos.min(src.len())].matches('\n').count() + 1
}

fn err(src: &str, pos: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::Parse(format!("template: :{}: {msg}", line_of(src, pos)))
}

/// Split into text and action bodies, applying the trim markers.
fn split(src: &str) -> Result<Vec<(bool, String, usize)>, TemplateError> {
    let mut parts: Vec<(bool, String, usize)> = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while let Some(off) = src[rest..].find("{{") {
        let start = rest + off;
        let mut text = &src[rest..start];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = start + 2;
        let b = src.as_bytes();
        if b.get(inner_start) == Some(&b'-')
            && b.get(inner_start + 1)
                .is_some_and(|c| c.is_ascii_whitespace())
        {
            text = text.trim_end();
            inner_start += 2;
        }
        if !text.is_empty() {
            parts.push((false, text.to_string(), rest));
        }
        let inner = &src[inner_start..];
        // A comment may hold `}}`.
        let close = if inner.trim_start().starts_with("/*") {
            let c = inner
                .find("*/")
                .ok_or_else(|| err(src, start, "unclosed comment"))?;
            inner[c..].find("}}").map(|e| c + e)
        } else {
            find_close(inner)
        }
        .ok_or_else(|| err(src, start, "unclosed action"))?;
        let mut body = &inner[..close];
        trim_next = false;
        if body.ends_with('-')
            && body[..body.len() - 1].ends_with(|c: char| c.is_ascii_whitespace())
        {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        parts.push((true, body.to_string(), start));
        rest = inner_start + close + 2;
    }
    let mut text = &src[rest..];
    if trim_next {
        text = text.trim_start();
    }
    if !text.is_empty() {
        parts.push((false, text.to_string(), rest));
    }
    Ok(parts)
}

/// The `}}` ending an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn lex(src: &str, pos: usize, body: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let cs: Vec<char> = body.chars().collect();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    // `.A.B...` from `i`, adjacent segments only.
    let chain = |i: &mut usize| {
        let mut out = Vec::new();
        while *i < cs.len()
            && cs[*i] == '.'
            && cs
                .get(*i + 1)
                .is_some_and(|&c| ident_char(c) && !c.is_ascii_digit())
        {
            let s = *i + 1;
            *i += 1;
            while *i < cs.len() && ident_char(cs[*i]) {
                *i += 1;
            }
            out.push(cs[s..*i].iter().collect::<String>());
        }
        out
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
                let c = chain(&mut i);
                if !c.is_empty() {
                    toks.push(Tok::Chain(c));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1
            }
            ':' if cs.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = cs.get(i) else {
                        return Err(err(src, pos, "unterminated quoted string"));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = cs.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '`' => {
                let end = cs[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| err(src, pos, "unterminated raw quoted string"))?;
                toks.push(Tok::Str(cs[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '\'' => {
                let ch = *cs
                    .get(i + 1)
                    .ok_or_else(|| err(src, pos, "bad character"))?;
                toks.push(Tok::Char(ch));
                i += 3;
            }
            '.' if cs
                .get(i + 1)
                .is_some_and(|&c| ident_char(c) && !c.is_ascii_digit()) =>
            {
                toks.push(Tok::Field(chain(&mut i)));
            }
            '.' => {
                toks.push(Tok::Dot);
                i += 1
            }
            '$' => {
                let s = i;
                i += 1;
                while i < cs.len() && ident_char(cs[i]) {
                    i += 1;
                }
                let name: String = cs[s..i].iter().collect();
                toks.push(Tok::Var(name, chain(&mut i)));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let s = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(cs[s..i].iter().collect()));
            }
            c if ident_char(c) => {
                let s = i;
                while i < cs.len() && ident_char(cs[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident(cs[s..i].iter().collect()));
            }
            other => {
                return Err(err(src, pos, format!("unexpected {other:?} in command")));
            }
        }
    }
    Ok(toks)
}

struct Toks<'a> {
    toks: Vec<Tok>,
    i: usize,
    src: &'a str,
    pos: usize,
}

impl Toks<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn err(&self, msg: impl std::fmt::Display) -> TemplateError {
        err(self.src, self.pos, msg)
    }

    /// `.A.B` right after `)`.
    fn fields(&mut self) -> Vec<String> {
        match self.peek() {
            Some(Tok::Chain(c)) => {
                let c = c.clone();
                self.i += 1;
                c
            }
            _ => Vec::new(),
        }
    }

    fn pipeline(&mut self, in_parens: bool) -> Result<Pipeline, TemplateError> {
        let mut p = Pipeline::default();
        // Declarations: `$x :=`, `$i, $v :=`, `$x =`.
        let save = self.i;
        let mut vars = Vec::new();
        while let Some(Tok::Var(v, chain)) = self.peek() {
            if !chain.is_empty() {
                break;
            }
            vars.push(v.clone());
            self.i += 1;
            match self.peek() {
                Some(Tok::Comma) => {
                    self.i += 1;
                }
                Some(Tok::Declare) | Some(Tok::Assign) => break,
                _ => {
                    vars.clear();
                    break;
                }
            }
        }
        match self.peek() {
            Some(Tok::Declare) if !vars.is_empty() => {
                self.i += 1;
                p.decl = vars;
            }
            Some(Tok::Assign) if !vars.is_empty() => {
                self.i += 1;
                p.decl = vars;
                p.assign = true;
            }
            _ => self.i = save,
        }
        loop {
            let mut cmd = Command { args: Vec::new() };
            loop {
                match self.peek() {
                    None => break,
                    Some(Tok::Pipe) => break,
                    Some(Tok::RParen) if in_parens => break,
                    _ => {}
                }
                let arg = match self.next().expect("peeked") {
                    Tok::Field(chain) => Arg::Field(chain),
                    Tok::Dot => Arg::Field(Vec::new()),
                    Tok::Var(v, chain) => Arg::Var(v, chain),
                    Tok::Ident(id) => match id.as_str() {
                        "true" => Arg::Bool(true),
                        "false" => Arg::Bool(false),
                        "nil" => Arg::Nil,
                        _ => Arg::Func(id),
                    },
                    Tok::Str(s) => Arg::Str(s),
                    Tok::Char(c) => Arg::Int(c as i64),
                    Tok::Num(n) => parse_number(&n)
                        .ok_or_else(|| self.err(format!("bad number syntax: {n:?}")))?,
                    Tok::LParen => {
                        let inner = self.pipeline(true)?;
                        if self.next() != Some(Tok::RParen) {
                            return Err(self.err("unclosed left paren"));
                        }
                        Arg::Sub(Box::new(inner), self.fields())
                    }
                    other => return Err(self.err(format!("unexpected {other:?} in operand"))),
                };
                cmd.args.push(arg);
            }
            if cmd.args.is_empty() {
                return Err(self.err("missing value for command"));
            }
            p.cmds.push(cmd);
            if self.peek() == Some(&Tok::Pipe) {
                self.i += 1;
                continue;
            }
            break;
        }
        Ok(p)
    }
}

fn parse_number(n: &str) -> Option<Arg> {
    if let Ok(i) = n.parse::<i64>() {
        return Some(Arg::Int(i));
    }
    if let Some(h) = n.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(Arg::Int);
    }
    n.parse::<f64>().ok().map(Arg::Float)
}

enum Item {
    Node(Node),
    Else(Option<(String, Pipeline)>),
    End,
}

pub fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let parts = split(src)?;
    let mut it = parts.into_iter().peekable();
    let (nodes, end) = parse_list(src, &mut it)?;
    match end {
        None => Ok(nodes),
        Some(Item::End) => Err(err(src, src.len(), "unexpected {{end}}")),
        Some(_) => Err(err(src, src.len(), "unexpected {{else}}")),
    }
}

type Parts = std::iter::Peekable<std::vec::IntoIter<(bool, String, usize)>>;

/// Nodes up to an `else` or `end` (returned) or the end of input (None).
fn parse_list(src: &str, it: &mut Parts) -> Result<(Vec<Node>, Option<Item>), TemplateError> {
    let mut nodes = Vec::new();
    while let Some((action, body, pos)) = it.next() {
        if !action {
            nodes.push(Node::Text(body));
            continue;
        }
        match parse_action(src, pos, &body, it)? {
            None => {}
            Some(Item::Node(n)) => nodes.push(n),
            Some(other) => return Ok((nodes, Some(other))),
        }
    }
    Ok((nodes, None))
}

fn parse_action(
    src: &str,
    pos: usize,
    body: &str,
    it: &mut Parts,
) -> Result<Option<Item>, TemplateError> {
    let trimmed = body.trim();
    if trimmed.starts_with("/*") {
        return Ok(None);
    }
    let toks = lex(src, pos, body)?;
    let mut t = Toks {
        toks,
        i: 0,
        src,
        pos,
    };
    let keyword = match t.peek() {
        Some(Tok::Ident(k)) => k.clone(),
        None => return Err(err(src, pos, "missing value for command")),
        _ => String::new(),
    };
    match keyword.as_str() {
        "end" => Ok(Some(Item::End)),
        "else" => {
            t.i += 1;
            match t.next() {
                None => Ok(Some(Item::Else(None))),
                Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                    let p = t.pipeline(false)?;
                    Ok(Some(Item::Else(Some((k, p)))))
                }
                Some(_) => Err(err(src, pos, "unexpected token in else")),
            }
        }
        "if" | "range" | "with" => {
            t.i += 1;
            let pipe = t.pipeline(false)?;
            if t.peek().is_some() {
                return Err(err(src, pos, "unexpected token after pipeline"));
            }
            block(src, pos, &keyword, pipe, it).map(|n| Some(Item::Node(n)))
        }
        "define" | "template" | "block" | "break" | "continue" => {
            Err(err(src, pos, format!("{{{{{keyword}}}}} is not supported")))
        }
        _ => {
            let p = t.pipeline(false)?;
            if t.peek().is_some() {
                return Err(err(src, pos, "unexpected token in command"));
            }
            Ok(Some(Item::Node(Node::Action(p))))
        }
    }
}

fn block(
    src: &str,
    pos: usize,
    keyword: &str,
    pipe: Pipeline,
    it: &mut Parts,
) -> Result<Node, TemplateError> {
    let (body, end) = parse_list(src, it)?;
    let otherwise = match end {
        Some(Item::End) => Vec::new(),
        Some(Item::Else(None)) => {
            let (rest, end) = parse_list(src, it)?;
            if !matches!(end, Some(Item::End)) {
                return Err(err(src, pos, format!("unexpected EOF in {keyword}")));
            }
            rest
        }
        Some(Item::Else(Some((k, p)))) => {
            // `else if` / `else with`: a nested block sharing our `end`.
            vec![block(src, pos, &k, p, it)?]
        }
        _ => return Err(err(src, pos, format!("unexpected EOF in {keyword}"))),
    };
    let b = Branch {
        pipe,
        body,
        otherwise,
    };
    Ok(match keyword {
        "if" => Node::If(b),
        "range" => Node::Range(b),
        _ => Node::With(b),
    })
}
