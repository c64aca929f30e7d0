//! RFC 7644 §3.4.2.2 filters: a parser into a small AST, compilation against a resource type's
//! schema (canonical names, types, case sensitivity), evaluation over stored documents, and the
//! key-lookup plan the store uses for indexed equality filters.

use crate::error::{Result, ScimError};
use crate::path::{AttrPath, Target};
use crate::schema::{AttrType, ResourceType};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: the attribute and the value are equal.
    Eq,
    /// `ne`: no value of the attribute equals the value (an absent attribute matches).
    Ne,
    /// `co`: the value is a substring of the attribute value.
    Co,
    /// `sw`: the attribute value starts with the value.
    Sw,
    /// `ew`: the attribute value ends with the value.
    Ew,
    /// `gt`: the attribute value is greater than the value.
    Gt,
    /// `ge`: the attribute value is greater than or equal to the value.
    Ge,
    /// `lt`: the attribute value is less than the value.
    Lt,
    /// `le`: the attribute value is less than or equal to the value.
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// A parsed filter, before schema resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`: an attribute compared with a literal.
    Compare {
        /// The attribute path on the left of the operator.
        path: AttrPath,
        /// The comparison operator.
        op: CompareOp,
        /// The comparison value: a JSON string, number, boolean or null literal.
        value: Value,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `a and b`: both filters match.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`: either filter matches.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`: the filter does not match.
    Not(Box<Filter>),
    /// `attr[inner]`: some element of the multi-valued `attr` satisfies `inner`, whose paths are
    /// relative to the element.
    ValuePath {
        /// The multi-valued (complex) attribute before the brackets.
        path: AttrPath,
        /// The filter inside the brackets, applied to each element.
        inner: Box<Filter>,
    },
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Word(String),
    Str(String),
}

fn lex(input: &str) -> Result<Vec<Tok>> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1
            }
            b'[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            b']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if !closed || i > bytes.len() {
                    return Err(ScimError::invalid_filter("unterminated string in filter"));
                }
                let s: String =
                    serde_json::from_str(&input[start..i]).map_err(|_| ScimError::invalid_filter("invalid escape in filter string"))?;
                out.push(Tok::Str(s));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'[' | b']' | b'"') {
                    i += 1;
                }
                out.push(Tok::Word(input[start..i].to_string()));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser (precedence: not > and > or)

/// Maximum nesting depth; deeper filters are rejected rather than risking the stack.
const MAX_DEPTH: usize = 64;

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
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter("filter nests too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter> {
        self.enter()?;
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter> {
        if self.peek_keyword("not") && matches!(self.toks.get(self.pos + 1), Some(Tok::LParen)) {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            return self.group();
        }
        self.attr_expr()
    }

    fn group(&mut self) -> Result<Filter> {
        self.enter()?;
        match self.next() {
            Some(Tok::LParen) => {}
            _ => return Err(ScimError::invalid_filter("expected '('")),
        }
        let f = self.or()?;
        match self.next() {
            Some(Tok::RParen) => {}
            _ => return Err(ScimError::invalid_filter("expected ')'")),
        }
        self.depth -= 1;
        Ok(f)
    }

    fn attr_expr(&mut self) -> Result<Filter> {
        let word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(t) => {
                return Err(ScimError::invalid_filter(format!("expected an attribute path, found {}", describe(&t))));
            }
            None => {
                return Err(ScimError::invalid_filter("filter ends where an attribute path was expected"));
            }
        };
        let path = AttrPath::parse(&word).map_err(|_| ScimError::invalid_filter(format!("'{word}' is not a valid attribute path")))?;
        if matches!(self.peek(), Some(Tok::LBracket)) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            match self.next() {
                Some(Tok::RBracket) => {}
                _ => {
                    return Err(ScimError::invalid_filter("expected ']' to close the value filter"));
                }
            }
            // Entra's non-RFC form: emails[type eq "work"].value eq "x"
            if let Some(Tok::Word(w)) = self.peek()
                && let Some(sub) = w.strip_prefix('.')
            {
                let sub_path =
                    AttrPath::parse(sub).map_err(|_| ScimError::invalid_filter(format!("'{w}' is not a valid sub-attribute")))?;
                self.pos += 1;
                let cmp = self.comparison(sub_path)?;
                return Ok(Filter::ValuePath { path, inner: Box::new(Filter::And(Box::new(inner), Box::new(cmp))) });
            }
            return Ok(Filter::ValuePath { path, inner: Box::new(inner) });
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter> {
        let op = match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(w)) => CompareOp::parse(&w).ok_or_else(|| ScimError::invalid_filter(format!("unknown operator '{w}'")))?,
            Some(t) => {
                return Err(ScimError::invalid_filter(format!("expected an operator after '{path}', found {}", describe(&t))));
            }
            None => {
                return Err(ScimError::invalid_filter(format!("filter ends after '{path}'; an operator is missing")));
            }
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                // Microsoft's reference clients send bare words and dates unquoted: read them as strings
                _ => serde_json::from_str::<serde_json::Number>(&w).map(Value::Number).unwrap_or(Value::String(w)),
            },
            Some(t) => {
                return Err(ScimError::invalid_filter(format!("expected a value, found {}", describe(&t))));
            }
            None => {
                return Err(ScimError::invalid_filter("filter ends where a comparison value was expected"));
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("\"{s}\""),
    }
}

