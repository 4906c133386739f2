//! Secret redaction for librdkafka properties (pure; also re-exported as `kafka::redact`).
//!
//! Invariant: a value of a property for which [`is_sensitive`] is true is never written by this
//! crate to a log, an error message or debug output; it appears as [`REDACTED`] instead.

/// What a secret value is shown as.
pub const REDACTED: &str = "***";

/// Substrings (lowercase) that mark a property name as sensitive.
const SENSITIVE_PARTS: &[&str] = &[
    "password",
    "secret",
    "keystore",
    "keytab",
    "token",
    "sasl.oauthbearer",
    "ssl.key",
    "private",
    "credential",
    "sasl.jaas",
];

/// True when the value of property `name` must never be shown (case-insensitive; e.g.
/// `sasl.password`, `ssl.key.password`, `ssl.keystore.location`, `sasl.kerberos.keytab`,
/// `sasl.oauthbearer.config`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`).
pub fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_PARTS.iter().any(|p| lower.contains(p))
}

/// The value to display for property `name`: itself, or [`REDACTED`] when sensitive.
pub fn display_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive(name) {
        REDACTED
    } else {
        value
    }
}

/// Replaces every occurrence of each secret in `text` with [`REDACTED`] (longest secrets
/// first, so a secret containing another is fully hidden). Empty secrets are ignored.
pub fn scrub<'s>(text: &str, secrets: impl IntoIterator<Item = &'s str>) -> String {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s) {
            out = out.replace(s, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_property_names_are_recognised() {
        for name in [
            "sasl.password",
            "SASL.PASSWORD",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.keystore.location",
            "sasl.kerberos.keytab",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.token.endpoint.url",
            "ssl.key.pem",
            "ssl.certificate.private.key",
        ] {
            assert!(is_sensitive(name), "{name} should be sensitive");
        }
        for name in [
            "bootstrap.servers",
            "acks",
            "linger.ms",
            "security.protocol",
            "sasl.mechanism",
        ] {
            assert!(!is_sensitive(name), "{name} should be shown");
        }
    }

    #[test]
    fn display_value_hides_only_secrets() {
        assert_eq!(display_value("sasl.password", "hunter2"), REDACTED);
        assert_eq!(display_value("acks", "all"), "all");
    }

    #[test]
    fn scrub_hides_every_occurrence_longest_first() {
        let text = "bad value 'hunter2' for sasl.password (hunter2, hunter)";
        let out = scrub(text, ["hunter", "hunter2", ""]);
        assert!(!out.contains("hunter"), "{out}");
        assert_eq!(out, "bad value '***' for sasl.password (***, ***)");
    }
}
