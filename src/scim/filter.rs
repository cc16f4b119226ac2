//! SCIM filters (RFC 7644 §3.4.2.2): parse, print, evaluate.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")" / "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER        ; "and" binds tighter
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```
//! Operators and attribute names are case-insensitive. Evaluation works on a resource
//! as the API renders it (a JSON object), so a filter sees exactly what a client sees.

use serde_json::Value;
use std::fmt;

/// `[urn:]attr[.sub]`. `urn` is kept as written (without the trailing `:`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, Op, Value),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`.
    ValuePath(AttrPath, Box<Filter>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

/// The longest filter accepted (a filter is parsed recursively).
pub const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `.sub` right after `]` (PATCH paths).
    DotSub(String),
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '$' | '+')
}

fn tokenize(s: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
                if i < chars.len() && chars[i] == '.' {
                    let start = i + 1;
                    i += 1;
                    while i < chars.len() && is_word_char(chars[i]) {
                        i += 1;
                    }
                    out.push(Tok::DotSub(chars[start..i].iter().collect()));
                }
            }
            '"' => {
                // A JSON string: find its end honouring escapes, then let serde decode it.
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return err("unterminated string");
                }
                i += 1;
                let raw: String = chars[start..i].iter().collect();
                let v: String = serde_json::from_str(&raw)
                    .map_err(|e| FilterError(format!("bad string {raw}: {e}")))?;
                out.push(Tok::Str(v));
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return err(format!("unexpected character `{}`", other.escape_debug())),
        }
    }
    Ok(out)
}

/// Parse an attribute path: `[urn:]attr[.sub]`.
pub fn parse_attr_path(s: &str) -> Result<AttrPath, FilterError> {
    let (urn, rest) = match s.rfind(':') {
        Some(i) if s[..i].to_ascii_lowercase().starts_with("urn:") => {
            (Some(s[..i].to_string()), &s[i + 1..])
        }
        Some(_) => return err(format!("invalid attribute path `{s}`")),
        None => (None, s),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let valid = |n: &str| {
        !n.is_empty()
            && (n.starts_with(|c: char| c.is_ascii_alphabetic()) || n == "$ref")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) {
        return err(format!("invalid attribute path `{s}`"));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
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

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("the filter is nested too deeply");
        }
        let f = self.unary_inner();
        self.depth -= 1;
        f
    }

    fn unary_inner(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") && matches!(self.toks.get(self.pos + 1), Some(Tok::LParen)) {
            self.pos += 2;
            let inner = self.or()?;
            self.expect_rparen()?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect_rparen()?;
            return Ok(inner);
        }
        let path = match self.next() {
            Some(Tok::Word(w)) => parse_attr_path(&w)?,
            Some(t) => return err(format!("expected an attribute, found {t:?}")),
            None => return err("unexpected end of filter"),
        };
        if matches!(self.peek(), Some(Tok::LBracket)) {
            if path.sub.is_some() {
                return err("a value filter follows an attribute, not a sub-attribute");
            }
            self.pos += 1;
            let inner = self.or()?;
            match self.next() {
                Some(Tok::RBracket) => {}
                _ => return err("expected `]`"),
            }
            if let Some(Tok::DotSub(_)) = self.peek() {
                return err("`attr[filter].sub` is a PATCH path, not a filter");
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(w)) => {
                Op::parse(&w).ok_or_else(|| FilterError(format!("unknown operator `{w}`")))?
            }
            _ => return err("expected an operator after the attribute"),
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            // ABNF literals are case-insensitive (RFC 5234 §2.3): Entra writes `True`.
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(num) => Value::Number(num),
                    Err(_) => return err(format!("invalid value `{w}` (strings are quoted)")),
                },
            },
            _ => return err("expected a value after the operator"),
        };
        // RFC 7644 §3.4.2.2: `gt`, `ge`, `lt` and `le` on a boolean (or null) "SHALL"
        // fail with `invalidFilter` (they matched nothing, under a 200).
        if matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le)
            && matches!(value, Value::Bool(_) | Value::Null)
        {
            return err(format!(
                "`{}` orders strings, numbers and times, not {value}",
                op.as_str()
            ));
        }
        Ok(Filter::Compare(path, op, value))
    }

    fn expect_rparen(&mut self) -> Result<(), FilterError> {
        match self.next() {
            Some(Tok::RParen) => Ok(()),
            _ => err("expected `)`"),
        }
    }
}

