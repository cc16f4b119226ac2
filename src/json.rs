//! JSON written straight into bytes, byte for byte as serde_json writes the same document
//! (no spaces; a string escaped where serde_json escapes it: control characters, `"` and
//! `\`), for the answers of the hot write paths. Why not serde: these are a few dozen
//! short strings, and serde_json's serialisers escape every string a byte at a time (a
//! JWT is 400 bytes) and go through a map serialiser for every `flatten`; written here
//! they cost about half (issue 18). Each user checks its bytes against serde_json's in a
//! test (`scim::common_user`, the token answer, JWT claims).

/// An object being written into `out`.
pub struct Json<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Json<'a> {
    /// An object, opened.
    pub fn open(out: &'a mut Vec<u8>) -> Json<'a> {
        out.push(b'{');
        Json { out, first: true }
    }

    /// An object already opened in `out`, with some members written unless `empty`.
    pub fn resume(out: &'a mut Vec<u8>, empty: bool) -> Json<'a> {
        Json { out, first: empty }
    }

    pub fn close(self) {
        self.out.push(b'}');
    }

    /// The bytes written so far, for a value this type has no method for (an array,
    /// an object inside, which [`open`](Self::open) writes).
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// `key` (a name that needs no escape), then its value is written.
    pub fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// `"key":"value"`, or nothing when `value` is `None`.
    pub fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.key(key);
            string(self.out, v);
        }
    }

    /// `"key":"value"`, or `"key":null` when `value` is `None`.
    pub fn nullable(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(v) => string(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// `"key":"value"` for a value that needs no escape by construction (a constant, a
    /// time or a number this server formats): not checked byte by byte.
    pub fn plain(&mut self, key: &str, value: &str) {
        debug_assert!(!needs_escape(value), "{value:?}");
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    pub fn bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.key(key);
            self.out
                .extend_from_slice(if v { b"true" } else { b"false" });
        }
    }

    pub fn u64(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.key(key);
            self.out
                .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
    }
}

/// `s` as a JSON string: as it is between quotes when nothing in it needs an escape (the
/// usual case), else as serde_json escapes it.
pub fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether serde_json would escape something in `s`.
fn needs_escape(s: &str) -> bool {
    // A fold, not `any`: without the early exit the check is vectorised.
    s.bytes().fold(false, |esc, b| {
        esc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string, plain or in need of escapes, as serde_json writes it; and an object
    /// of each kind of value.
    #[test]
    fn strings_and_objects_are_serde_jsons() {
        let samples = [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "é ü ☃",
            "\u{7f}",
            "x\u{2028}y",
        ];
        for s in samples {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        let mut out = Vec::new();
        let mut o = Json::open(&mut out);
        o.str("a", Some("x\"y"));
        o.str("skipped", None);
        o.bool("b", Some(false));
        o.u64("n", Some(u64::MAX));
        o.nullable("none", None);
        o.nullable("some", Some("tab\t"));
        o.u64("zero", Some(0));
        o.close();
        let expected = serde_json::json!({"a": "x\"y", "b": false, "n": u64::MAX, "zero": 0, "none": null, "some": "tab\t"});
        assert_eq!(out, serde_json::to_vec(&expected).unwrap());
    }
}