/// Parses filter text into the AST.
pub fn parse(input: &str) -> Result<Filter> {
    if input.len() > 8 * 1024 {
        return Err(ScimError::invalid_filter("filter longer than 8 KiB"));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(ScimError::invalid_filter("empty filter"));
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let f = p.or()?;
    if let Some(t) = p.peek() {
        return Err(ScimError::invalid_filter(format!("unexpected {} in filter", describe(t))));
    }
    Ok(f)
}

// ---------------------------------------------------------------------------------------------
// Compilation against a schema

/// Where a compiled comparison reads its values.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    /// A path from the resource root.
    Root(Target<'a>),
    /// A sub-attribute of the element under test inside `attr[...]`.
    Element(&'a crate::schema::AttrDef),
}

impl<'a> Operand<'a> {
    fn leaf(&self) -> &'a crate::schema::AttrDef {
        match self {
            Operand::Root(t) => {
                // `emails eq "x"` compares the element's `value`.
                if t.sub.is_none() && t.def.is_complex() { t.def.sub_attr("value").unwrap_or(t.def) } else { t.leaf() }
            }
            Operand::Element(d) => d,
        }
    }
}

/// A filter resolved against a resource type: canonical names and types, ready to evaluate.
#[derive(Debug, Clone)]
pub enum Expr<'a> {
    /// A comparison of the operand's values with a literal; matches when any value satisfies it.
    Compare {
        /// Where the compared values are read.
        operand: Operand<'a>,
        /// The comparison operator, checked against the attribute's type.
        op: CompareOp,
        /// The comparison literal from the filter.
        value: Value,
    },
    /// `pr`: the operand has at least one non-empty value.
    Present(Operand<'a>),
    /// Both expressions match.
    And(Box<Expr<'a>>, Box<Expr<'a>>),
    /// Either expression matches.
    Or(Box<Expr<'a>>, Box<Expr<'a>>),
    /// The expression does not match.
    Not(Box<Expr<'a>>),
    /// A value filter `attr[inner]`: some element of the complex attribute matches `inner`.
    Any {
        /// The complex attribute whose elements are tested.
        target: Target<'a>,
        /// The element filter; its operands are [`Operand::Element`]s.
        inner: Box<Expr<'a>>,
    },
    /// A path naming no defined attribute: never matches.
    Never,
}

/// Parses and compiles in one step.
pub fn compile_str<'a>(text: &str, rt: &'a ResourceType) -> Result<Expr<'a>> {
    compile(&parse(text)?, rt)
}

/// Compiles a parsed filter against a resource type.
pub fn compile<'a>(f: &Filter, rt: &'a ResourceType) -> Result<Expr<'a>> {
    compile_in(f, rt, None)
}

/// Compiles the filter of a PATCH value path (`emails[type eq "work"]`): its paths name
/// sub-attributes of `target`'s elements.
pub fn compile_element<'a>(f: &Filter, rt: &'a ResourceType, target: Target<'a>) -> Result<Expr<'a>> {
    compile_in(f, rt, Some(target))
}