pub fn parse(s: &str) -> Result<Filter, FilterError> {
    if s.len() > MAX_FILTER_LEN {
        return err(format!("the filter is longer than {MAX_FILTER_LEN} bytes"));
    }
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return err(format!("unexpected {:?} after the filter", p.toks[p.pos]));
    }
    Ok(f)
}

/// A PATCH path: `attrPath` or `attrPath[valFilter]` optionally followed by `.subAttr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`.
    pub sub: Option<String>,
}

pub fn parse_patch_path(s: &str) -> Result<PatchPath, FilterError> {
    if s.len() > MAX_FILTER_LEN {
        return err("the path is too long");
    }
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let attr = match p.next() {
        Some(Tok::Word(w)) => parse_attr_path(&w)?,
        _ => return err(format!("invalid path `{s}`")),
    };
    let mut out = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if matches!(p.peek(), Some(Tok::LBracket)) {
        if out.attr.sub.is_some() {
            return err(format!("invalid path `{s}`"));
        }
        p.pos += 1;
        out.filter = Some(p.or()?);
        match p.next() {
            Some(Tok::RBracket) => {}
            _ => return err("expected `]`"),
        }
        if let Some(Tok::DotSub(sub)) = p.peek().cloned() {
            p.pos += 1;
            parse_attr_path(&sub)?;
            out.sub = Some(sub);
        }
    }
    if p.pos != p.toks.len() {
        return err(format!("invalid path `{s}`"));
    }
    Ok(out)
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    /// The canonical text: every logical expression in parentheses, so that printing
    /// and parsing again gives the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::And(a, b) => write!(f, "({a} and {b})"),
            Filter::Or(a, b) => write!(f, "({a} or {b})"),
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

/// A string as case-insensitive comparisons see it: lower-cased, and a final sigma (ς,
/// which `to_lowercase` makes of a word-final Σ) as σ, so that `ΚΟΣ` (→ `κοσ`) is found
/// in `ΚΟΣΜΟΣ` (→ `κοσμος`) — on both sides, by the scan and the index alike.
pub fn fold(s: &str) -> String {
    let lower = s.to_lowercase();
    if lower.contains('ς') {
        lower.replace('ς', "σ")
    } else {
        lower
    }
}

/// Attributes whose string values compare case-sensitively (RFC 7643 `caseExact`).
fn case_exact(attr: &str, sub: Option<&str>) -> bool {
    let a = attr.to_ascii_lowercase();
    matches!(a.as_str(), "id" | "externalid" | "password" | "profileurl")
        || (a == "x509certificates" && sub.is_none_or(|s| s.eq_ignore_ascii_case("value")))
        // A user's groups and a group's members by id, as `/Schemas` declares them
        // (group names are case-sensitive: `devs` found the members of `Devs` too).
        || (matches!(a.as_str(), "groups" | "members")
            && sub.is_some_and(|s| s.eq_ignore_ascii_case("value")))
        || sub.is_some_and(|s| s.eq_ignore_ascii_case("$ref"))
        || (a == "meta" && sub.is_some_and(|s| !s.eq_ignore_ascii_case("resourcetype")))
}

/// Attributes of type `dateTime` (RFC 7643 §2.3.5: `meta.created`, `meta.lastModified`),
/// whose comparisons are chronological (RFC 7644 §3.4.2.2), not textual: the same
/// instant can be written with another offset or fraction.
fn date_time(p: &AttrPath) -> bool {
    p.attr.eq_ignore_ascii_case("meta")
        && p.sub.as_deref().is_some_and(|s| {
            s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified")
        })
}

/// Whether `op` orders or equates (the comparisons a `dateTime` makes chronologically).
fn ordering(op: Op) -> bool {
    matches!(op, Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le)
}

/// `actual` against `expected`, both RFC 3339 times, chronologically; a value that is
/// not one matches nothing (a filter's own value was checked: [`Filter::check_dates`]).
fn compare_dates(actual: &Value, op: Op, expected: &Value) -> bool {
    let time = |v: &Value| v.as_str().and_then(crate::timefmt::parse);
    let (Some(a), Some(b)) = (time(actual), time(expected)) else {
        return false;
    };
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// A key of `obj` matching `name` case-insensitively.
pub fn get_ci<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Where a path points in a resource: the core schema's attributes are at the top,
/// an extension's under its URN.
fn base<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Option<&'a Value> {
    match &path.urn {
        None => Some(resource),
        Some(u) if u.eq_ignore_ascii_case(core_urn) => Some(resource),
        Some(u) => get_ci(resource, u),
    }
}

fn compare(actual: &Value, op: Op, expected: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ord = match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (fold(a), fold(b))
            };
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            match a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b))
            {
                Some(o) => o,
                None => return false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => return a == b,
            Op::Ne => return a != b,
            _ => return false,
        },
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// The values a path selects (a multi-valued attribute gives each of its values; a
/// complex multi-valued attribute compared without a sub-attribute compares `value`).
pub fn values<'a>(resource: &'a Value, path: &AttrPath, core_urn: &str) -> Vec<&'a Value> {
    let Some(v) = base(resource, path, core_urn).and_then(|b| get_ci(b, &path.attr)) else {
        return vec![];
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let sub = path.sub.as_deref().or_else(|| {
        items
            .first()
            .filter(|i| i.is_object() && v.is_array())
            .map(|_| "value")
    });
    match sub {
        Some(s) => items.into_iter().filter_map(|i| get_ci(i, s)).collect(),
        None => items,
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl Filter {
    /// Does `resource` (whose core schema is `core_urn`) match?
    pub fn matches(&self, resource: &Value, core_urn: &str) -> bool {
        self.matches_within(resource, core_urn, None)
    }

    /// [`Filter::matches`] inside a value filter of attribute `parent` (`groups[value eq
    /// "x"]`: `value` is `groups.value`, whose case-exactness is the parent's).
    fn matches_within(&self, resource: &Value, core_urn: &str, parent: Option<&str>) -> bool {
        let within = |f: &Filter| f.matches_within(resource, core_urn, parent);
        match self {
            Filter::And(a, b) => within(a) && within(b),
            Filter::Or(a, b) => within(a) || within(b),
            Filter::Not(a) => !within(a),
            Filter::Present(p) => values(resource, p, core_urn).into_iter().any(present),
            Filter::Compare(p, op, expected) => {
                let vals = values(resource, p, core_urn);
                let exact = match parent {
                    Some(parent) => case_exact(parent, Some(&p.attr)),
                    None => case_exact(&p.attr, p.sub.as_deref()),
                };
                if vals.is_empty() {
                    return *op == Op::Ne && !expected.is_null()
                        || (*op == Op::Eq && expected.is_null());
                }
                if ordering(*op) && date_time(p) {
                    if *op == Op::Ne {
                        return !vals.iter().any(|v| compare_dates(v, Op::Eq, expected));
                    }
                    return vals.iter().any(|v| compare_dates(v, *op, expected));
                }
                if *op == Op::Ne {
                    return !vals.iter().any(|v| compare(v, Op::Eq, expected, exact));
                }
                vals.iter().any(|v| compare(v, *op, expected, exact))
            }
            Filter::ValuePath(p, inner) => {
                let Some(v) = base(resource, p, core_urn).and_then(|b| get_ci(b, &p.attr)) else {
                    return false;
                };
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                // Inside the brackets, paths are relative to each value.
                items
                    .into_iter()
                    .any(|item| inner.matches_within(item, core_urn, Some(&p.attr)))
            }
        }
    }

    /// `userName eq "x"` (the one filter answered from an index), with the value.
    pub fn as_username_eq(&self) -> Option<&str> {
        self.as_user_eq("userName")
    }

    /// `<attr> eq "x"` on a top-level attribute of the core User schema, with the value.
    pub fn as_user_eq(&self, attr: &str) -> Option<&str> {
        match self {
            Filter::Compare(p, Op::Eq, Value::String(v))
                if p.attr.eq_ignore_ascii_case(attr)
                    && p.sub.is_none()
                    && p.urn
                        .as_deref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(super::USER_SCHEMA)) =>
            {
                Some(v)
            }
            _ => None,
        }
    }

    /// `Err` (naming the attribute) when a `dateTime` attribute is compared with a value
    /// that is not an RFC 3339 time: RFC 7644 §3.4.2.2 makes that `invalidFilter`, not
    /// a filter that matches nothing.
    pub fn check_dates(&self) -> Result<(), String> {
        match self {
            Filter::Compare(p, op, v) if ordering(*op) && date_time(p) => {
                match v.as_str().and_then(crate::timefmt::parse) {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "`{p}` is a dateTime: compare it with an RFC 3339 time, not {v}"
                    )),
                }
            }
            Filter::Compare(..) | Filter::Present(_) => Ok(()),
            Filter::And(a, b) | Filter::Or(a, b) => a.check_dates().and_then(|_| b.check_dates()),
            Filter::Not(a) | Filter::ValuePath(_, a) => a.check_dates(),
        }
    }

    /// Every attribute path the filter names (to check them against the schema).
    pub fn paths(&self) -> Vec<&AttrPath> {
        match self {
            Filter::Compare(p, _, _) | Filter::Present(p) => vec![p],
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut v = a.paths();
                v.extend(b.paths());
                v
            }
            Filter::Not(a) => a.paths(),
            Filter::ValuePath(p, inner) => {
                let mut v = vec![p];
                v.extend(inner.paths());
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn user() -> Value {
        json!({
            "id": "bjensen",
            "userName": "bjensen",
            "externalId": "X1",
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {"lastModified": "2011-05-13T04:42:34Z", "resourceType": "User"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}
        })
    }

    /// Finding: `meta.*` times compared as text (another offset, a fraction, or no
    /// time at all gave the wrong answer, or none); RFC 7644 §3.4.2.2: chronologically,
    /// and a value that is no time is an invalid filter.
    #[test]
    fn scim_date_times_compare_chronologically() {
        let u = user(); // lastModified 2011-05-13T04:42:34Z
        for (f, expected) in [
            (r#"meta.lastModified gt "2011-05-13T05:00:00+01:00""#, true),
            (r#"meta.lastModified lt "2011-05-13T05:00:00+01:00""#, false),
            (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified ne "2011-05-13T06:42:34+02:00""#, false),
            (r#"meta.lastModified lt "2011-05-13T04:42:34.500Z""#, true),
            (r#"meta.lastModified ge "2011-05-13T04:42:34.000Z""#, true),
            (r#"meta.lastModified le "2011-05-12T23:42:34-05:00""#, true),
            (r#"meta.lastModified gt "2011-05-12T23:42:34-05:00""#, false),
            (r#"meta.created gt "2000-01-01T00:00:00Z""#, false),
        ] {
            let parsed = parse(f).unwrap();
            assert!(parsed.check_dates().is_ok(), "{f}");
            assert_eq!(parsed.matches(&u, U), expected, "{f}");
        }
        for f in [
            r#"meta.lastModified gt "garbage""#,
            r#"meta.lastModified gt 5"#,
            r#"not (meta.lastModified eq "2011-05-13")"#,
        ] {
            assert!(parse(f).unwrap().check_dates().is_err(), "{f}");
        }
        // Ordering a boolean or null is no filter at all (RFC 7644 §3.4.2.2).
        for f in [
            r#"meta.created lt true"#,
            r#"active gt true"#,
            r#"active ge False"#,
            r#"title le null"#,
        ] {
            assert!(parse(f).is_err(), "{f}");
        }
        assert!(parse(r#"active eq true"#).is_ok());
        assert!(parse(r#"meta.lastModified sw "2011""#)
            .unwrap()
            .check_dates()
            .is_ok());
    }

    /// Finding: `active eq True` (Entra's .NET spelling) was 400; ABNF literals are
    /// case-insensitive (RFC 5234 §2.3).
    #[test]
    fn literals_are_read_in_any_case() {
        for (f, v) in [
            ("active eq True", Value::Bool(true)),
            ("active eq FALSE", Value::Bool(false)),
            ("title eq Null", Value::Null),
            ("active eq true", Value::Bool(true)),
        ] {
            match parse(f).unwrap() {
                Filter::Compare(_, _, got) => assert_eq!(got, v, "{f}"),
                other => panic!("{f}: {other:?}"),
            }
        }
        assert!(parse("active eq Truth").is_err());
    }

    /// The examples of RFC 7644 §3.4.2.2, and what each says of the user above.
    #[test]
    fn rfc_examples_parse_and_evaluate() {
        let table = [
            (r#"userName Eq "john""#, false),
            (r#"Username eq "BJENSEN""#, true),
            (r#"name.familyName co "O'Malley""#, false),
            (r#"name.familyName co "ens""#, true),
            (r#"userName sw "J""#, false),
            (r#"userName sw "bj""#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                false,
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b""#,
                true,
            ),
            (r#"title pr"#, true),
            (r#"nickName pr"#, false),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
            (r#"title pr and userType eq "Employee""#, true),
            (r#"title pr or userType eq "Intern""#, true),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                false,
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                true,
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                true,
            ),
            (r#"externalId eq "x1""#, false),
            (r#"externalId eq "X1""#, true),
            (r#"active eq true"#, true),
            (r#"active eq false"#, false),
            (r#"not (active eq false)"#, true),
            (r#"userName ne "bjensen""#, false),
            (r#"nickName ne "x""#, true),
        ];
        for (text, expected) in table {
            let f = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.matches(&user(), U), expected, "{text}");
            // Printing and parsing again gives the same tree.
            assert_eq!(parse(&f.to_string()).unwrap(), f, "{text} -> {f}");
        }
    }

    #[test]
    fn precedence_not_and_or() {
        let f = parse(r#"a eq 1 or b eq 2 and c eq 3"#).unwrap();
        assert!(matches!(f, Filter::Or(_, _)), "{f:?}");
        let f = parse(r#"(a eq 1 or b eq 2) and c eq 3"#).unwrap();
        assert!(matches!(f, Filter::And(_, _)), "{f:?}");
    }

    #[test]
    fn malformed_filters_are_errors() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq \"a",
            "userName eq bob",
            "(userName eq \"a\"",
            "userName eq \"a\")",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"].value eq \"x\"",
            "userName eq \"a\" and",
            "not userName eq \"a\"",
            "1abc eq \"a\"",
            "userName eq \"a\" \"b\"",
            "a.b.c eq 1",
            "userName ~ \"a\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a pr and ".repeat(1000)).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.attr, "emails");
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert!(p.filter.is_some());
        let p = parse_patch_path("name.familyName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("familyName"));
        let p = parse_patch_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert!(parse_patch_path("emails[").is_err());
        assert!(parse_patch_path("a b").is_err());
    }

    /// Random input never panics the parsers (it is a 400, not a 500).
    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        let alphabet: Vec<char> = "ab eqprandot()[]\".\\:$-_1é€0.urn:TZ+".chars().collect();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((x >> (i % 50)) as usize + i * 7) % alphabet.len()])
                .collect();
            let _ = parse(&text);
            let _ = parse_patch_path(&text);
            let _ = crate::timefmt::parse(&text);
            let mut doc = serde_json::json!({"userName": "u", "emails": [{"value": "a"}]});
            let _ = super::super::patch::apply(
                super::super::Kind::User,
                &mut doc,
                &serde_json::json!({"Operations": [{"op": "replace", "path": text, "value": "v"}]}),
            );
        }
    }

    /// parse ∘ print is the identity on random trees.
    #[test]
    fn print_then_parse_is_identity() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let attrs = ["userName", "name", "emails", "title", "x-y_z"];
        let subs = [None, Some("value"), Some("familyName"), Some("$ref")];
        let urns = [
            None,
            Some(U),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        ];
        let ops = [
            Op::Eq,
            Op::Ne,
            Op::Co,
            Op::Sw,
            Op::Ew,
            Op::Gt,
            Op::Ge,
            Op::Lt,
            Op::Le,
        ];
        fn gen(
            next: &mut dyn FnMut(usize) -> usize,
            depth: usize,
            attrs: &[&str],
            subs: &[Option<&str>],
            urns: &[Option<&str>],
            ops: &[Op],
        ) -> Filter {
            let path = |next: &mut dyn FnMut(usize) -> usize| AttrPath {
                urn: urns[next(urns.len())].map(str::to_string),
                attr: attrs[next(attrs.len())].to_string(),
                sub: subs[next(subs.len())].map(str::to_string),
            };
            let leaf = depth == 0 || next(3) == 0;
            if leaf {
                if next(4) == 0 {
                    return Filter::Present(path(next));
                }
                let values = [
                    json!("a \"quoted\" \\ value"),
                    json!(true),
                    json!(null),
                    json!(42),
                    json!(-1.5),
                    json!(""),
                ];
                let op = ops[next(ops.len())];
                let mut value = values[next(values.len())].clone();
                // Ordering a boolean or null is no filter (it does not parse).
                if matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le)
                    && matches!(value, Value::Bool(_) | Value::Null)
                {
                    value = json!("");
                }
                return Filter::Compare(path(next), op, value);
            }
            match next(4) {
                0 => Filter::And(
                    Box::new(gen(next, depth - 1, attrs, subs, urns, ops)),
                    Box::new(gen(next, depth - 1, attrs, subs, urns, ops)),
                ),
                1 => Filter::Or(
                    Box::new(gen(next, depth - 1, attrs, subs, urns, ops)),
                    Box::new(gen(next, depth - 1, attrs, subs, urns, ops)),
                ),
                2 => Filter::Not(Box::new(gen(next, depth - 1, attrs, subs, urns, ops))),
                _ => {
                    let mut p = path(next);
                    p.sub = None;
                    Filter::ValuePath(p, Box::new(gen(next, depth - 1, attrs, subs, urns, ops)))
                }
            }
        }
        for _ in 0..2000 {
            let f = gen(&mut next, 4, &attrs, &subs, &urns, &ops);
            let text = f.to_string();
            assert_eq!(
                parse(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
                f,
                "{text}"
            );
        }
    }
}
