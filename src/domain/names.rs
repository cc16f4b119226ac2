//! Validation of names and other free-text input.
//!
//! Identity providers send user names that are e-mail addresses or UUIDs, so the rules
//! are permissive about *what* a name looks like and strict only about what can hurt:
//! control and invisible formatting characters (log injection, look-alike names), path
//! separators (names appear in URL paths), surrounding whitespace, and length.

use super::DomainError;
use gatehouse_schemas::PasswordPolicy;

/// User ids are limited to 128 characters, as in Artifactory (seed 002).
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_EMAIL_CHARS: usize = 320;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// argon2 time grows with input; a cap keeps one request from costing seconds.
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn check_name(field: &str, name: &str) -> Result<(), DomainError> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters (got {chars})"),
        ));
    }
    if name.trim() != name {
        return Err(DomainError::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    if let Some(c) = name.chars().find(|c| forbidden(*c)) {
        return Err(DomainError::invalid(
            field,
            format!("must not contain the character U+{:04X}", c as u32),
        ));
    }
    if name == "." || name == ".." {
        return Err(DomainError::invalid(field, "must not be `.` or `..`"));
    }
    Ok(())
}

/// Control characters, path separators, the replacement character U+FFFD (what broken
/// UTF-8 decodes to), and invisible format characters (zero-width
/// spaces, bidirectional overrides, byte-order marks) that make two names look alike.
#[inline]
fn forbidden(c: char) -> bool {
    // Names and e-mails are almost always ASCII: two comparisons per character instead
    // of the Unicode tables (the whole rule for ASCII: C0 controls, DEL, the separators).
    if c.is_ascii() {
        return c.is_ascii_control() || c == '/' || c == '\\';
    }
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFD}')
        || ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// Unicode's Default_Ignorable_Code_Point characters (shown as nothing: `a\u{34F}dmin`
/// looks like `admin`, U+3164 alone like a blank name), the line and paragraph
/// separators, the bidirectional controls and the specials up to U+FFFD.
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFD}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// The rules a name meets when it is *given* to a user, group or role (created or
/// renamed), beyond those every name in a path meets: one spelling per name. A name not
/// in Unicode normal form C (`josé` with a combining accent) was a second user that
/// looked like the first; invisible characters made `a\u{34F}dmin` read as `admin`.
/// Not applied to look-ups: a name an earlier version stored stays reachable (to be
/// read, disabled, deleted).
pub fn validate_new_name(field: &str, name: &str) -> Result<(), DomainError> {
    if name.is_ascii() {
        return Ok(());
    }
    if let Some(c) = name.chars().find(|c| invisible(*c)) {
        return Err(DomainError::invalid(
            field,
            format!(
                "must not contain the invisible character U+{:04X}",
                c as u32
            ),
        ));
    }
    if !unicode_normalization::is_nfc(name) {
        return Err(DomainError::invalid(
            field,
            "must be in Unicode normal form C (composed characters: `é`, not `e` and a combining accent)",
        ));
    }
    // Compatibility forms (fullwidth `ａ`, ligatures, superscripts) read as other letters,
    // and a directory compares them as those: `ａlice` signed in to `alice`'s directory
    // entry as a new user here, past `alice`'s lock or disabled status.
    if !unicode_normalization::is_nfkc(name) {
        return Err(DomainError::invalid(
            field,
            "must not use compatibility characters (fullwidth letters, ligatures): they read as other letters",
        ));
    }
    // `İ` lower-cases to `i` and a combining dot above: `ADMİN` became the user `admi̇n`,
    // which reads as `admin` (normal form C has no composed form to refuse it by).
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, 'i' | 'j') && chars.peek() == Some(&'\u{0307}') {
            return Err(DomainError::invalid(
                field,
                format!(
                    "must not put a dot above the dotted `{c}` (U+0307): it reads as plain `{c}`"
                ),
            ));
        }
    }
    Ok(())
}

