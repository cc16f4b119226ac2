//! The ids this server makes: ULIDs (sortable, the format JFrog uses for service ids),
//! written in lower case.

/// `u` as this server writes an id: its 26 characters in lower case, in one allocation
/// (`to_string().to_lowercase()` made two and went through the Unicode case tables; a
/// SCIM create takes a key id and a token issue makes a token id).
pub fn lowercase(u: ulid::Ulid) -> String {
    let mut buf = [0u8; ulid::ULID_LEN];
    let s = u.array_to_str(&mut buf);
    s.make_ascii_lowercase();
    s.to_string()
}

/// A new ULID, in lower case.
pub fn new_ulid() -> String {
    lowercase(ulid::Ulid::new())
}

#[cfg(test)]
mod tests {
    /// The same text as the obvious spelling, for ids across the whole range.
    #[test]
    fn lowercase_is_the_ulid_in_lower_case() {
        use rand::Rng;
        let mut rng = rand::rng();
        let edges = [0, 1, u128::MAX, u128::MAX - 1];
        for v in edges
            .into_iter()
            .chain((0..10_000).map(|_| rng.random::<u128>()))
        {
            let u = ulid::Ulid(v);
            assert_eq!(super::lowercase(u), u.to_string().to_lowercase());
        }
        assert_eq!(super::new_ulid().len(), 26);
    }
}
