//! Editing a Debezium `table.include.list` (pure): add or remove plain table names, keep the
//! list's order and every other entry (regular expressions included) as they are.
//!
//! Debezium reads the list as comma-separated regular expressions, each matched against the
//! whole `schema.table`, case-insensitively. lockstep only edits entries that name one table
//! (`public.orders`, or `public\.orders`); a regular expression that matches a table it must
//! add or remove cannot be edited safely (taking the table out of `public\..*` would mean
//! rewriting the operator's expression), so the edit is refused with what to do. An absent or
//! empty list captures every table: lockstep refuses to turn it into a list, and refuses to
//! remove the last entry (an empty list would capture every table of the database).

use std::fmt;

/// Why a list cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeListError {
    /// No list (or an empty one): the connector captures every table.
    Absent { key: String },
    /// A regular expression already covers a table to add or remove.
    CoveredByPattern {
        key: String,
        table: String,
        entry: String,
    },
    /// An entry is not a valid regular expression.
    Unreadable {
        key: String,
        entry: String,
        reason: String,
    },
    /// The edit would leave no entry.
    WouldEmpty { key: String },
    /// A name to add is not `schema.table` of plain identifier characters.
    BadName { key: String, table: String },
}

impl fmt::Display for IncludeListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncludeListError::Absent { key } => write!(
                f,
                "the connector has no {key}, so it captures every table: lockstep edits only an explicit list; set {key} to the pipeline's tables (comma-separated schema.table) and retry"
            ),
            IncludeListError::CoveredByPattern { key, table, entry } => write!(
                f,
                "{key} entry '{entry}' is a regular expression that matches {table}: lockstep cannot add or remove the table without rewriting it; replace the expression by plain table names (or edit it by hand) and retry"
            ),
            IncludeListError::Unreadable { key, entry, reason } => write!(
                f,
                "{key} entry '{entry}' is not a regular expression lockstep can read ({reason}); fix the connector's {key} and retry"
            ),
            IncludeListError::WouldEmpty { key } => write!(
                f,
                "removing the table would leave {key} empty, and an empty list captures every table: delete the connector instead, or add another table first"
            ),
            IncludeListError::BadName { key, table } => write!(
                f,
                "'{table}' cannot be added to {key}: lockstep adds only schema.table names of letters, digits, '_' and '$'"
            ),
        }
    }
}

impl std::error::Error for IncludeListError {}

/// The outcome of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeEdit {
    /// The list to set (the input unchanged when nothing had to change).
    pub list: String,
    pub changed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

fn plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// The table an entry names when it is a plain name (`schema.table`, the dot optionally
/// escaped), else `None`.
fn plain_name(entry: &str) -> Option<String> {
    let unescaped = entry.replace("\\.", ".");
    let (schema, table) = unescaped.split_once('.')?;
    let ok = |s: &str| !s.is_empty() && s.chars().all(plain_char);
    (ok(schema) && ok(table)).then_some(unescaped)
}

/// Whether a regular-expression entry matches the table (anchored, case-insensitive, as
/// Debezium reads it).
fn pattern_matches(key: &str, entry: &str, table: &str) -> Result<bool, IncludeListError> {
    let re = regex::Regex::new(&format!("(?i)^(?:{entry})$")).map_err(|e| {
        IncludeListError::Unreadable {
            key: key.to_string(),
            entry: entry.to_string(),
            reason: e.to_string(),
        }
    })?;
    Ok(re.is_match(table))
}