/// Free text (a group's description, its external id): at most `max` characters, no
/// control characters but line breaks (`\n`, `\r`: a form's text area sends CRLF) and tabs. In the domain rather than in each
/// handler, so that every way in (v2, the Artifactory API, SCIM) keeps the same rule.
pub fn validate_text(field: &str, value: Option<&str>, max: usize) -> Result<(), DomainError> {
    let Some(v) = value else { return Ok(()) };
    if v.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// What [`validate_text`] would take, made of text from elsewhere (a directory's
/// group description): control characters but line breaks and tabs dropped, cut at
/// `max` characters.
pub fn fit_text(value: &str, max: usize) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .take(max)
        .collect()
}

/// Validate a user name and return its stored, lower-case form.
pub fn normalize_username(field: &str, name: &str) -> Result<String, DomainError> {
    check_name(field, name)?;
    let lower = name.to_lowercase();
    // Some letters lower-case to two characters (`İ`: `i` and a combining dot): the
    // stored form meets the rules too (128 `İ` were stored as 256 characters, and every
    // look-up of that name, its own `uri` included, was then refused).
    if lower.len() != name.len() {
        check_name(field, &lower)?;
    }
    Ok(lower)
}

pub fn validate_group_name(field: &str, name: &str) -> Result<(), DomainError> {
    check_name(field, name)
}

