//! Which changes between two versions of an event type's contract each
//! compatibility level refuses.
//!
//! A contract says which payloads a consumer accepts. Between an old and a
//! new version:
//! - **BACKWARD** (the default): consumers on the new contract read events
//!   written to the old one. Every payload the old contract allows must be
//!   one the new contract allows.
//! - **FORWARD**: consumers on the old contract read events written to the
//!   new one. Every payload the new contract allows must be one the old
//!   contract allows.
//! - **FULL**: both.
//! - **NONE**: anything goes.
//!
//! So one check serves all levels: "does the *reader* accept everything
//! the *writer* allows?", with old as writer and new as reader for
//! BACKWARD, the other way round for FORWARD. It walks both schemas
//! together, property by property and into array items, and reports each
//! place where the reader refuses something the writer allows:
//!
//! | change (old → new) | BACKWARD | FORWARD |
//! |---|---|---|
//! | new required field without a `default` (or an optional one made required) | refused | allowed |
//! | new required field with a `default` | allowed | allowed |
//! | required field removed, or made optional | allowed | refused (unless the old contract gives it a `default`) |
//! | optional field added | allowed | allowed |
//! | field removed where the new contract has `additionalProperties: false` | refused | allowed |
//! | field added where the old contract has `additionalProperties: false` | allowed | refused |
//! | type changed (`string` → `integer`) | refused | refused |
//! | type narrowed (`["string", "null"]` → `"string"`, `number` → `integer`) | refused | allowed |
//! | type widened | allowed | refused |
//! | `enum` narrowed (values removed), `enum` or `const` added | refused | allowed |
//! | `enum` extended (values added), `enum` or `const` removed | allowed | refused |
//! | bound tightened (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`, `maxProperties`, `multipleOf`) or added | refused | allowed |
//! | bound loosened or removed | allowed | refused |
//! | `pattern` or `format` added or changed; `uniqueItems` turned on | refused | allowed (removed: refused) |
//! | `anyOf`/`oneOf` branch that no longer takes what the other side allows | refused | refused |
//! | `not`, `if`/`then`/`else`, `dependentRequired`, `dependentSchemas`, `propertyNames`, `contains`, `patternProperties`, `unevaluated*`, `allOf` added or changed (not compared in depth) | refused | allowed (removed: refused) |
//!
//! Two assumptions, the ones schema registries make for JSON:
//! - A publisher writes only the properties its contract declares. Without
//!   it, adding any optional field to an open object (no
//!   `additionalProperties: false`) would break BACKWARD, because old
//!   events *could* have carried that name with another type. A contract
//!   whose `additionalProperties` is a schema (a map) does declare other
//!   names, and those are compared.
//! - A consumer fills a missing property from its contract's `default`, so
//!   a required field with a default is no burden on old events. The
//!   worker checks payloads the same way (see [`crate::Contract::check`]).
//!
//! Local `$ref`s (`#/$defs/...`) are followed on both sides; a change that
//! cannot be compared in depth is reported rather than passed.

use std::collections::HashSet;

use serde_json::{Map, Value};
use silo_manifest::Compatibility;

use crate::locate::push;

/// Which guarantee a change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// New readers, old events.
    Backward,
    /// Old readers, new events.
    Forward,
}

impl Direction {
    /// `BACKWARD` or `FORWARD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Backward => "BACKWARD",
            Direction::Forward => "FORWARD",
        }
    }

    /// What the guarantee promises, for messages.
    pub fn promise(self) -> &'static str {
        match self {
            Direction::Backward => {
                "consumers on the new contract read events written to the old one"
            }
            Direction::Forward => {
                "consumers on the old contract read events written to the new one"
            }
        }
    }
}

/// One breaking change between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Where in the payload: `victim.character_id`, `attackers[].ship_type_id`,
    /// or empty for the payload itself.
    pub path: String,
    /// Where in the new version's schema to point: the changed keyword or
    /// property, or (for something removed) its nearest parent there.
    pub pointer: String,
    /// What changed, from the old version to the new.
    pub message: String,
    /// The guarantees it breaks (both under FULL when the change breaks
    /// both), in order.
    pub breaks: Vec<Direction>,
}

impl Break {
    /// `victim.character_id` or `the payload`.
    pub fn place(&self) -> String {
        place(&self.path)
    }
}

fn place(path: &str) -> String {
    if path.is_empty() {
        "the payload".into()
    } else {
        format!("`{path}`")
    }
}