/// Add `add` and remove `remove` (both `schema.table`) from the list `current` of the key
/// `key`. Idempotent: a table already listed is not added again, one not listed is not
/// removed; applying the result again changes nothing.
pub fn edit_include_list(
    key: &str,
    current: Option<&str>,
    add: &[String],
    remove: &[String],
) -> Result<IncludeEdit, IncludeListError> {
    let absent = || IncludeListError::Absent {
        key: key.to_string(),
    };
    let current = current
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(absent)?;
    let mut entries: Vec<String> = current
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if entries.is_empty() {
        return Err(absent());
    }
    // Every entry must be readable before anything is decided.
    let mut patterns = Vec::new();
    for e in &entries {
        if plain_name(e).is_none() {
            pattern_matches(key, e, "")?;
            patterns.push(e.clone());
        }
    }
    let same = |e: &str, t: &str| plain_name(e).is_some_and(|n| n.eq_ignore_ascii_case(t));
    let covered = |t: &str| -> Result<(), IncludeListError> {
        for p in &patterns {
            if pattern_matches(key, p, t)? {
                return Err(IncludeListError::CoveredByPattern {
                    key: key.to_string(),
                    table: t.to_string(),
                    entry: p.clone(),
                });
            }
        }
        Ok(())
    };
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for t in remove {
        covered(t)?;
        let before = entries.len();
        entries.retain(|e| !same(e, t));
        if entries.len() != before {
            removed.push(t.clone());
        }
    }
    for t in add {
        if plain_name(t).as_deref() != Some(t.as_str()) {
            return Err(IncludeListError::BadName {
                key: key.to_string(),
                table: t.clone(),
            });
        }
        covered(t)?;
        if !entries.iter().any(|e| same(e, t)) {
            entries.push(t.clone());
            added.push(t.clone());
        }
    }
    if entries.is_empty() {
        return Err(IncludeListError::WouldEmpty {
            key: key.to_string(),
        });
    }
    let changed = !added.is_empty() || !removed.is_empty();
    Ok(IncludeEdit {
        list: if changed {
            entries.join(",")
        } else {
            current.to_string()
        },
        changed,
        added,
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "table.include.list";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// (current, add, remove, expected list, changed)
    type EditCase<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, bool);
    /// (current, add, remove, the error expected, text in its message)
    type RefusalCase<'a> = (
        Option<&'a str>,
        &'a [&'a str],
        &'a [&'a str],
        fn(&IncludeListError) -> bool,
        &'a str,
    );

    #[test]
    fn edits_keep_order_and_other_entries_and_are_idempotent() {
        let cases: &[EditCase] = &[
            ("public.a", &["public.b"], &[], "public.a,public.b", true),
            (
                "public.a, inventory\\..*",
                &["public.b"],
                &[],
                "public.a,inventory\\..*,public.b",
                true,
            ),
            (
                "public.a,public.b",
                &["public.b"],
                &[],
                "public.a,public.b",
                false,
            ),
            // Unchanged lists are returned byte for byte.
            (
                "public.a , public.b",
                &["PUBLIC.B"],
                &[],
                "public.a , public.b",
                false,
            ),
            ("public.a,public.b", &[], &["public.a"], "public.b", true),
            ("public\\.a,public.b", &[], &["public.a"], "public.b", true),
            (
                "public.a,public.b",
                &[],
                &["public.c"],
                "public.a,public.b",
                false,
            ),
            (
                "public.c,public.a,public.b",
                &["public.d"],
                &["public.a"],
                "public.c,public.b,public.d",
                true,
            ),
            // A rename: the new name in, the old one out.
            (
                "public.a,public.b",
                &["public.n"],
                &["public.a"],
                "public.b,public.n",
                true,
            ),
        ];
        for (current, add, remove, expected, changed) in cases {
            let edit = edit_include_list(KEY, Some(current), &names(add), &names(remove))
                .unwrap_or_else(|e| panic!("{current}: {e}"));
            assert_eq!(edit.list, *expected, "{current} +{add:?} -{remove:?}");
            assert_eq!(edit.changed, *changed, "{current}");
            // Applying the edit to its own result changes nothing.
            let again =
                edit_include_list(KEY, Some(&edit.list), &names(add), &names(remove)).unwrap();
            assert_eq!(again.list, edit.list, "{current}: second edit");
            assert!(!again.changed, "{current}: second edit");
        }
    }

    #[test]
    fn unsafe_edits_are_refused_with_the_reason() {
        let cases: &[RefusalCase] = &[
            (
                None,
                &["public.b"],
                &[],
                |e| matches!(e, IncludeListError::Absent { .. }),
                "captures every table",
            ),
            (
                Some("  "),
                &["public.b"],
                &[],
                |e| matches!(e, IncludeListError::Absent { .. }),
                "set table.include.list",
            ),
            (
                Some("public.a,public\\..*"),
                &["public.b"],
                &[],
                |e| matches!(e, IncludeListError::CoveredByPattern { .. }),
                "public\\..*",
            ),
            (
                Some("public.a,PUBLIC\\.B.*"),
                &[],
                &["public.b"],
                |e| matches!(e, IncludeListError::CoveredByPattern { .. }),
                "regular expression",
            ),
            (
                Some("public.a,("),
                &["public.b"],
                &[],
                |e| matches!(e, IncludeListError::Unreadable { .. }),
                "'('",
            ),
            (
                Some("public.a"),
                &[],
                &["public.a"],
                |e| matches!(e, IncludeListError::WouldEmpty { .. }),
                "captures every table",
            ),
            (
                Some("public.a"),
                &["public.b;drop"],
                &[],
                |e| matches!(e, IncludeListError::BadName { .. }),
                "public.b;drop",
            ),
        ];
        for (current, add, remove, check, text) in cases {
            let err = edit_include_list(KEY, *current, &names(add), &names(remove))
                .expect_err(&format!("{current:?}"));
            assert!(check(&err), "{current:?}: {err:?}");
            assert!(err.to_string().contains(text), "{current:?}: {err}");
        }
    }

    #[test]
    fn a_pattern_that_does_not_match_the_table_is_kept() {
        let edit = edit_include_list(
            KEY,
            Some("inventory\\..*,public.a"),
            &names(&["public.b"]),
            &names(&["public.a"]),
        )
        .unwrap();
        assert_eq!(edit.list, "inventory\\..*,public.b");
        assert_eq!(edit.added, names(&["public.b"]));
        assert_eq!(edit.removed, names(&["public.a"]));
    }
}
