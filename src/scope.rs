//! A token's scope as text: its parts and the groups it names. JFrog writes group names
//! that hold a space or a comma in double quotes
//! (`applied-permissions/groups:"group_1","group 2","group,3"`), so parts are separated
//! by white space *outside* quotes and names by commas outside quotes. Every reader of a
//! scope goes through here: one that split at every space would read a group named
//! `x applied-permissions/admin` as the admin scope.

/// The word of the user scope, the admin scope and the prefix of a groups scope.
pub const USER: &str = "applied-permissions/user";
pub const ADMIN: &str = "applied-permissions/admin";
pub const GROUPS: &str = "applied-permissions/groups:";

/// The parts of `scope`, separated by white space outside double quotes.
pub fn parts(scope: &str) -> Parts<'_> {
    Parts { rest: scope }
}

pub struct Parts<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start();
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        // By bytes, decoding a character only where one is not ASCII: a token issue
        // reads its scope several times, and `char_indices` cost about 2,000
        // instructions a token. White space is `char::is_whitespace`'s, as
        // `split_whitespace` reads it (VT included, NBSP and U+3000 too).
        let bytes = s.as_bytes();
        let mut quoted = false;
        let mut end = 0;
        while end < bytes.len() {
            let b = bytes[end];
            if b < 0x80 {
                if b == b'"' {
                    quoted = !quoted;
                } else if !quoted && matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
                    break;
                }
                end += 1;
            } else {
                let Some(c) = s[end..].chars().next() else {
                    break;
                };
                if !quoted && c.is_whitespace() {
                    break;
                }
                end += c.len_utf8();
            }
        }
        self.rest = &s[end..];
        Some(&s[..end])
    }
}

/// The group names of a groups scope's list (what follows [`GROUPS`]): separated by
/// commas outside quotes, each trimmed, its quotes taken off.
pub fn group_names(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(list);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let end = s.char_indices().find(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c == ','
        });
        let name = match end {
            Some((i, _)) => {
                rest = Some(&s[i + 1..]);
                &s[..i]
            }
            None => {
                rest = None;
                s
            }
        };
        let name = name.trim();
        Some(
            name.strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(name),
        )
    })
}

/// Whether a part's quotes are balanced (a part cut inside quotes is not a scope).
pub fn balanced(part: &str) -> bool {
    part.matches('"').count().is_multiple_of(2)
}

/// A groups scope naming `names`, quoting those that need it (white space or a comma).
/// A name with a double quote in it cannot be written so that it reads back as itself
/// (quoted, `x",admins,"y` reads as three groups): it is left out — the scope grants
/// less, never more.
pub fn groups_part<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from(GROUPS);
    let names = names.into_iter().filter(|n| !n.contains('"'));
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if name.contains(|c: char| c.is_whitespace() || c == ',') {
            out.push('"');
            out.push_str(name);
            out.push('"');
        } else {
            out.push_str(name);
        }
    }
    out
}

/// Whether `scope` has the part `word` (a part, not text inside a quoted group name).
pub fn has(scope: &str, word: &str) -> bool {
    parts(scope).any(|p| p == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_group_names_keep_their_spaces_and_commas() {
        let scope =
            "applied-permissions/user  applied-permissions/groups:\"qa team\",devs,\"a,b\" x";
        let got: Vec<&str> = parts(scope).collect();
        assert_eq!(
            got,
            [
                "applied-permissions/user",
                "applied-permissions/groups:\"qa team\",devs,\"a,b\"",
                "x"
            ]
        );
        let list = got[1].strip_prefix(GROUPS).unwrap();
        assert_eq!(
            group_names(list).collect::<Vec<_>>(),
            ["qa team", "devs", "a,b"]
        );
        assert_eq!(groups_part(["qa team", "devs", "a,b"]), got[1]);
        // Written back, a name reads back as itself, or is left out: never as others.
        for names in [
            vec!["x\",admins,\"y", "devs"],
            vec!["x\" system:livelogs:r \"y"],
            vec!["a b", "c,d", "e"],
        ] {
            let part = groups_part(names.iter().copied());
            let back: Vec<&str> = parts(&part)
                .flat_map(|p| group_names(p.strip_prefix(GROUPS).unwrap_or(p)))
                .filter(|n| !n.is_empty())
                .collect();
            let expected: Vec<&str> = names.iter().copied().filter(|n| !n.contains('"')).collect();
            assert_eq!(back, expected, "{part}");
            assert_eq!(parts(&part).count(), 1, "{part}");
        }
        // A group named like a scope word is a group, not the word.
        let sneaky = "applied-permissions/groups:\"x applied-permissions/admin\"";
        assert!(!has(sneaky, ADMIN));
        assert_eq!(parts(sneaky).count(), 1);
        assert!(balanced(sneaky));
        assert!(!balanced("applied-permissions/groups:\"open"));
        assert_eq!(parts("").count(), 0);
        assert_eq!(parts("   ").count(), 0);
        assert_eq!(group_names("a,,b").collect::<Vec<_>>(), ["a", "", "b"]);
        // White space as `split_whitespace` reads it, outside quotes.
        for scope in [
            "a b\tc\nd\u{0b}e\u{0c}f\rg",
            "a\u{a0}b\u{3000}c  d",
            "é ü\u{2003}ß",
            "",
        ] {
            assert_eq!(
                parts(scope).collect::<Vec<_>>(),
                scope.split_whitespace().collect::<Vec<_>>(),
                "{scope:?}"
            );
        }
        assert_eq!(
            parts("x \"a\u{a0}b c\" y").collect::<Vec<_>>(),
            ["x", "\"a\u{a0}b c\"", "y"]
        );
    }
}