/// The changes from `old` to `new` that `level` refuses, in schema order.
pub fn check(old: &Value, new: &Value, level: Compatibility) -> Vec<Break> {
    let directions: &[Direction] = match level {
        Compatibility::Backward => &[Direction::Backward],
        Compatibility::Forward => &[Direction::Forward],
        Compatibility::Full => &[Direction::Backward, Direction::Forward],
        Compatibility::None => &[],
    };
    let mut out: Vec<Break> = Vec::new();
    for &dir in directions {
        for b in breaks(old, new, dir) {
            match out
                .iter_mut()
                .find(|o| o.path == b.path && o.pointer == b.pointer && o.message == b.message)
            {
                Some(same) => same.breaks.extend(b.breaks),
                None => out.push(b),
            }
        }
    }
    out
}

/// The changes from `old` to `new` that break `dir`.
pub fn breaks(old: &Value, new: &Value, dir: Direction) -> Vec<Break> {
    let (writer, reader) = match dir {
        Direction::Backward => (old, new),
        Direction::Forward => (new, old),
    };
    let mut walk = Walk {
        dir,
        w_root: writer,
        r_root: reader,
        out: Vec::new(),
        seen: HashSet::new(),
    };
    let at = At {
        path: String::new(),
        w: Some(String::new()),
        r: Some(String::new()),
        new: String::new(),
    };
    walk.node(writer, reader, &at, 0);
    walk.out
}

/// Follows a local `$ref` (`#/...`) to what it points at, a few times
/// over; anything else is returned as it is.
pub(crate) fn resolve<'v>(root: &'v Value, node: &'v Value) -> &'v Value {
    resolve_at(root, node, None).0
}

fn resolve_at<'v>(
    root: &'v Value,
    mut node: &'v Value,
    mut pointer: Option<String>,
) -> (&'v Value, Option<String>) {
    for _ in 0..MAX_REFS {
        let Some(target) = node.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(fragment) = target.strip_prefix('#') else {
            break;
        };
        if !(fragment.is_empty() || fragment.starts_with('/')) {
            break;
        }
        match root.pointer(fragment) {
            Some(found) => {
                node = found;
                pointer = Some(fragment.to_string());
            }
            None => break,
        }
    }
    (node, pointer)
}

/// How many `$ref`s in a row are followed.
const MAX_REFS: usize = 16;
/// How deep the walk goes (recursive contracts stop here).
const MAX_DEPTH: usize = 64;

/// Lower bounds: the reader refuses more when its value is higher.
const LOWER: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];
/// Upper bounds: the reader refuses more when its value is lower.
const UPPER: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];
/// Keywords compared as a whole: a reader that has one the writer does not
/// have the same is reported.
const OPAQUE: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "propertyNames",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
];

/// Where the walk stands: the payload path, each side's JSON Pointer
/// (`None` where a side stands in for a node it does not have: `true`, an
/// `additionalProperties` schema), and the new version's nearest pointer.
#[derive(Clone)]
struct At {
    path: String,
    w: Option<String>,
    r: Option<String>,
    new: String,
}

struct Walk<'a> {
    dir: Direction,
    w_root: &'a Value,
    r_root: &'a Value,
    out: Vec<Break>,
    /// Pairs of (writer, reader) pointers already compared: recursive
    /// `$ref`s stop the second time round.
    seen: HashSet<(String, String)>,
}