/// A display name that is not a name (a SCIM group's `displayName` after its creation):
/// one line of text (PUT and PATCH stored `""`, `"   "` and NULs) — not empty, no
/// surrounding whitespace, no line break, and free text's rules.
pub fn validate_display_name(field: &str, text: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.trim() != text {
        return Err(DomainError::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    if text.contains(['\n', '\r']) {
        return Err(DomainError::invalid(field, "must be one line"));
    }
    validate_text(field, Some(text), 256)
}

/// A role's name (project or global): a name's rules, at most 64 characters.
pub fn validate_role_name(field: &str, name: &str) -> Result<(), DomainError> {
    check_name(field, name)?;
    validate_new_name(field, name)?;
    if name.chars().count() > 64 {
        return Err(DomainError::invalid(field, "must be at most 64 characters"));
    }
    Ok(())
}

/// An empty string clears the e-mail; anything else must look like an address.
pub fn validate_email(email: &str) -> Result<(), DomainError> {
    if email.is_empty() {
        return Ok(());
    }
    // An ASCII address (nearly all of them) is checked byte by byte: no UTF-8 decoding,
    // and one range test covers whitespace and the forbidden characters.
    let (chars, unfit) = if email.is_ascii() {
        (email.len(), email.bytes().any(unfit_in_ascii_email))
    } else {
        let unfit = email.chars().any(|c| c.is_whitespace() || forbidden(c));
        (email.chars().count(), unfit)
    };
    if chars > MAX_EMAIL_CHARS {
        return Err(DomainError::invalid(
            "email",
            format!("must be at most {MAX_EMAIL_CHARS} characters"),
        ));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !unfit
        }
        None => false,
    };
    if !valid {
        return Err(DomainError::invalid(
            "email",
            format!("`{}` is not an e-mail address", email.escape_debug()),
        ));
    }
    Ok(())
}

/// `c.is_whitespace() || forbidden(c)` for an ASCII `c`: C0 controls, space, DEL and
/// the path separators.
#[inline]
fn unfit_in_ascii_email(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b == b'/' || b == b'\\'
}

/// The password policy when none was set: at least [`MIN_PASSWORD_CHARS`] characters.
pub fn default_password_policy() -> PasswordPolicy {
    PasswordPolicy {
        uppercase: 0,
        lowercase: 0,
        digit: 0,
        special_char: 0,
        length: MIN_PASSWORD_CHARS as u32,
        not_match_old: false,
    }
}

/// Check a new password against `policy` (the one in force: see
/// `domain::settings::password_policy`). `not_match_old` needs the current hash and is
/// checked by the caller, which has it.
pub fn validate_password(password: &str, policy: &PasswordPolicy) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars < policy.length as usize {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {} characters", policy.length),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err(DomainError::invalid(
            "password",
            "must not contain control characters",
        ));
    }
    let count = |f: fn(&char) -> bool| password.chars().filter(f).count();
    let classes: [(u32, usize, &str); 4] = [
        (
            policy.uppercase,
            count(|c| c.is_uppercase()),
            "upper-case letter",
        ),
        (
            policy.lowercase,
            count(|c| c.is_lowercase()),
            "lower-case letter",
        ),
        (policy.digit, count(|c| c.is_numeric()), "digit"),
        (
            policy.special_char,
            count(|c| !c.is_alphanumeric() && !c.is_whitespace()),
            "special character",
        ),
    ];
    for (least, got, what) in classes {
        if got < least as usize {
            let plural = if least == 1 { "" } else { "s" };
            return Err(DomainError::invalid(
                "password",
                format!("must contain at least {least} {what}{plural}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn text_from_elsewhere_is_fitted_to_the_rule() {
        use super::{fit_text, validate_text};
        assert_eq!(fit_text("a\u{0}b\r\nc\td\u{7f}", 100), "ab\r\nc\td");
        assert_eq!(fit_text(&"é".repeat(2000), 1024).chars().count(), 1024);
        for v in ["plain", "two\r\nlines\ttab", &"x".repeat(1024)] {
            assert!(
                validate_text("f", Some(&fit_text(v, 1024)), 1024).is_ok(),
                "{v}"
            );
        }
        assert!(validate_text("f", Some("a\u{1}"), 10).is_err());
        assert!(validate_text("f", Some(&"x".repeat(11)), 10).is_err());
    }

    use super::*;

    /// The rules of a new name are not those of a look-up: a name an earlier version
    /// stored (not in NFC, or with U+FE0F) stays reachable by its path.
    #[test]
    fn new_names_meet_more_than_names_looked_up() {
        for stored in ["jose\u{301}", "ok\u{fe0f}z", "a\u{34f}dmin"] {
            assert!(check_name("name", stored).is_ok(), "{stored:?}");
            assert!(validate_new_name("name", stored).is_err(), "{stored:?}");
        }
        for fine in ["jos\u{e9}", "plain", "\u{540d}\u{524d}"] {
            assert!(validate_new_name("name", fine).is_ok(), "{fine:?}");
        }
    }

    /// The ASCII shortcut of `forbidden` says what the whole rule says, for every `char`.
    #[test]
    fn forbidden_agrees_with_the_whole_rule_everywhere() {
        let whole = |c: char| {
            c.is_control()
                || c == '/'
                || c == '\\'
                || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFD}')
                || ('\u{E000}'..='\u{F8FF}').contains(&c)
        };
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(forbidden(c), whole(c), "U+{:04X}", c as u32);
        }
    }

    /// The byte test of ASCII e-mails is the character test, for every ASCII character.
    #[test]
    fn ascii_email_bytes_are_judged_as_their_characters() {
        for b in 0..=0x7fu8 {
            let c = char::from(b);
            assert_eq!(
                unfit_in_ascii_email(b),
                c.is_whitespace() || forbidden(c),
                "U+{b:04X}"
            );
        }
        assert!(validate_email("a@b.example").is_ok());
        for bad in [
            "a b@example.com",
            "a@exa\tmple.com",
            "a/b@example.com",
            "a@b@c",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        // The same rules outside ASCII: a no-break space is whitespace.
        assert!(validate_email("a\u{a0}b@example.com").is_err());
        assert!(validate_email("josé@example.com").is_ok());
    }

    #[test]
    fn identity_provider_names_are_accepted() {
        for ok in [
            "alice",
            "Bob.Smith@Example.COM",
            "2819c223-7f76-453a-919d-413861904646",
            "o'neil+ci",
            "josé",
            "李雷",
        ] {
            assert!(normalize_username("username", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            normalize_username("username", "Bob@X.io").unwrap(),
            "bob@x.io"
        );
    }

    #[test]
    fn harmful_names_are_rejected() {
        let long = "a".repeat(129);
        for bad in [
            "",
            " a",
            "a ",
            "a/b",
            "a\\b",
            "a\nb",
            "a\u{0}b",
            "a\u{202E}b",
            "a\u{200B}b",
            "..",
            long.as_str(),
        ] {
            assert!(normalize_username("username", bad).is_err(), "{bad:?}");
        }
        assert!(normalize_username("username", &"a".repeat(128)).is_ok());
    }

    #[test]
    fn the_password_policy_names_the_rule_it_breaks() {
        let strict = PasswordPolicy {
            uppercase: 1,
            lowercase: 2,
            digit: 1,
            special_char: 1,
            length: 10,
            not_match_old: false,
        };
        let msg = |p: &str| validate_password(p, &strict).unwrap_err().to_string();
        assert!(msg("Ab1!cdefg").contains("at least 10 characters"));
        assert!(msg("ab1!cdefgh").contains("1 upper-case letter"));
        assert!(msg("AB1!CDEFGh").contains("2 lower-case letters"));
        assert!(msg("Ab!!cdefgh").contains("1 digit"));
        assert!(msg("Ab12cdefgh").contains("1 special character"));
        assert!(msg("Ab12cdefgh").contains("`password`"));
        assert!(validate_password("Ab1!cdefgh", &strict).is_ok());
        let default = default_password_policy();
        assert!(validate_password("short", &default).is_err());
        assert!(validate_password("long-enough", &default).is_ok());
    }
}

/// The classes of repository Artifactory has (`rclass`).
pub const REPOSITORY_CLASSES: &[&str] = &["local", "remote", "virtual", "federated"];

/// Repository keys as Artifactory allows them: letters, digits, `-`, `_`, `.`; at most
/// 64 characters.
pub fn validate_repo_key(field: &str, key: &str) -> Result<(), DomainError> {
    if key.is_empty() || key.len() > 64 {
        return Err(DomainError::invalid(field, "must be 1 to 64 characters"));
    }
    if key == "." || key == ".." {
        return Err(DomainError::invalid(field, "must not be `.` or `..`"));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::invalid(
            field,
            format!(
                "must contain only letters, digits, `-`, `_` and `.` (found `{}`)",
                c.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Environment names (`DEV`, `PROD`, custom), stored upper-case.
pub fn normalize_environment(field: &str, env: &str) -> Result<String, DomainError> {
    if env.is_empty()
        || env.len() > 32
        || !env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(DomainError::invalid(
            field,
            format!(
                "`{}` is not an environment name (1 to 32 letters, digits, `-`, `_`)",
                env.escape_debug()
            ),
        ));
    }
    Ok(env.to_ascii_uppercase())
}

/// Project keys: 2 to 32 lower-case letters and digits, starting with a letter.
pub fn validate_project_key(field: &str, key: &str) -> Result<(), DomainError> {
    let ok = (2..=32).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "`{}` is not a project key (2 to 32 lower-case letters and digits, starting with a letter)",
                key.escape_debug()
            ),
        ))
    }
}

/// Org names and key ids: what a name may be, minus `@` (it separates them when
/// signing in) and at most 64 characters; stored lower-case, because the name a key
/// signs in with is case-insensitive like every user name.
pub fn normalize_key_part(field: &str, v: &str) -> Result<String, DomainError> {
    validate_group_name(field, v)?;
    if v.contains('@') || v.chars().count() > 64 || v.chars().any(char::is_whitespace) {
        return Err(DomainError::invalid(
            field,
            "at most 64 characters, without `@` or whitespace",
        ));
    }
    Ok(v.to_lowercase())
}