fn compile_in<'a>(f: &Filter, rt: &'a ResourceType, element: Option<Target<'a>>) -> Result<Expr<'a>> {
    Ok(match f {
        Filter::And(a, b) => Expr::And(Box::new(compile_in(a, rt, element)?), Box::new(compile_in(b, rt, element)?)),
        Filter::Or(a, b) => Expr::Or(Box::new(compile_in(a, rt, element)?), Box::new(compile_in(b, rt, element)?)),
        Filter::Not(a) => Expr::Not(Box::new(compile_in(a, rt, element)?)),
        Filter::Present(p) => match operand(p, rt, element)? {
            Some(o) => Expr::Present(o),
            None => Expr::Never,
        },
        Filter::Compare { path, op, value } => match operand(path, rt, element)? {
            Some(o) => {
                check_op(o.leaf().ty, *op, value, path)?;
                Expr::Compare { operand: o, op: *op, value: value.clone() }
            }
            None => Expr::Never,
        },
        Filter::ValuePath { path, inner } => {
            if element.is_some() {
                return Err(ScimError::invalid_filter("value filters cannot nest"));
            }
            match path.resolve(rt) {
                Some(t) if t.sub.is_none() && t.def.is_complex() => {
                    Expr::Any { target: t, inner: Box::new(compile_in(inner, rt, Some(t))?) }
                }
                Some(_) => {
                    return Err(ScimError::invalid_filter(format!("'{path}' is not a complex attribute; '[...]' needs one")));
                }
                None => Expr::Never,
            }
        }
    })
}

fn operand<'a>(p: &AttrPath, rt: &'a ResourceType, element: Option<Target<'a>>) -> Result<Option<Operand<'a>>> {
    if let Some(el) = element {
        if p.urn.is_some() || p.sub.is_some() {
            return Err(ScimError::invalid_filter(format!("'{p}' inside '[...]' must name a sub-attribute of '{}'", el.def.name)));
        }
        return Ok(el.def.sub_attr(&p.attr).map(Operand::Element));
    }
    Ok(p.resolve(rt).map(Operand::Root))
}