static ANY: Value = Value::Bool(true);
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Walk<'a> {
    fn report(&mut self, at: &At, pointer: Option<String>, message: String) {
        self.out.push(Break {
            path: at.path.clone(),
            pointer: pointer.unwrap_or_else(|| at.new.clone()),
            message,
            breaks: vec![self.dir],
        });
    }

    /// `(old, new)` from `(writer, reader)`.
    fn old_new<T>(&self, w: T, r: T) -> (T, T) {
        match self.dir {
            Direction::Backward => (w, r),
            Direction::Forward => (r, w),
        }
    }

    /// The new side's pointer under `at` to `token`s, if the new side has
    /// that node.
    fn new_pointer(
        &self,
        at: &At,
        wm: &Map<String, Value>,
        rm: &Map<String, Value>,
        tokens: &[&str],
    ) -> Option<String> {
        let (side, base) = match self.dir {
            Direction::Backward => (rm, at.r.as_ref()?),
            Direction::Forward => (wm, at.w.as_ref()?),
        };
        let (first, rest) = tokens.split_first()?;
        let mut node = side.get(*first)?;
        let mut p = push(base, first);
        for t in rest {
            node = match node {
                Value::Object(m) => m.get(*t)?,
                Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
                _ => return None,
            };
            p = push(&p, t);
        }
        Some(p)
    }

    fn child(&self, at: &At, path: String, w: Option<String>, r: Option<String>) -> At {
        let new = match self.dir {
            Direction::Backward => r.clone(),
            Direction::Forward => w.clone(),
        }
        .unwrap_or_else(|| at.new.clone());
        At { path, w, r, new }
    }

    /// Compares a writer node with a reader node.
    fn node(&mut self, w: &Value, r: &Value, at: &At, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let (w, wp) = resolve_at(self.w_root, w, at.w.clone());
        let (r, rp) = resolve_at(self.r_root, r, at.r.clone());
        if let (Some(wp), Some(rp)) = (&wp, &rp)
            && !self.seen.insert((wp.clone(), rp.clone()))
        {
            return;
        }
        let at = &self.child(at, at.path.clone(), wp, rp);
        match (w, r) {
            (Value::Bool(false), _) | (_, Value::Bool(true)) => return,
            (_, Value::Bool(false)) => {
                let (old, new) = self.old_new("allowed", "forbidden (`false`)");
                self.report(at, None, format!("{} was {old}, is {new}", at.place()));
                return;
            }
            _ => {}
        }
        let wm = w.as_object().unwrap_or(&EMPTY);
        let rm = r.as_object().unwrap_or(&EMPTY);
        if let Some((_, wb)) = one_of(wm) {
            // The writer allows any of its branches (each with the
            // keywords beside them): the reader must take each.
            for b in wb {
                let piece = merged(wm, resolve(self.w_root, b));
                let a = self.child(at, at.path.clone(), None, at.r.clone());
                self.node(&piece, r, &a, depth + 1);
            }
            return;
        }
        if !self.types(wm, rm, at) {
            return;
        }
        self.choices(wm, rm, at);
        self.bounds(wm, rm, at);
        self.opaque(wm, rm, at);
        self.all_of(wm, rm, at, depth);
        self.reader_branches(wm, rm, at);
        if could_be(wm, "object") && could_be(rm, "object") {
            self.object(wm, rm, at, depth);
        }
        if could_be(wm, "array") && could_be(rm, "array") {
            self.array(wm, rm, at, depth);
        }
    }

    /// `type`. Returns false when no type of the writer's is left, so the
    /// rest of the node is not worth comparing.
    fn types(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At) -> bool {
        let Some(rt) = types(rm) else {
            return true;
        };
        let wt = types(wm).or_else(|| value_types(wm));
        let refused: Vec<&str> = match &wt {
            None => vec!["any"],
            Some(wt) => wt.iter().copied().filter(|t| !accepts(&rt, t)).collect(),
        };
        if refused.is_empty() {
            return true;
        }
        let show = |t: &Option<Vec<&str>>| match t {
            None => "any type".to_string(),
            Some(t) if t.len() == 1 => format!("`{}`", t[0]),
            Some(t) => format!("`[{}]`", t.join(", ")),
        };
        let (old, new) = self.old_new(show(&wt), show(&Some(rt.clone())));
        let pointer = self.new_pointer(at, wm, rm, &["type"]);
        self.report(
            at,
            pointer,
            format!("{}: type changed from {old} to {new}", at.place()),
        );
        wt.is_none_or(|wt| wt.iter().any(|t| accepts(&rt, t)))
    }

    /// `enum` and `const`.
    fn choices(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At) {
        let Some(rc) = choices(rm) else {
            return;
        };
        let keyword = if rm.contains_key("enum") {
            "enum"
        } else {
            "const"
        };
        let other = if keyword == "enum" { "const" } else { "enum" };
        let pointer = self
            .new_pointer(at, wm, rm, &[keyword])
            .or_else(|| self.new_pointer(at, wm, rm, &[other]));
        let message = match choices(wm) {
            None => match self.dir {
                Direction::Backward => format!(
                    "{}: values restricted to {} (`{keyword}` added)",
                    at.place(),
                    list(&rc)
                ),
                Direction::Forward => format!(
                    "{}: no longer restricted to {} (`{keyword}` removed)",
                    at.place(),
                    list(&rc)
                ),
            },
            Some(wc) => {
                let missing: Vec<&Value> = wc.iter().filter(|v| !rc.contains(v)).copied().collect();
                if missing.is_empty() {
                    return;
                }
                match self.dir {
                    Direction::Backward => {
                        format!("{}: enum narrowed: {} removed", at.place(), list(&missing))
                    }
                    Direction::Forward => {
                        format!("{}: enum extended: {} added", at.place(), list(&missing))
                    }
                }
            }
        };
        self.report(at, pointer, message);
    }

    /// Bounds, `multipleOf`, `pattern`, `format`, `uniqueItems`, each only
    /// where the writer can produce the type it applies to.
    fn bounds(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At) {
        let (w, r) = (wm, rm);
        for (keywords, tighter) in [
            (LOWER, std::cmp::Ordering::Greater),
            (UPPER, std::cmp::Ordering::Less),
        ] {
            for &k in keywords {
                if !could_be(wm, applies_to(k)) {
                    continue;
                }
                let Some(rv) = rm.get(k) else { continue };
                let wv = wm.get(k);
                let stricter = match (wv.and_then(Value::as_f64), rv.as_f64()) {
                    (_, None) => wv != Some(rv),
                    (None, Some(_)) => true,
                    (Some(a), Some(b)) => b.partial_cmp(&a) == Some(tighter),
                };
                if stricter {
                    self.changed(at, w, r, k, wv, Some(rv));
                }
            }
        }
        if could_be(wm, "number")
            && let Some(rv) = rm.get("multipleOf")
        {
            let wv = wm.get("multipleOf");
            let divides = match (wv.and_then(Value::as_f64), rv.as_f64()) {
                (Some(a), Some(b)) if b != 0.0 => ((a / b) - (a / b).round()).abs() < 1e-9,
                _ => false,
            };
            if !divides {
                self.changed(at, w, r, "multipleOf", wv, Some(rv));
            }
        }
        for k in ["pattern", "format"] {
            if could_be(wm, "string")
                && let Some(rv) = rm.get(k)
                && wm.get(k) != Some(rv)
            {
                self.changed(at, w, r, k, wm.get(k), Some(rv));
            }
        }
        if could_be(wm, "array")
            && rm.get("uniqueItems") == Some(&Value::Bool(true))
            && wm.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.changed(
                at,
                w,
                r,
                "uniqueItems",
                wm.get("uniqueItems"),
                rm.get("uniqueItems"),
            );
        }
    }

    /// Reports `keyword` changed from the writer's value to the reader's.
    fn changed(
        &mut self,
        at: &At,
        wm: &Map<String, Value>,
        rm: &Map<String, Value>,
        keyword: &str,
        wv: Option<&Value>,
        rv: Option<&Value>,
    ) {
        let (old, new) = self.old_new(wv, rv);
        let show = |v: Option<&Value>| v.map_or("none".to_string(), |v| format!("`{v}`"));
        let pointer = self.new_pointer(at, wm, rm, &[keyword]);
        self.report(
            at,
            pointer,
            format!(
                "{}: `{keyword}` changed from {} to {}",
                at.place(),
                show(old),
                show(new)
            ),
        );
    }

    /// Keywords not compared in depth: the reader having one the writer
    /// does not have the same is reported.
    fn opaque(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At) {
        for &k in OPAQUE {
            let Some(rv) = rm.get(k) else { continue };
            if wm.get(k) == Some(rv) {
                continue;
            }
            let (old, new) = self.old_new(wm.get(k), Some(rv));
            let what = match (old, new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let pointer = self.new_pointer(at, wm, rm, &[k]);
            self.report(
                at,
                pointer,
                format!(
                    "{}: `{k}` {what}; silo does not compare `{k}` in depth, so it cannot show the change keeps {} compatibility",
                    at.place(),
                    self.dir.as_str()
                ),
            );
        }
    }

    /// `allOf`: compared branch by branch when both sides have as many;
    /// any other change to it is reported.
    fn all_of(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At, depth: usize) {
        // allOf: compared branch by branch when both have as many.
        match (
            wm.get("allOf").and_then(Value::as_array),
            rm.get("allOf").and_then(Value::as_array),
        ) {
            (Some(wa), Some(ra)) if wa.len() == ra.len() => {
                for (i, (wb, rb)) in wa.iter().zip(ra).enumerate() {
                    let i = i.to_string();
                    let a = self.child(
                        at,
                        at.path.clone(),
                        at.w.as_ref().map(|p| push(&push(p, "allOf"), &i)),
                        at.r.as_ref().map(|p| push(&push(p, "allOf"), &i)),
                    );
                    self.node(wb, rb, &a, depth + 1);
                }
            }
            (_, Some(_)) if wm.get("allOf") != rm.get("allOf") => {
                let (old, new) = self.old_new(wm.get("allOf"), rm.get("allOf"));
                let what = if old.is_none() {
                    "added"
                } else if new.is_none() {
                    "removed"
                } else {
                    "changed"
                };
                let pointer = self.new_pointer(at, wm, rm, &["allOf"]);
                self.report(
                    at,
                    pointer,
                    format!(
                        "{}: `allOf` {what}; silo compares `allOf` only branch by branch, so it cannot show the change keeps {} compatibility",
                        at.place(),
                        self.dir.as_str()
                    ),
                );
            }
            _ => {}
        }
    }

    /// The reader's `anyOf` or `oneOf`: each thing the writer allows must
    /// fit one of its branches (with the keywords beside them).
    fn reader_branches(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At) {
        let Some((keyword, rb)) = one_of(rm) else {
            return;
        };
        for piece in split_types(wm) {
            let fits = rb.iter().any(|b| {
                let branch = merged(rm, resolve(self.r_root, b));
                fits(&piece, &branch, self.w_root, self.r_root, self.dir)
            });
            if !fits {
                let (writer, reader) = self.old_new(("old", "new"), ("new", "old")).0;
                let pointer = self.new_pointer(at, wm, rm, &[keyword]);
                self.report(
                    at,
                    pointer,
                    format!(
                        "{}: a value the {writer} contract allows fits no branch of the {reader} contract's `{keyword}`",
                        at.place()
                    ),
                );
                return;
            }
        }
    }

    fn object(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At, depth: usize) {
        let wprops = wm
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let rprops = rm
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let wreq = strings(wm.get("required"));
        let rreq = strings(rm.get("required"));
        let field = |name: &str| {
            if at.path.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", at.path)
            }
        };
        // Required by the reader, not by the writer.
        for name in rreq.iter().filter(|n| !wreq.contains(n)) {
            let has_default = rprops
                .get(*name)
                .map(|p| resolve(self.r_root, p))
                .is_some_and(|p| p.get("default").is_some());
            if has_default {
                continue;
            }
            let declared_by_writer = wprops.contains_key(*name);
            let message = match self.dir {
                Direction::Backward if declared_by_writer => {
                    format!("`{}` became required, without a default", field(name))
                }
                Direction::Backward => {
                    format!("new required field `{}` without a default", field(name))
                }
                Direction::Forward if declared_by_writer => {
                    format!("`{}` is no longer required", field(name))
                }
                Direction::Forward => format!("required field `{}` was removed", field(name)),
            };
            let pointer = self
                .new_pointer(at, wm, rm, &["properties", name])
                .or_else(|| self.new_pointer(at, wm, rm, &["required"]))
                .or_else(|| self.new_pointer(at, wm, rm, &["properties"]));
            let a = At {
                path: field(name),
                ..at.clone()
            };
            self.report(&a, pointer, message);
        }
        let r_additional = rm.get("additionalProperties");
        let w_additional = wm.get("additionalProperties").filter(|a| a.is_object());
        // Each property the writer declares.
        for (name, wsub) in wprops {
            let path = field(name);
            let wp = at.w.as_ref().map(|p| push(&push(p, "properties"), name));
            if let Some(rsub) = rprops.get(name) {
                let rp = at.r.as_ref().map(|p| push(&push(p, "properties"), name));
                let a = self.child(at, path, wp, rp);
                self.node(wsub, rsub, &a, depth + 1);
                continue;
            }
            if rm.contains_key("patternProperties") {
                // Names matching a pattern are the pattern's: not compared.
                continue;
            }
            match r_additional {
                Some(Value::Bool(false)) => {
                    let message = match self.dir {
                        Direction::Backward => format!(
                            "field `{path}` was removed, and the new contract allows no other properties (`additionalProperties: false`)"
                        ),
                        Direction::Forward => format!(
                            "new field `{path}` is refused by the old contract, which allows no other properties (`additionalProperties: false`)"
                        ),
                    };
                    let pointer = self
                        .new_pointer(at, wm, rm, &["properties", name])
                        .or_else(|| self.new_pointer(at, wm, rm, &["additionalProperties"]));
                    let a = At { path, ..at.clone() };
                    self.report(&a, pointer, message);
                }
                Some(rsub @ Value::Object(_)) => {
                    let rp = at.r.as_ref().map(|p| push(p, "additionalProperties"));
                    let a = self.child(at, path, wp, rp);
                    self.node(wsub, rsub, &a, depth + 1);
                }
                _ => {}
            }
        }
        // A writer whose other properties are a map: they are written.
        if let Some(wadd) = w_additional {
            let wp = at.w.as_ref().map(|p| push(p, "additionalProperties"));
            for (name, rsub) in rprops.iter().filter(|(n, _)| !wprops.contains_key(*n)) {
                let rp = at.r.as_ref().map(|p| push(&push(p, "properties"), name));
                let a = self.child(at, field(name), wp.clone(), rp);
                self.node(wadd, rsub, &a, depth + 1);
            }
            match r_additional {
                Some(Value::Bool(false)) => {
                    let (old, new) = self.old_new("a map of other properties", "`false`");
                    let pointer = self.new_pointer(at, wm, rm, &["additionalProperties"]);
                    self.report(
                        at,
                        pointer,
                        format!(
                            "{}: `additionalProperties` changed from {old} to {new}",
                            at.place()
                        ),
                    );
                }
                Some(radd @ Value::Object(_)) => {
                    let rp = at.r.as_ref().map(|p| push(p, "additionalProperties"));
                    let a = self.child(at, field("*"), wp, rp);
                    self.node(wadd, radd, &a, depth + 1);
                }
                _ => {}
            }
        }
        // patternProperties: the same patterns compared; others not.
        let wpat = wm
            .get("patternProperties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let rpat = rm
            .get("patternProperties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        for (pattern, rsub) in rpat {
            match wpat.get(pattern) {
                Some(wsub) => {
                    let a = self.child(
                        at,
                        field(&format!("/{pattern}/")),
                        at.w.as_ref()
                            .map(|p| push(&push(p, "patternProperties"), pattern)),
                        at.r.as_ref()
                            .map(|p| push(&push(p, "patternProperties"), pattern)),
                    );
                    self.node(wsub, rsub, &a, depth + 1);
                }
                None => {
                    let what = self.old_new("added", "removed").0;
                    let pointer = self
                        .new_pointer(at, wm, rm, &["patternProperties", pattern])
                        .or_else(|| self.new_pointer(at, wm, rm, &["patternProperties"]));
                    self.report(
                        at,
                        pointer,
                        format!(
                            "{}: `patternProperties` `{pattern}` {what}; silo does not match patterns against names, so it cannot show the change keeps {} compatibility",
                            at.place(),
                            self.dir.as_str()
                        ),
                    );
                }
            }
        }
    }

    fn array(&mut self, wm: &Map<String, Value>, rm: &Map<String, Value>, at: &At, depth: usize) {
        // Tuples: `prefixItems` (2020-12) or an array `items` (older drafts).
        let (wt, wtk) = tuple(wm);
        let (rt, rtk) = tuple(rm);
        let (wr, wrk) = rest_items(wm);
        let (rr, rrk) = rest_items(rm);
        let len = wt.map_or(0, Vec::len).max(rt.map_or(0, Vec::len));
        for i in 0..len {
            let path = format!("{}[{i}]", at.path);
            let idx = i.to_string();
            let (wi, wp) = match wt.and_then(|t| t.get(i)) {
                Some(v) => (v, at.w.as_ref().map(|p| push(&push(p, wtk), &idx))),
                None => (
                    wr.unwrap_or(&ANY),
                    at.w.as_ref().filter(|_| wr.is_some()).map(|p| push(p, wrk)),
                ),
            };
            let (ri, rp) = match rt.and_then(|t| t.get(i)) {
                Some(v) => (v, at.r.as_ref().map(|p| push(&push(p, rtk), &idx))),
                None => (
                    rr.unwrap_or(&ANY),
                    at.r.as_ref().filter(|_| rr.is_some()).map(|p| push(p, rrk)),
                ),
            };
            let a = self.child(at, path, wp, rp);
            self.node(wi, ri, &a, depth + 1);
        }
        if let Some(ri) = rr {
            let wi = wr.unwrap_or(&ANY);
            let a = self.child(
                at,
                format!("{}[]", at.path),
                at.w.as_ref().filter(|_| wr.is_some()).map(|p| push(p, wrk)),
                at.r.as_ref().map(|p| push(p, rrk)),
            );
            self.node(wi, ri, &a, depth + 1);
        }
    }
}

