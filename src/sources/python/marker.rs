//! PEP 508 environment markers, evaluated for the image's interpreter
//! (never the build host's), with the PEP 751 `extras` and
//! `dependency_groups` set variables.
//!
//! Comparison semantics follow `packaging.markers`: when the operator is a
//! version operator and the right-hand side parses as a specifier, PEP 440
//! rules apply (pre-releases included); otherwise the strings are compared.

use std::collections::BTreeSet;

use super::version::{Op, Specifier, Version};

/// The values markers see for the target interpreter and platform.
#[derive(Debug, Clone)]
pub struct MarkerEnv {
    /// `os_name`
    pub os_name: String,
    /// `sys_platform`
    pub sys_platform: String,
    /// `platform_machine`
    pub platform_machine: String,
    /// `platform_python_implementation`
    pub platform_python_implementation: String,
    /// `platform_release` (the kernel of the machine that runs the image: unknown, empty)
    pub platform_release: String,
    /// `platform_system`
    pub platform_system: String,
    /// `platform_version` (unknown, empty)
    pub platform_version: String,
    /// `python_version`, e.g. `3.11`
    pub python_version: String,
    /// `python_full_version`, e.g. `3.11.2`
    pub python_full_version: String,
    /// `implementation_name`
    pub implementation_name: String,
    /// `implementation_version`
    pub implementation_version: String,
    /// `extras` (PEP 751): extras selected for the install.
    pub extras: BTreeSet<String>,
    /// `dependency_groups` (PEP 751): groups selected for the install.
    pub dependency_groups: BTreeSet<String>,
}

/// A marker that could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("marker `{marker}`: {problem}")]
pub struct MarkerError {
    /// The marker text.
    pub marker: String,
    /// What is wrong.
    pub problem: MarkerProblem,
}

/// What is wrong with a marker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerProblem {
    /// A quote without its closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// A character markers do not use.
    #[error("unexpected character `{0}`")]
    UnexpectedCharacter(char),
    /// `(` without `)`.
    #[error("missing `)`")]
    MissingParen,
    /// `not` without `in`.
    #[error("expected `in` after `not`")]
    ExpectedIn,
    /// No operator where one belongs.
    #[error("expected an operator, found {0}")]
    ExpectedOperator(String),
    /// An operator PEP 508 does not have.
    #[error("unknown operator `{0}`")]
    UnknownOperator(String),
    /// No operand where one belongs.
    #[error("expected a variable or a quoted string, found {0}")]
    ExpectedValue(String),
    /// Tokens after a complete expression.
    #[error("unexpected {0} after the expression")]
    Trailing(String),
    /// A string compared with a set by something other than `in`.
    #[error("`{0}` cannot compare a string with a set; use `in` or `not in`")]
    SetComparison(String),
    /// A set variable on the left.
    #[error("set variables (`extras`, `dependency_groups`) may only appear on the right of `in`/`not in`")]
    SetOnTheLeft,
    /// A variable PEP 508 does not define.
    #[error("unknown marker variable `{0}`")]
    UnknownVariable(String),
    /// Parentheses nested deeper than the limit.
    #[error("parentheses nest deeper than {0} levels")]
    TooDeep(usize),
    /// `~=` between values that are not versions.
    #[error("`~=` needs versions, got '{0}' and '{1}'")]
    NeedsVersions(String, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Ident(String),
    Op(String),
    LParen,
    RParen,
}