fn check_op(ty: AttrType, op: CompareOp, value: &Value, path: &AttrPath) -> Result<()> {
    use CompareOp::*;
    let ordered = matches!(op, Gt | Ge | Lt | Le);
    let text = matches!(op, Co | Sw | Ew);
    if ty == AttrType::Boolean && (ordered || text) {
        return Err(ScimError::invalid_filter(format!("'{path}' is boolean; only eq and ne apply")));
    }
    if ty == AttrType::Binary && (ordered || text) {
        return Err(ScimError::invalid_filter(format!("'{path}' is binary; only eq, ne and pr apply")));
    }
    if ty == AttrType::Complex {
        return Err(ScimError::invalid_filter(format!("'{path}' is complex; compare one of its sub-attributes")));
    }
    if value.is_null() && op != Eq && op != Ne {
        return Err(ScimError::invalid_filter("null can only be compared with eq or ne"));
    }
    if (value.is_object() || value.is_array()) || (value.is_boolean() && ordered) {
        return Err(ScimError::invalid_filter(format!("invalid comparison value for '{path}'")));
    }
    if ty == AttrType::DateTime && value.is_string() && ordered && crate::time::parse(value.as_str().unwrap_or_default()).is_none() {
        return Err(ScimError::invalid_filter(format!("'{}' is not an RFC 3339 dateTime", value.as_str().unwrap_or_default())));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Evaluation

impl Expr<'_> {
    /// Whether a stored document matches.
    pub fn matches(&self, doc: &Map<String, Value>) -> bool {
        self.eval(doc, None)
    }

    /// Whether one element of a multi-valued attribute matches a value-path filter.
    pub fn matches_element(&self, doc: &Map<String, Value>, element: &Map<String, Value>) -> bool {
        self.eval(doc, Some(element))
    }

    fn eval(&self, doc: &Map<String, Value>, element: Option<&Map<String, Value>>) -> bool {
        match self {
            Expr::Never => false,
            Expr::And(a, b) => a.eval(doc, element) && b.eval(doc, element),
            Expr::Or(a, b) => a.eval(doc, element) || b.eval(doc, element),
            Expr::Not(a) => !a.eval(doc, element),
            Expr::Present(o) => values(doc, element, o).iter().any(|v| present(v)),
            Expr::Compare { operand, op, value } => {
                let vals = values(doc, element, operand);
                if value.is_null() {
                    let any = vals.iter().any(|v| present(v));
                    return if *op == CompareOp::Eq { !any } else { any };
                }
                let leaf = operand.leaf();
                if *op == CompareOp::Ne {
                    // ne: no value equals (absent attributes match, as in most servers)
                    return !vals.iter().any(|v| compare(leaf, CompareOp::Eq, v, value));
                }
                vals.iter().any(|v| compare(leaf, *op, v, value))
            }
            Expr::Any { target, inner } => {
                let container = match target.ext {
                    Some(urn) => doc.get(urn).and_then(Value::as_object),
                    None => Some(doc),
                };
                match container.and_then(|c| c.get(&*target.def.name)) {
                    Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).any(|e| inner.eval(doc, Some(e))),
                    Some(Value::Object(o)) => inner.eval(doc, Some(o)),
                    _ => false,
                }
            }
        }
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

/// The values an operand names in a document, flattening multi-valued attributes.
fn values<'a>(doc: &'a Map<String, Value>, element: Option<&'a Map<String, Value>>, o: &Operand) -> Vec<&'a Value> {
    match o {
        Operand::Element(def) => element.and_then(|e| e.get(&*def.name)).into_iter().collect(),
        Operand::Root(t) => {
            let container = match t.ext {
                Some(urn) => match doc.get(urn).and_then(Value::as_object) {
                    Some(c) => c,
                    None => return Vec::new(),
                },
                None => doc,
            };
            let Some(v) = container.get(&*t.def.name) else {
                return Vec::new();
            };
            let sub = match t.sub {
                Some(s) => Some(&*s.name),
                None if t.def.is_complex() => Some("value"),
                None => None,
            };
            match (v, sub) {
                (Value::Array(items), Some(s)) => items.iter().filter_map(|e| e.get(s)).collect(),
                (Value::Array(items), None) => items.iter().collect(),
                (Value::Object(obj), Some(s)) => obj.get(s).into_iter().collect(),
                (other, _) => vec![other],
            }
        }
    }
}

fn compare(def: &crate::schema::AttrDef, op: CompareOp, actual: &Value, expected: &Value) -> bool {
    use CompareOp::*;
    match def.ty {
        AttrType::Boolean => {
            let a = actual.as_bool();
            let e = match expected {
                Value::Bool(b) => Some(*b),
                Value::String(s) => crate::resource::parse_bool_str(s),
                _ => None,
            };
            a.is_some() && a == e && op == Eq
        }
        AttrType::Integer | AttrType::Decimal => {
            let (Some(a), Some(e)) = (actual.as_f64(), number_of(expected)) else {
                return false;
            };
            ordering_matches(op, a.partial_cmp(&e))
        }
        AttrType::DateTime => {
            let (Some(a), Some(e)) = (actual.as_str().and_then(crate::time::parse), expected.as_str().and_then(crate::time::parse)) else {
                return false;
            };
            ordering_matches(op, Some(a.cmp(&e)))
        }
        _ => {
            let Some(a) = actual.as_str() else {
                return false;
            };
            let e = match expected {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            let (a, e) = if def.case_exact { (a.to_string(), e) } else { (crate::casefold::fold(a), crate::casefold::fold(&e)) };
            match op {
                Co => a.contains(&e),
                Sw => a.starts_with(&e),
                Ew => a.ends_with(&e),
                _ => ordering_matches(op, Some(a.cmp(&e))),
            }
        }
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn ordering_matches(op: CompareOp, ord: Option<Ordering>) -> bool {
    use CompareOp::*;
    let Some(o) = ord else { return false };
    match op {
        Eq => o == Ordering::Equal,
        Ne => o != Ordering::Equal,
        Gt => o == Ordering::Greater,
        Ge => o != Ordering::Less,
        Lt => o == Ordering::Less,
        Le => o != Ordering::Greater,
        Co | Sw | Ew => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Key-lookup planning

/// An indexed equality the store can answer with key reads instead of walking the collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The resource with this `id`.
    Id(String),
    /// A unique attribute of the core schema: userName (users) or displayName (groups), whose
    /// claim is the name's caseless fold; a declared type's own, claimed like an extension's.
    Core {
        /// The attribute's canonical name.
        attr: String,
        /// The value's claim key (case-folded unless the attribute is `caseExact`: for
        /// userName and displayName, their name claim's key).
        key: String,
    },
    /// The resources with this `externalId`.
    ExternalId(String),
    /// A tenant's extension attribute declared unique: its claim (URN, attribute, value key).
    Unique {
        /// The extension schema URN that declares the attribute.
        ext: String,
        /// The attribute's canonical name within the extension.
        attr: String,
        /// The value's claim key (case-folded unless the attribute is `caseExact`).
        key: String,
    },
}

impl Expr<'_> {
    /// The key reads that find every possible match, when the filter allows it: an indexed `eq`
    /// anywhere in an AND chain narrows to that key; an OR of narrowable branches unions them.
    /// The full filter is still evaluated on the candidates.
    pub fn lookups(&self) -> Option<Vec<Lookup>> {
        match self {
            Expr::Compare { operand: Operand::Root(t), op: CompareOp::Eq, value }
                if t.sub.is_none() && t.def.unique && !t.def.multi && t.ext.is_some() =>
            {
                let key = t.def.claim_key(value)?;
                Some(vec![Lookup::Unique { ext: t.ext.unwrap_or_default().to_string(), attr: t.def.name.to_string(), key }])
            }
            Expr::Compare { operand: Operand::Root(t), op: CompareOp::Eq, value: Value::String(s) }
                if t.sub.is_none() && t.ext.is_none() =>
            {
                match &*t.def.name {
                    "id" => Some(vec![Lookup::Id(s.clone())]),
                    "externalId" => Some(vec![Lookup::ExternalId(s.clone())]),
                    attr if t.def.unique && !t.def.multi => {
                        let key = t.def.claim_key(&Value::String(s.clone()))?;
                        Some(vec![Lookup::Core { attr: attr.to_string(), key }])
                    }
                    _ => None,
                }
            }
            Expr::And(a, b) => a.lookups().or_else(|| b.lookups()),
            Expr::Or(a, b) => {
                let mut l = a.lookups()?;
                l.extend(b.lookups()?);
                Some(l)
            }
            Expr::Never => Some(Vec::new()),
            _ => None,
        }
    }
}

/// The sort key of a document for `sortBy` (RFC 7644 §3.4.2.3): the primary (or first) value of
/// multi-valued attributes; lowercased for case-insensitive attributes.
pub fn sort_key(doc: &Map<String, Value>, t: &Target) -> Option<Value> {
    let vals = values(doc, None, &Operand::Root(*t));
    let container = match t.ext {
        Some(urn) => doc.get(urn).and_then(Value::as_object)?,
        None => doc,
    };
    let chosen = if t.def.multi {
        let items = container.get(&*t.def.name)?.as_array()?;
        let idx = items.iter().position(|e| e.get("primary") == Some(&Value::Bool(true))).unwrap_or(0);
        let sub = t.sub.map(|s| &*s.name).unwrap_or("value");
        items.get(idx).and_then(|e| e.get(sub))
    } else {
        vals.first().copied()
    };
    let v = chosen?;
    let leaf = Operand::Root(*t).leaf();
    match v {
        Value::String(s) if !leaf.case_exact => Some(Value::String(crate::casefold::fold(s))),
        other => Some(other.clone()),
    }
}

/// Orders two optional sort keys; absent values sort last.
pub fn cmp_sort_keys(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => match (x, y) {
            (Value::Number(m), Value::Number(n)) => m.as_f64().partial_cmp(&n.as_f64()).unwrap_or(Ordering::Equal),
            (Value::Bool(m), Value::Bool(n)) => m.cmp(n),
            (Value::String(m), Value::String(n)) => match (crate::time::parse(m), crate::time::parse(n)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => m.cmp(n),
            },
            _ => Ordering::Equal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::user_type;
    use serde_json::json;

    fn doc() -> Map<String, Value> {
        json!({
            "id": "u1", "userName": "Ann.Lee@Example.com", "active": false, "externalId": "E-1",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@work.example", "type": "work", "primary": true}, {"value": "ann@home.example", "type": "home"}],
            "meta": {"created": "2026-01-02T03:04:05Z", "lastModified": "2026-02-01T00:00:00Z", "resourceType": "User"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m1"}}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn m(f: &str) -> bool {
        compile_str(f, user_type()).unwrap_or_else(|e| panic!("{f}: {e}")).matches(&doc())
    }

    #[test]
    fn comparisons_follow_case_rules() {
        assert!(m(r#"userName eq "ann.lee@example.com""#));
        assert!(m(r#"UserName Eq "ANN.LEE@example.com""#));
        assert!(!m(r#"externalId eq "e-1""#), "externalId is caseExact");
        assert!(m(r#"externalId eq "E-1""#));
        assert!(m(r#"name.familyName co "e""#));
        assert!(m(r#"name.FamilyName sw "L""#));
        assert!(m(r#"userName ew "EXAMPLE.COM""#));
        assert!(m(r#"userName ne "bob""#));
    }

    #[test]
    fn logic_precedence_and_grouping() {
        assert!(m(r#"userName eq "x" or name.givenName eq "Ann" and active eq false"#));
        assert!(!m(r#"(userName eq "x" or name.givenName eq "Ann") and active eq true"#));
        assert!(m(r#"not (userName eq "x")"#));
        assert!(m(r#"not(active eq true)"#));
    }

    #[test]
    fn value_paths_and_entra_form() {
        assert!(m(r#"emails[type eq "work" and value co "@work"]"#));
        assert!(!m(r#"emails[type eq "home" and value co "@work"]"#));
        assert!(m(r#"emails[type eq "work"].value eq "ann@work.example""#));
        assert!(!m(r#"emails[type eq "home"].value eq "ann@work.example""#));
        assert!(m(r#"emails co "home.example""#));
        assert!(m(r#"emails.type eq "home""#));
    }

    #[test]
    fn presence_dates_booleans_extensions() {
        assert!(m("name.givenName pr"));
        assert!(!m("title pr"));
        assert!(m(r#"meta.created gt "2025-12-31T00:00:00Z""#));
        assert!(m(r#"meta.lastModified le "2026-02-01T00:00:00+00:00""#));
        assert!(m(r#"active eq "False""#));
        assert!(m(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#));
        assert!(m(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#));
        assert!(m(r#"id eq "u1" and manager eq "m1""#));
        assert!(!m(r#"id eq "u1" and manager eq "m2""#));
        assert!(!m(r#"nosuch eq "x""#));
        assert!(m(r#"title eq null"#));
        assert!(m("name.FamilyName eq Lee and userName sw ANN"), "unquoted words, as Microsoft's clients send");
        assert!(m("meta.Created gt 2015-10-10T14:38:21.8617979-07:00"));
    }

    #[test]
    fn rejects_bad_filters_with_invalid_filter() {
        for f in [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "a"#,
            r#"(userName eq "a""#,
            "active gt true",
            r#"userName eq "a" and"#,
            "userName eq (",
            r#"emails[type eq "work""#,
            "name eq \"x\"",
        ] {
            let e = compile_str(f, user_type()).expect_err(f);
            assert_eq!(e.scim_type(), Some(crate::error::ScimType::InvalidFilter), "{f}");
        }
        let deep = format!("{}userName eq \"a\"{}", "(".repeat(200), ")".repeat(200));
        assert!(compile_str(&deep, user_type()).is_err());
    }

    #[test]
    fn plans_key_lookups() {
        let e = compile_str(r#"userName eq "a""#, user_type()).unwrap();
        assert_eq!(e.lookups(), Some(vec![Lookup::Core { attr: "userName".into(), key: "a".into() }]));
        let e = compile_str(r#"id eq "u" and manager.value eq "m""#, user_type()).unwrap();
        assert_eq!(e.lookups(), Some(vec![Lookup::Id("u".into())]));
        let e = compile_str(r#"externalId eq "x" or userName eq "y""#, user_type()).unwrap();
        assert_eq!(e.lookups().map(|l| l.len()), Some(2));
        assert_eq!(compile_str(r#"userName co "a""#, user_type()).unwrap().lookups(), None);
        assert_eq!(compile_str(r#"userName eq "a" or active eq true"#, user_type()).unwrap().lookups(), None);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn string_values_round_trip(v in "[^\"\\\\]{0,30}") {
            let f = parse(&format!("userName eq {}", serde_json::to_string(&v).unwrap())).unwrap();
            match f {
                Filter::Compare { value: Value::String(s), .. } => proptest::prop_assert_eq!(s, v),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }
}
