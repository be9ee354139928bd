//! Go templates as docker's `--format` and `inspect -f` use them: a
//! hand-written evaluator of `text/template` (fields, variables,
//! pipelines, `if`/`range`/`with`, Go's builtins) with docker's extra
//! functions (`json`, `join`, `split`, `title`, `lower`, `upper`, `pad`,
//! `truncate`). It runs over [`Value`]s, so any JSON the daemon answers
//! can be formatted, printing maps and slices as Go does.

mod parse;
mod value;

pub use parse::Node;
pub use value::Value;

use parse::{Arg, Branch, Command, Pipeline};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Parse(String),
    #[error("template: :1: executing \"\" at <{at}>: {msg}")]
    Exec { at: String, msg: String },
}

fn exec_err(at: impl Into<String>, msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec {
        at: at.into(),
        msg: msg.into(),
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// docker's `HeaderFunctions`: every function returns its first
    /// argument, so a table's header runs the row template over the
    /// column titles.
    header: bool,
}

const FUNCS: &[&str] = &[
    "json", "join", "split", "title", "lower", "upper", "pad", "truncate", "println", "print",
    "printf", "len", "index", "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "slice",
    "html", "urlquery", "js",
];

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let nodes = parse::parse(src)?;
        check_funcs(&nodes)?;
        Ok(Template {
            nodes,
            header: false,
        })
    }

    /// The same template with docker's header functions.
    pub fn for_header(&self) -> Template {
        Template {
            nodes: self.nodes.clone(),
            header: true,
        }
    }

    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut ex = Exec {
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
            header: self.header,
        };
        ex.list(&self.nodes, data)?;
        Ok(ex.out)
    }
}