fn lex(s: &str) -> Result<Vec<Tok>, MarkerProblem> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b'\'' | b'"' => {
                let end = s[i + 1..].find(c as char).ok_or(MarkerProblem::UnterminatedString)?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'<' | b'>' | b'=' | b'!' | b'~' => {
                let n = b[i..].iter().take_while(|c| b"<>=!~".contains(c)).count();
                out.push(Tok::Op(s[i..i + n].to_string()));
                i += n;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let n = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.').count();
                out.push(Tok::Ident(s[i..i + n].to_string()));
                i += n;
            }
            _ => return Err(MarkerProblem::UnexpectedCharacter(c as char)),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Var(String),
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Value, String, Value),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Result<Expr, MarkerProblem> {
        let mut l = self.and()?;
        while self.peek() == Some(&Tok::Ident("or".into())) {
            self.pos += 1;
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, MarkerProblem> {
        let mut l = self.atom()?;
        while self.peek() == Some(&Tok::Ident("and".into())) {
            self.pos += 1;
            l = Expr::And(Box::new(l), Box::new(self.atom()?));
        }
        Ok(l)
    }
    fn atom(&mut self) -> Result<Expr, MarkerProblem> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err(MarkerProblem::MissingParen);
            }
            return Ok(e);
        }
        let l = self.value()?;
        let op = match self.next() {
            Some(Tok::Op(o)) => o,
            Some(Tok::Ident(w)) if w == "in" => "in".into(),
            Some(Tok::Ident(w)) if w == "not" => match self.next() {
                Some(Tok::Ident(w)) if w == "in" => "not in".into(),
                _ => return Err(MarkerProblem::ExpectedIn),
            },
            other => return Err(MarkerProblem::ExpectedOperator(describe(other.as_ref()))),
        };
        if Op::parse(&op).is_none() && op != "in" && op != "not in" {
            return Err(MarkerProblem::UnknownOperator(op));
        }
        let r = self.value()?;
        Ok(Expr::Cmp(l, op, r))
    }
    fn value(&mut self) -> Result<Value, MarkerProblem> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::Str(s)),
            Some(Tok::Ident(v)) => Ok(Value::Var(v)),
            other => Err(MarkerProblem::ExpectedValue(describe(other.as_ref()))),
        }
    }
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end".into(),
        Some(Tok::Str(s)) => format!("'{s}'"),
        Some(Tok::Ident(s)) | Some(Tok::Op(s)) => format!("`{s}`"),
        Some(Tok::LParen) => "`(`".into(),
        Some(Tok::RParen) => "`)`".into(),
    }
}

/// The deepest parenthesis nesting a marker may have.
pub const MAX_MARKER_DEPTH: usize = 32;

/// A parsed marker expression.
#[derive(Debug, Clone)]
pub struct Marker {
    text: String,
    expr: Expr,
}

enum Resolved<'a> {
    Str(String),
    Set(&'a BTreeSet<String>),
}

impl Marker {
    /// Parses a marker.
    pub fn parse(text: &str) -> Result<Marker, MarkerError> {
        let err = |problem| MarkerError { marker: text.to_string(), problem };
        // The parser recurses once per parenthesis: bound the nesting so a
        // hostile marker cannot exhaust the stack.
        let mut depth = 0usize;
        for c in text.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_MARKER_DEPTH {
                return Err(err(MarkerProblem::TooDeep(MAX_MARKER_DEPTH)));
            }
        }
        let toks = lex(text).map_err(err)?;
        let mut p = Parser { toks, pos: 0 };
        let expr = p.or().map_err(err)?;
        if p.pos < p.toks.len() {
            return Err(err(MarkerProblem::Trailing(describe(p.peek()))));
        }
        Ok(Marker { text: text.to_string(), expr })
    }

    /// Evaluates the marker in `env`.
    pub fn evaluate(&self, env: &MarkerEnv) -> Result<bool, MarkerError> {
        self.eval(&self.expr, env).map_err(|problem| MarkerError { marker: self.text.clone(), problem })
    }

    fn eval(&self, e: &Expr, env: &MarkerEnv) -> Result<bool, MarkerProblem> {
        match e {
            Expr::And(a, b) => Ok(self.eval(a, env)? && self.eval(b, env)?),
            Expr::Or(a, b) => Ok(self.eval(a, env)? || self.eval(b, env)?),
            Expr::Cmp(l, op, r) => {
                let is_extra = |v: &Value| matches!(v, Value::Var(n) if n == "extra");
                let extra = is_extra(l) || is_extra(r);
                let lv = resolve(l, env)?;
                let rv = resolve(r, env)?;
                match (lv, rv) {
                    (Resolved::Str(a), Resolved::Str(b)) => {
                        if extra {
                            // Extra names compare normalised (PEP 685).
                            compare(&normalize_name(&a), op, &normalize_name(&b))
                        } else {
                            compare(&a, op, &b)
                        }
                    }
                    (Resolved::Str(a), Resolved::Set(set)) => match op.as_str() {
                        "in" => Ok(set.contains(&normalize_name(&a))),
                        "not in" => Ok(!set.contains(&normalize_name(&a))),
                        _ => Err(MarkerProblem::SetComparison(op.clone())),
                    },
                    _ => Err(MarkerProblem::SetOnTheLeft),
                }
            }
        }
    }
}

