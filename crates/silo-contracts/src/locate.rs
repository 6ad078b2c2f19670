//! Where a JSON Pointer lands in a JSON text: the byte offset of an object
//! member's key (or of the value, for array items and the root), so that
//! problems found in a parsed contract point at a line and column.

use std::collections::HashMap;

/// The places of every value of one JSON text, by JSON Pointer.
#[derive(Debug, Default)]
pub struct Locator {
    spots: HashMap<String, usize>,
}

impl Locator {
    /// Indexes `text`, which should be valid JSON; past anything that is
    /// not, the rest is left out.
    pub fn new(text: &str) -> Self {
        let mut scan = Scan {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            spots: HashMap::new(),
            depth: 0,
        };
        scan.value(String::new(), None);
        Locator { spots: scan.spots }
    }

    /// The byte offset of `pointer`'s key (or value), or of its nearest
    /// ancestor that exists, down to the start of the text.
    pub fn offset(&self, pointer: &str) -> usize {
        let mut p = pointer;
        loop {
            if let Some(&at) = self.spots.get(p) {
                return at;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return 0,
            }
        }
    }
}

/// Appends one reference token to a JSON Pointer, escaped (`~0`, `~1`).
pub fn push(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// Decodes a JSON Pointer into its reference tokens.
pub fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

struct Scan<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    spots: HashMap<String, usize>,
    depth: usize,
}

/// Deeper than this, the rest of a value is not indexed (a contract that
/// deep is not one a person reads).
const MAX_DEPTH: usize = 256;

impl Scan<'_> {
    fn ws(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string's text, unescaped; `None` when it is not a string.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return serde_json::from_str(self.text.get(start..self.pos)?).ok();
                }
                _ => self.pos += 1,
            }
        }
        None
    }

    /// Records a value at `pointer`, at its key when it has one. Returns
    /// false when the text stops making sense.
    fn value(&mut self, pointer: String, key: Option<usize>) -> bool {
        self.ws();
        self.spots.insert(pointer.clone(), key.unwrap_or(self.pos));
        self.depth += 1;
        let ok = self.depth <= MAX_DEPTH
            && match self.bytes.get(self.pos) {
                Some(b'{') => {
                    self.pos += 1;
                    self.members(&pointer)
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.items(&pointer)
                }
                Some(b'"') => self.string().is_some(),
                Some(_) => {
                    while self.bytes.get(self.pos).is_some_and(|b| {
                        !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace()
                    }) {
                        self.pos += 1;
                    }
                    true
                }
                None => false,
            };
        self.depth -= 1;
        ok
    }

    fn members(&mut self, pointer: &str) -> bool {
        if self.eat(b'}') {
            return true;
        }
        loop {
            self.ws();
            let at = self.pos;
            let Some(key) = self.string() else {
                return false;
            };
            if !self.eat(b':') || !self.value(push(pointer, &key), Some(at)) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn items(&mut self, pointer: &str) -> bool {
        if self.eat(b']') {
            return true;
        }
        let mut i = 0;
        loop {
            if !self.value(format!("{pointer}/{i}"), None) {
                return false;
            }
            i += 1;
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_land_on_keys_and_items() {
        let text = "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"a/b\": {\"type\": \"string\"},\n    \"list\": [1, {\"x\": 2}]\n  }\n}\n";
        let l = Locator::new(text);
        let at = |p: &str| silo_manifest::line_column(text, l.offset(p));
        assert_eq!(at(""), (1, 1));
        assert_eq!(at("/type"), (2, 3));
        assert_eq!(at("/properties/a~1b"), (4, 5));
        assert_eq!(at("/properties/a~1b/type"), (4, 13));
        assert_eq!(at("/properties/list/1"), (5, 17));
        assert_eq!(at("/properties/list/1/x"), (5, 18));
        // A pointer that is not there falls back to its nearest ancestor.
        assert_eq!(at("/properties/missing/type"), (3, 3));
        assert_eq!(push("/p", "a/b~c"), "/p/a~1b~0c");
        assert_eq!(tokens("/p/a~1b~0c"), vec!["p", "a/b~c"]);
    }

    #[test]
    fn broken_text_keeps_what_came_before() {
        let text = "{\"a\": 1, \"b\": [2,";
        let l = Locator::new(text);
        assert_eq!(l.offset("/a"), 1);
        assert_eq!(l.offset("/b"), 9);
        assert_eq!(l.offset("/b/5"), 9);
    }
}