fn check_funcs(nodes: &[Node]) -> Result<(), TemplateError> {
    fn pipe(p: &Pipeline) -> Result<(), TemplateError> {
        for c in &p.cmds {
            for a in &c.args {
                match a {
                    Arg::Func(f) if !FUNCS.contains(&f.as_str()) => {
                        return Err(TemplateError::Parse(format!(
                            "template: :1: function {f:?} not defined"
                        )));
                    }
                    Arg::Sub(p, _) => pipe(p)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Action(p) => pipe(p)?,
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe(&b.pipe)?;
                check_funcs(&b.body)?;
                check_funcs(&b.otherwise)?;
            }
        }
    }
    Ok(())
}

struct Exec {
    vars: Vec<(String, Value)>,
    out: String,
    header: bool,
}

fn describe(args: &[Arg]) -> String {
    match args.first() {
        Some(Arg::Field(f)) => format!(".{}", f.join(".")),
        Some(Arg::Var(v, f)) if f.is_empty() => v.clone(),
        Some(Arg::Var(v, f)) => format!("{v}.{}", f.join(".")),
        Some(Arg::Func(f)) => f.clone(),
        _ => "pipeline".into(),
    }
}

impl Exec {
    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.as_text());
                    }
                }
                Node::If(b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(&b.pipe, dot)?;
                    let r = if v.truthy() {
                        self.list(&b.body, dot)
                    } else {
                        self.list(&b.otherwise, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(&b.pipe, dot)?;
                    let r = if v.truthy() {
                        self.list(&b.body, &v)
                    } else {
                        self.list(&b.otherwise, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(b) => self.range(b, dot)?,
            }
        }
        Ok(())
    }

    fn range(&mut self, b: &Branch, dot: &Value) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let mut bare = b.pipe.clone();
        bare.decl.clear();
        let v = self.pipeline(&bare, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) => {
                let mut m = m.clone();
                m.sort_by(|a, b| a.0.cmp(&b.0));
                m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect()
            }
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Null | Value::NoValue => Vec::new(),
            other => {
                return Err(exec_err(
                    "range",
                    format!("range can't iterate over {other}"),
                ));
            }
        };
        if items.is_empty() {
            self.list(&b.otherwise, dot)?;
        }
        for (k, v) in items {
            match b.pipe.decl.as_slice() {
                [] => {}
                [one] => self.vars.push((one.clone(), v.clone())),
                [a, c, ..] => {
                    self.vars.push((a.clone(), k));
                    self.vars.push((c.clone(), v.clone()));
                }
            }
            let r = self.list(&b.body, &v);
            self.vars.truncate(mark);
            r?;
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut last: Option<Value> = None;
        for c in &p.cmds {
            last = Some(self.command(c, dot, last)?);
        }
        let v = last.unwrap_or(Value::NoValue);
        if p.assign {
            for name in &p.decl {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(exec_err(name.clone(), "undefined variable")),
                }
            }
        } else if let [name] = p.decl.as_slice() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn var(&self, name: &str) -> Result<Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                TemplateError::Parse(format!("template: :1: undefined variable {name:?}"))
            })
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match a {
            Arg::Field(chain) => walk(dot, chain)?,
            Arg::Var(v, chain) => walk(&self.var(v)?, chain)?,
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Null,
            Arg::Sub(p, chain) => {
                let v = self.pipeline(p, dot)?;
                walk(&v, chain)?
            }
            Arg::Func(f) => self.call(f, Vec::new())?,
        })
    }

    fn command(
        &mut self,
        c: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let first = &c.args[0];
        if let Arg::Func(f) = first {
            let mut args = Vec::new();
            for a in &c.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            args.extend(piped);
            return self.call(f, args).map_err(|e| match e {
                TemplateError::Exec { msg, .. } => exec_err(describe(&c.args), msg),
                other => other,
            });
        }
        let v = self.arg(first, dot)?;
        let mut rest = Vec::new();
        for a in &c.args[1..] {
            rest.push(self.arg(a, dot)?);
        }
        rest.extend(piped);
        if rest.is_empty() {
            return Ok(v);
        }
        // docker's methods with an argument (`.Label "key"`) read a map.
        match (&v, rest.as_slice()) {
            (Value::Map(_) | Value::Struct(_), [Value::Str(k)])
                if matches!(first, Arg::Field(_)) =>
            {
                Ok(v.field(k).cloned().unwrap_or(Value::str("")))
            }
            (Value::Str(_), [_]) if self.header => Ok(v),
            _ => Err(exec_err(
                describe(&c.args),
                format!("can't give argument to non-function {}", describe(&c.args)),
            )),
        }
    }

    fn call(&mut self, f: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
        if self.header
            && matches!(
                f,
                "json" | "join" | "split" | "title" | "lower" | "upper" | "pad" | "truncate"
            )
        {
            return Ok(args.into_iter().next().unwrap_or(Value::NoValue));
        }
        call(f, args)
    }
}

/// `.A.B` from `v`.
fn walk(v: &Value, chain: &[String]) -> Result<Value, TemplateError> {
    let mut cur = v.clone();
    for (i, name) in chain.iter().enumerate() {
        let at = || format!(".{}", chain[..=i].join("."));
        cur = match &cur {
            Value::Map(_) => cur.field(name).cloned().unwrap_or(Value::NoValue),
            Value::Struct(_) => cur.field(name).cloned().ok_or_else(|| {
                exec_err(
                    at(),
                    format!("can't evaluate field {name} in type *formatter.Context"),
                )
            })?,
            Value::Null | Value::NoValue => {
                return Err(exec_err(
                    at(),
                    format!("nil pointer evaluating interface {{}}.{name}"),
                ));
            }
            other => {
                return Err(exec_err(
                    at(),
                    format!("can't evaluate field {name} in type {}", other.kind()),
                ));
            }
        };
    }
    Ok(cur)
}

fn want<const N: usize>(f: &str, args: &[Value]) -> Result<(), TemplateError> {
    if args.len() != N {
        return Err(exec_err(
            f,
            format!("wrong number of args for {f}: want {N} got {}", args.len()),
        ));
    }
    Ok(())
}

