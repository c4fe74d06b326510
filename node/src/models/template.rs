//! Placeholder templates for model/truth endpoints and command arguments, compatible with the
//! Allora off-chain node.
//!
//! Placeholders are `{Name}` where `Name` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`):
//!
//! | placeholder | value | Allora's meaning |
//! |---|---|---|
//! | `{TopicId}` | the topic id | the topic id |
//! | `{Epoch}`, `{BlockHeight}` | the epoch being served | the nonce's block height: both identify the request round |
//! | `{EpochStartMs}` | start of that epoch, Unix ms | — |
//! | `{Timestamp}` | start of that epoch, Unix seconds | the block time of the nonce |
//! | `{Token}` | the `Token` param if configured, else the topic's `token` (e.g. `ETH`) | the `Token` parameter |
//! | any name in the spec's `params` | its static value | Allora's extra parameters |
//!
//! `Token` is the one built-in name `params` may set (as in Allora's worker `parameters`); the
//! other built-in names are reserved. An unknown `{Name}` is an error when the template is
//! built (catches typos). Braces that do not enclose an identifier (e.g. JSON in a command
//! argument) are kept literally. In URLs the substituted values are percent-encoded (RFC 3986
//! unreserved characters pass through).
//!
//! A topic's token comes from the network, not from the operator, so it is checked again here
//! ([`chorus_protocol::topic::check_token`]: letters, digits, `_`, `-`, no leading `-`): it can
//! neither start a command-line option nor carry a path or host. A template that uses
//! `{Token}` for a topic without a token (and no `Token` param) fails with
//! [`TemplateError::NoToken`].

use std::collections::BTreeMap;

use chorus_protocol::topic::{TopicSpec, check_token};

/// What a request is about: fills a template's placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpochContext {
    /// The topic id (`{TopicId}`).
    pub topic_id: u64,
    /// The epoch being served (`{Epoch}`, `{BlockHeight}`).
    pub epoch: u64,
    /// The topic's token or symbol (`{Token}` unless the `Token` param is set).
    pub token: String,
    /// Start of the epoch, Unix ms (`{EpochStartMs}`; `{Timestamp}` in seconds).
    pub start_ms: u64,
}

impl EpochContext {
    /// A context (epoch start 0; see [`EpochContext::of_topic`]).
    pub fn new(topic_id: u64, epoch: u64, token: impl Into<String>) -> Self {
        Self {
            topic_id,
            epoch,
            token: token.into(),
            start_ms: 0,
        }
    }

    /// The context of epoch `epoch` of topic `topic_id` defined by `spec`.
    pub fn of_topic(topic_id: u64, spec: &TopicSpec, epoch: u64) -> Self {
        Self {
            topic_id,
            epoch,
            token: spec.token.clone(),
            start_ms: spec.epoch_start(epoch),
        }
    }
}

/// A template is invalid, or cannot be filled for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{Name}` is neither a built-in placeholder nor a configured parameter.
    #[error(
        "unknown placeholder `{{{0}}}` (known: TopicId, Epoch, BlockHeight, EpochStartMs, \
         Timestamp, Token and configured params)"
    )]
    UnknownPlaceholder(String),
    /// A configured parameter reuses a built-in placeholder's name or is not an identifier.
    #[error("parameter name `{0}` is reserved or not an identifier")]
    BadParam(String),
    /// The template uses `{Token}`, no `Token` param is set and the topic has no token.
    #[error(
        "`{{Token}}` is used but the topic has no token: set params.Token (e.g. Token = \"ETH\")"
    )]
    NoToken,
    /// The topic's token is not a safe value (see the module docs).
    #[error("unsafe topic token: {0}")]
    UnsafeToken(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    TopicId,
    Epoch,
    EpochStartMs,
    Timestamp,
    Token,
    Param(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Built-in names a param may not take (`Token` may be set by a param).
const RESERVED: [&str; 5] = [
    "TopicId",
    "Epoch",
    "BlockHeight",
    "EpochStartMs",
    "Timestamp",
];

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// Parses `source`; `params` are extra static placeholders (and may set `Token`).
    pub fn parse(source: &str, params: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        for name in params.keys() {
            if RESERVED.contains(&name.as_str()) || !is_ident(name) {
                return Err(TemplateError::BadParam(name.clone()));
            }
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let candidate = after.find('}').map(|close| &after[..close]);
            match candidate {
                Some(name) if is_ident(name) => {
                    lit.push_str(&rest[..open]);
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(match (name, params.get(name)) {
                        ("TopicId", _) => Part::TopicId,
                        ("Epoch" | "BlockHeight", _) => Part::Epoch,
                        ("EpochStartMs", _) => Part::EpochStartMs,
                        ("Timestamp", _) => Part::Timestamp,
                        (_, Some(v)) => Part::Param(v.clone()),
                        ("Token", None) => Part::Token,
                        (other, None) => {
                            return Err(TemplateError::UnknownPlaceholder(other.into()));
                        }
                    });
                    rest = &after[name.len() + 1..];
                }
                _ => {
                    lit.push_str(&rest[..=open]);
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has any placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Lit(_)))
    }

    /// Whether the template takes the topic's token (`{Token}` with no `Token` param).
    pub fn needs_topic_token(&self) -> bool {
        self.parts.contains(&Part::Token)
    }

    /// Fills the placeholders verbatim (for command arguments).
    pub fn render(&self, ctx: &EpochContext) -> Result<String, TemplateError> {
        self.render_with(ctx, |s, out| out.push_str(s))
    }

    /// Fills the placeholders percent-encoding the substituted values (for URLs).
    pub fn render_url(&self, ctx: &EpochContext) -> Result<String, TemplateError> {
        self.render_with(ctx, percent_encode_into)
    }

    fn render_with(
        &self,
        ctx: &EpochContext,
        put: impl Fn(&str, &mut String),
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::TopicId => out.push_str(&ctx.topic_id.to_string()),
                Part::Epoch => out.push_str(&ctx.epoch.to_string()),
                Part::EpochStartMs => out.push_str(&ctx.start_ms.to_string()),
                Part::Timestamp => out.push_str(&(ctx.start_ms / 1000).to_string()),
                Part::Token => {
                    if ctx.token.is_empty() {
                        return Err(TemplateError::NoToken);
                    }
                    check_token(&ctx.token)
                        .map_err(|_| TemplateError::UnsafeToken(format!("{:?}", ctx.token)))?;
                    put(&ctx.token, &mut out);
                }
                Part::Param(v) => put(v, &mut out),
            }
        }
        Ok(out)
    }
}

fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_allora_placeholders() {
        let none = BTreeMap::new();
        let t = Template::parse(
            "http://h/x/{Token}/{TopicId}/{BlockHeight}?e={Epoch}&t={Timestamp}&ms={EpochStartMs}",
            &none,
        )
        .unwrap();
        let ctx = EpochContext {
            start_ms: 1_700_000_123_456,
            ..EpochContext::new(7, 42, "ETH")
        };
        assert_eq!(
            t.render_url(&ctx).unwrap(),
            "http://h/x/ETH/7/42?e=42&t=1700000123&ms=1700000123456"
        );
        assert!(t.has_placeholders());
        assert!(t.needs_topic_token());
    }

    #[test]
    fn token_param_overrides_the_topic_token() {
        let params = BTreeMap::from([("Token".to_string(), "ETH".to_string())]);
        let t = Template::parse("http://h/inference/{Token}", &params).unwrap();
        assert!(!t.needs_topic_token());
        // The topic's token does not matter, not even an empty one.
        for topic_token in ["", "BTC"] {
            assert_eq!(
                t.render_url(&EpochContext::new(1, 2, topic_token)).unwrap(),
                "http://h/inference/ETH"
            );
        }
    }

    #[test]
    fn a_topic_token_is_required_and_must_be_safe() {
        let t = Template::parse("{Token}", &BTreeMap::new()).unwrap();
        assert_eq!(
            t.render(&EpochContext::new(1, 2, "")),
            Err(TemplateError::NoToken)
        );
        for hostile in [
            "--output=/etc/passwd",
            "-h",
            "../admin",
            "evil.example",
            "a b",
        ] {
            assert!(
                matches!(
                    t.render(&EpochContext::new(1, 2, hostile)),
                    Err(TemplateError::UnsafeToken(_))
                ),
                "{hostile:?}"
            );
        }
        assert_eq!(t.render(&EpochContext::new(1, 2, "SOL")).unwrap(), "SOL");
    }

    #[test]
    fn params_unknowns_and_literal_braces() {
        let mut params = BTreeMap::new();
        params.insert("Horizon".to_string(), "1h".to_string());
        let t = Template::parse("{Horizon}-{\"a\":1}-{}-{-{Token}", &params).unwrap();
        assert_eq!(
            t.render(&EpochContext::new(1, 2, "B")).unwrap(),
            "1h-{\"a\":1}-{}-{-B"
        );
        assert_eq!(
            Template::parse("x/{Tokn}", &BTreeMap::new()),
            Err(TemplateError::UnknownPlaceholder("Tokn".into()))
        );
        for reserved in [
            "Epoch",
            "BlockHeight",
            "TopicId",
            "Timestamp",
            "EpochStartMs",
        ] {
            let params = BTreeMap::from([(reserved.to_string(), "3".to_string())]);
            assert!(matches!(
                Template::parse("x", &params),
                Err(TemplateError::BadParam(_))
            ));
        }
        assert!(
            !Template::parse("plain", &BTreeMap::new())
                .unwrap()
                .has_placeholders()
        );
    }
}