/// A tuple's items: `prefixItems` (2020-12) or an array `items` (older
/// drafts), with the keyword.
fn tuple(m: &Map<String, Value>) -> (Option<&Vec<Value>>, &'static str) {
    match (m.get("prefixItems"), m.get("items")) {
        (Some(Value::Array(t)), _) => (Some(t), "prefixItems"),
        (_, Some(Value::Array(t))) => (Some(t), "items"),
        _ => (None, ""),
    }
}

/// The schema of items past the tuple (all items when there is none),
/// with the keyword.
fn rest_items(m: &Map<String, Value>) -> (Option<&Value>, &'static str) {
    match (m.get("items"), m.get("additionalItems")) {
        (Some(Value::Array(_)), a) => (a, "additionalItems"),
        (Some(i), _) => (Some(i), "items"),
        _ => (None, ""),
    }
}

impl At {
    fn place(&self) -> String {
        place(&self.path)
    }
}

/// Whether `piece` (a writer's) fits `branch` (a reader's) with no break.
fn fits(piece: &Value, branch: &Value, w_root: &Value, r_root: &Value, dir: Direction) -> bool {
    let mut walk = Walk {
        dir,
        w_root,
        r_root,
        out: Vec::new(),
        seen: HashSet::new(),
    };
    let at = At {
        path: String::new(),
        w: None,
        r: None,
        new: String::new(),
    };
    walk.node(piece, branch, &at, 0);
    walk.out.is_empty()
}

