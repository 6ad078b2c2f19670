//! What the naming rules share: snake_case and English plurals (seed 002:
//! "Table names: plural, snake_case; columns: snake_case").

/// Lower snake_case: `a-z`, digits and single underscores, starting with a
/// letter.
pub(crate) fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// `OrderItems`, `order-items`, `ORDER ITEMS` -> `order_items`.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    out.trim_matches('_').to_string()
}

/// How `name` is written in the source at byte `at`: PostgreSQL folds an
/// unquoted `createdAt` to `createdat`, but the author wrote camelCase and
/// the naming rules should say so.
pub(crate) fn as_written(text: &str, at: usize, name: &str) -> String {
    match text.get(at..at + name.len()) {
        Some(written) if written != name && written.eq_ignore_ascii_case(name) => written.into(),
        _ => name.into(),
    }
}

/// Words that are plural already or have no plural.
const INVARIANT: &[&str] = &[
    "data",
    "metadata",
    "media",
    "news",
    "series",
    "species",
    "equipment",
    "feedback",
    "information",
    "info",
    "people",
    "children",
    "men",
    "women",
    "criteria",
    "staff",
    "sheep",
    "fish",
    "aircraft",
    "history",
    "settings",
    "analytics",
    "statistics",
    "credentials",
    "stats",
];

/// The plural of the last word of a snake_case name, or `None` when it is
/// plural already.
pub(crate) fn plural(name: &str) -> Option<String> {
    let (head, last) = match name.rsplit_once('_') {
        Some((head, last)) => (format!("{head}_"), last),
        None => (String::new(), name),
    };
    if last.is_empty() || last.chars().all(|c| c.is_ascii_digit()) || INVARIANT.contains(&last) {
        return None;
    }
    let singular_s = ["ss", "us", "is", "sis"].iter().any(|e| last.ends_with(e));
    if last.ends_with('s') && !singular_s {
        return None;
    }
    let consonant_y =
        last.ends_with('y') && !last[..last.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    let word = if consonant_y {
        format!("{}ies", &last[..last.len() - 1])
    } else if let Some(stem) = last.strip_suffix("is") {
        format!("{stem}es")
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| last.ends_with(e))
    {
        format!("{last}es")
    } else if last == "person" {
        "people".into()
    } else if last == "child" {
        "children".into()
    } else {
        format!("{last}s")
    };
    Some(format!("{head}{word}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        for (singular, expected) in [
            ("user", Some("users")),
            ("order_item", Some("order_items")),
            ("category", Some("categories")),
            ("address", Some("addresses")),
            ("status", Some("statuses")),
            ("analysis", Some("analyses")),
            ("box", Some("boxes")),
            ("day", Some("days")),
            ("person", Some("people")),
            ("users", None),
            ("order_items", None),
            ("metadata", None),
            ("user_settings", None),
        ] {
            assert_eq!(plural(singular).as_deref(), expected, "{singular}");
        }
    }

    #[test]
    fn snake_cases() {
        assert!(is_snake_case("order_items2"));
        for bad in [
            "OrderItems",
            "order__items",
            "_x",
            "x_",
            "2x",
            "order-items",
            "",
        ] {
            assert!(!is_snake_case(bad), "{bad}");
        }
        assert_eq!(snake_case("OrderItems"), "order_items");
        assert_eq!(snake_case("order-items"), "order_items");
        assert_eq!(snake_case("userID"), "user_id");
    }
}