fn resolve<'a>(v: &Value, env: &'a MarkerEnv) -> Result<Resolved<'a>, MarkerProblem> {
    let name = match v {
        Value::Str(s) => return Ok(Resolved::Str(s.clone())),
        Value::Var(n) => n.as_str(),
    };
    let s = match name {
        "os_name" | "os.name" => &env.os_name,
        "sys_platform" | "sys.platform" => &env.sys_platform,
        "platform_machine" | "platform.machine" => &env.platform_machine,
        "platform_python_implementation" | "platform.python_implementation" | "python_implementation" => {
            &env.platform_python_implementation
        }
        "platform_release" => &env.platform_release,
        "platform_system" => &env.platform_system,
        "platform_version" | "platform.version" => &env.platform_version,
        "python_version" => &env.python_version,
        "python_full_version" => &env.python_full_version,
        "implementation_name" => &env.implementation_name,
        "implementation_version" => &env.implementation_version,
        "extra" => return Ok(Resolved::Str(String::new())),
        "extras" => return Ok(Resolved::Set(&env.extras)),
        "dependency_groups" => return Ok(Resolved::Set(&env.dependency_groups)),
        other => return Err(MarkerProblem::UnknownVariable(other.to_string())),
    };
    Ok(Resolved::Str(s.clone()))
}

fn compare(lhs: &str, op: &str, rhs: &str) -> Result<bool, MarkerProblem> {
    match op {
        "in" => return Ok(rhs.contains(lhs)),
        "not in" => return Ok(!rhs.contains(lhs)),
        _ => {}
    }
    let o = Op::parse(op).ok_or_else(|| MarkerProblem::UnknownOperator(op.to_string()))?;
    if let (Ok(spec), Ok(v)) = (Specifier::new(o, rhs), Version::parse(lhs)) {
        return Ok(spec.contains(&v));
    }
    Ok(match o {
        Op::Eq | Op::Arbitrary => lhs == rhs,
        Op::Ne => lhs != rhs,
        Op::Lt => lhs < rhs,
        Op::Le => lhs <= rhs,
        Op::Gt => lhs > rhs,
        Op::Ge => lhs >= rhs,
        Op::Compatible => return Err(MarkerProblem::NeedsVersions(lhs.to_string(), rhs.to_string())),
    })
}

/// PEP 503 name normalisation: lower case, runs of `-_.` become `-`.
pub fn normalize_name(n: &str) -> String {
    let mut out = String::with_capacity(n.len());
    let mut sep = false;
    for c in n.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MarkerEnv {
        super::super::Target::default().marker_env(&BTreeSet::new(), &BTreeSet::new())
    }

    fn eval(m: &str) -> bool {
        Marker::parse(m).unwrap().evaluate(&env()).unwrap()
    }

    #[test]
    fn evaluates_for_the_target_not_the_host() {
        assert!(eval("platform_machine == 'x86_64' and sys_platform == 'linux'"));
        assert!(eval("platform_system == \"Linux\" and platform_machine == \"x86_64\""));
        assert!(!eval("python_version >= \"3.12\""));
        assert!(eval("python_full_version < '3.14'"));
        assert!(!eval("sys_platform == 'win32' or sys_platform == 'darwin'"));
        assert!(eval("(os_name == 'posix' and implementation_name == 'cpython') or extra == 'x'"));
        assert!(!eval("extra == 'Tests'"));
        assert!(eval("'3.11' <= python_version"));
        assert!(eval("'linux' in sys_platform"));
        assert!(!eval("'test' in extras"));
        assert!(eval("python_version == '3.11.*'") && !eval("python_full_version == '3.10.*'"));
    }

    #[test]
    fn bad_markers_are_errors() {
        assert!(Marker::parse("python_version >= ").is_err());
        assert!(Marker::parse("python_version >= '3' and").is_err());
        assert!(Marker::parse("(python_version >= '3'").is_err());
        let e = Marker::parse("pyhton_version >= '3'").unwrap().evaluate(&env()).unwrap_err();
        assert_eq!(e.to_string(), "marker `pyhton_version >= '3'`: unknown marker variable `pyhton_version`");
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalize_name("Typing_Extensions"), "typing-extensions");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("a__-b"), "a-b");
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        let deep = format!("{}python_version == '3.11'{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(Marker::parse(&deep).unwrap_err().to_string().contains("deeper than 32"));
        let ok = format!("{}python_version == '3.11'{}", "(".repeat(32), ")".repeat(32));
        assert!(Marker::parse(&ok).is_ok());
    }
}