fn as_int(f: &str, v: &Value) -> Result<i64, TemplateError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(x) if x.fract() == 0.0 => Ok(*x as i64),
        other => Err(exec_err(f, format!("expected integer; found {other}"))),
    }
}

fn as_str(f: &str, v: &Value) -> Result<String, TemplateError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(exec_err(
            f,
            format!(
                "wrong type for value; expected string; got {}",
                other.kind()
            ),
        )),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.as_text());
    }
    out
}

fn compare(f: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    };
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if f == "eq" || f == "ne" => Ok(x.cmp(y)),
        (Value::Null | Value::NoValue, Value::Null | Value::NoValue) if f == "eq" || f == "ne" => {
            Ok(Ordering::Equal)
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal)),
            _ => Err(exec_err(f, "incompatible types for comparison")),
        },
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn call(f: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    use std::cmp::Ordering;
    Ok(match f {
        "json" => {
            want::<1>(f, &args)?;
            Value::Str(args[0].to_json())
        }
        "join" => {
            want::<2>(f, &args)?;
            let sep = as_str(f, &args[1])?;
            match &args[0] {
                Value::List(l) => {
                    Value::Str(l.iter().map(Value::as_text).collect::<Vec<_>>().join(&sep))
                }
                Value::Null | Value::NoValue => Value::str(""),
                other => {
                    return Err(exec_err(
                        f,
                        format!(
                            "wrong type for value; expected []string; got {}",
                            other.kind()
                        ),
                    ));
                }
            }
        }
        "split" => {
            want::<2>(f, &args)?;
            let s = as_str(f, &args[0])?;
            let sep = as_str(f, &args[1])?;
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(Value::str).collect()
            };
            Value::List(parts)
        }
        "title" => {
            want::<1>(f, &args)?;
            Value::Str(title(&as_str(f, &args[0])?))
        }
        "lower" => {
            want::<1>(f, &args)?;
            Value::Str(as_str(f, &args[0])?.to_lowercase())
        }
        "upper" => {
            want::<1>(f, &args)?;
            Value::Str(as_str(f, &args[0])?.to_uppercase())
        }
        "pad" => {
            want::<3>(f, &args)?;
            let s = as_str(f, &args[0])?;
            let pre = as_int(f, &args[1])?.max(0) as usize;
            let post = as_int(f, &args[2])?.max(0) as usize;
            Value::Str(format!("{}{s}{}", " ".repeat(pre), " ".repeat(post)))
        }
        "truncate" => {
            want::<2>(f, &args)?;
            let s = as_str(f, &args[0])?;
            let n = as_int(f, &args[1])?.max(0) as usize;
            if s.len() < n {
                Value::Str(s)
            } else {
                let mut end = n;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                Value::Str(s[..end].to_string())
            }
        }
        "print" => Value::Str(sprint(&args)),
        "println" => {
            let mut s = args
                .iter()
                .map(Value::as_text)
                .collect::<Vec<_>>()
                .join(" ");
            s.push('\n');
            Value::Str(s)
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                return Err(exec_err(f, "wrong number of args for printf"));
            };
            Value::Str(printf(&as_str(f, fmt)?, rest))
        }
        "html" | "js" | "urlquery" => Value::Str(sprint(&args)),
        "len" => {
            want::<1>(f, &args)?;
            Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) | Value::Struct(m) => m.len(),
                other => {
                    return Err(exec_err(f, format!("len of type {}", other.kind())));
                }
            } as i64)
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err(exec_err(f, "wrong number of args for index"));
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::List(l), k) => {
                        let i = as_int(f, k)?;
                        l.get(usize::try_from(i).unwrap_or(usize::MAX))
                            .cloned()
                            .ok_or_else(|| {
                                exec_err(f, format!("error calling index: index out of range: {i}"))
                            })?
                    }
                    (Value::Map(_) | Value::Struct(_), Value::Str(key)) => {
                        cur.field(key).cloned().unwrap_or(Value::str(""))
                    }
                    (Value::Null | Value::NoValue, _) => Value::str(""),
                    (other, _) => {
                        return Err(exec_err(
                            f,
                            format!(
                                "error calling index: can't index item of type {}",
                                other.kind()
                            ),
                        ));
                    }
                };
            }
            cur
        }
        "slice" => {
            let Some((first, idx)) = args.split_first() else {
                return Err(exec_err(f, "wrong number of args for slice"));
            };
            let ints: Vec<usize> = idx
                .iter()
                .map(|v| as_int(f, v).map(|i| i.max(0) as usize))
                .collect::<Result<_, _>>()?;
            match first {
                Value::Str(s) => {
                    let a = ints.first().copied().unwrap_or(0).min(s.len());
                    let b = ints.get(1).copied().unwrap_or(s.len()).min(s.len());
                    Value::Str(s.get(a..b.max(a)).unwrap_or("").to_string())
                }
                Value::List(l) => {
                    let a = ints.first().copied().unwrap_or(0).min(l.len());
                    let b = ints.get(1).copied().unwrap_or(l.len()).min(l.len());
                    Value::List(l[a..b.max(a)].to_vec())
                }
                other => {
                    return Err(exec_err(
                        f,
                        format!("can't slice item of type {}", other.kind()),
                    ));
                }
            }
        }
        "not" => {
            want::<1>(f, &args)?;
            Value::Bool(!args[0].truthy())
        }
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::NoValue),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::NoValue),
        "eq" => {
            let Some((a, rest)) = args.split_first() else {
                return Err(exec_err(f, "missing argument for comparison"));
            };
            let mut any = false;
            for b in rest {
                if compare(f, a, b)? == Ordering::Equal {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want::<2>(f, &args)?;
            let o = compare(f, &args[0], &args[1])?;
            Value::Bool(match f {
                "ne" => o != Ordering::Equal,
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        other => {
            return Err(TemplateError::Parse(format!(
                "template: :1: function {other:?} not defined"
            )));
        }
    })
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %t %x
/// %f %%`, with flags `-` and `0` and a width.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut next = args.iter();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        let mut width = String::new();
        let mut prec: Option<String> = None;
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' if width.is_empty() && prec.is_none() => zero = true,
                '+' | ' ' | '#' => {}
                d if d.is_ascii_digit() => match &mut prec {
                    Some(p) => p.push(d),
                    None => width.push(d),
                },
                '.' => prec = Some(String::new()),
                _ => break,
            }
            it.next();
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let prec_n: Option<usize> = prec.as_deref().map(|p| p.parse().unwrap_or(0));
        let text = match verb {
            'd' => match a {
                Value::Int(i) => i.to_string(),
                Value::Float(x) => format!("{}", *x as i64),
                other => format!("%!d({other})"),
            },
            'q' => serde_json::to_string(&a.as_text()).unwrap_or_default(),
            'x' => match a {
                Value::Int(i) => format!("{i:x}"),
                other => other
                    .as_text()
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            },
            'f' => match a {
                Value::Int(i) => format!("{:.*}", prec_n.unwrap_or(6), *i as f64),
                Value::Float(x) => format!("{:.*}", prec_n.unwrap_or(6), x),
                other => format!("%!f({other})"),
            },
            's' => {
                let t = a.as_text();
                match prec_n {
                    Some(p) => t.chars().take(p).collect(),
                    None => t,
                }
            }
            _ => a.as_text(),
        };
        let w: usize = width.parse().unwrap_or(0);
        let n = text.chars().count();
        if n >= w {
            out.push_str(&text);
        } else if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', w - n));
        } else {
            let pad = if zero { '0' } else { ' ' };
            out.extend(std::iter::repeat_n(pad, w - n));
            out.push_str(&text);
        }
    }
    for extra in next {
        out.push_str(&format!("%!(EXTRA {}={})", extra.kind(), extra.as_text()));
    }
    out
}

#[cfg(test)]
mod tests;