/// A node's `anyOf` or `oneOf`, with the keyword.
fn one_of(m: &Map<String, Value>) -> Option<(&'static str, &Vec<Value>)> {
    ["anyOf", "oneOf"]
        .into_iter()
        .find_map(|k| m.get(k).and_then(Value::as_array).map(|b| (k, b)))
}

/// A node's siblings with one of its branches over them (branch wins),
/// without the branch keywords.
fn merged(siblings: &Map<String, Value>, branch: &Value) -> Value {
    let mut m: Map<String, Value> = siblings
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "anyOf" | "oneOf"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match branch {
        Value::Object(b) => {
            for (k, v) in b {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// A node with several types as one node per type (so each can find its
/// reader branch); a node of one type or none as itself.
fn split_types(m: &Map<String, Value>) -> Vec<Value> {
    let plain: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "anyOf" | "oneOf"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match types(m) {
        Some(t) if t.len() > 1 => t
            .iter()
            .map(|t| {
                let mut one = plain.clone();
                one.insert("type".into(), Value::String(t.to_string()));
                Value::Object(one)
            })
            .collect(),
        _ => vec![Value::Object(plain)],
    }
}

/// The node's `type`s, `None` for any.
fn types(m: &Map<String, Value>) -> Option<Vec<&str>> {
    match m.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// The types of a node's `enum` or `const` values, when it has no `type`.
fn value_types(m: &Map<String, Value>) -> Option<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for v in choices(m)? {
        let t = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Some(out)
}

/// Whether a reader of types `rt` accepts values of type `t`.
fn accepts(rt: &[&str], t: &str) -> bool {
    rt.contains(&t) || (t == "integer" && rt.contains(&"number"))
}

/// Whether a node can hold a value of type `t` (`number` covers `integer`).
fn could_be(m: &Map<String, Value>, t: &str) -> bool {
    types(m).is_none_or(|ts| {
        ts.iter()
            .any(|x| *x == t || (t == "number" && *x == "integer"))
    })
}

/// The type a bound keyword applies to.
fn applies_to(keyword: &str) -> &'static str {
    match keyword {
        "minLength" | "maxLength" => "string",
        "minItems" | "maxItems" => "array",
        "minProperties" | "maxProperties" => "object",
        _ => "number",
    }
}

/// The values `enum` or `const` allow, `None` for any.
fn choices(m: &Map<String, Value>) -> Option<Vec<&Value>> {
    if let Some(c) = m.get("const") {
        return Some(vec![c]);
    }
    m.get("enum")
        .and_then(Value::as_array)
        .map(|e| e.iter().collect())
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn list(values: &[&Value]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
