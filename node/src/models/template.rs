//! Placeholder templates for model/truth endpoints and command arguments, compatible with the
//! Allora off-chain node.
//!
//! Placeholders are `{Name}` where `Name` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`):
//!
//! - `{TopicId}` — the topic id;
//! - `{Epoch}` and its Allora alias `{BlockHeight}` — the epoch (nonce) being served;
//! - `{Token}` — the topic's token/symbol (e.g. `ETH`);
//! - any name given in the spec's `params` table (static values, like Allora's extra
//!   parameters).
//!
//! An unknown `{Name}` is an error when the template is built (catches typos). Braces that do
//! not enclose an identifier (e.g. JSON in a command argument) are kept literally. In URLs the
//! substituted values are percent-encoded (RFC 3986 unreserved characters pass through).

use std::collections::BTreeMap;

/// What a request is about: fills a template's placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpochContext {
    /// The topic id (`{TopicId}`).
    pub topic_id: u64,
    /// The epoch being served (`{Epoch}`, `{BlockHeight}`).
    pub epoch: u64,
    /// The topic's token or symbol (`{Token}`).
    pub token: String,
}

impl EpochContext {
    /// A context.
    pub fn new(topic_id: u64, epoch: u64, token: impl Into<String>) -> Self {
        Self {
            topic_id,
            epoch,
            token: token.into(),
        }
    }
}

/// A template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{Name}` is neither a built-in placeholder nor a configured parameter.
    #[error(
        "unknown placeholder `{{{0}}}` (known: TopicId, Epoch, BlockHeight, Token and configured params)"
    )]
    UnknownPlaceholder(String),
    /// A configured parameter reuses a built-in placeholder's name or is not an identifier.
    #[error("parameter name `{0}` is reserved or not an identifier")]
    BadParam(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    TopicId,
    Epoch,
    Token,
    Param(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

const RESERVED: [&str; 4] = ["TopicId", "Epoch", "BlockHeight", "Token"];

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// Parses `source`; `params` are extra static placeholders.
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
                    parts.push(match name {
                        "TopicId" => Part::TopicId,
                        "Epoch" | "BlockHeight" => Part::Epoch,
                        "Token" => Part::Token,
                        other => match params.get(other) {
                            Some(v) => Part::Param(v.clone()),
                            None => return Err(TemplateError::UnknownPlaceholder(other.into())),
                        },
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

    /// Fills the placeholders verbatim (for command arguments).
    pub fn render(&self, ctx: &EpochContext) -> String {
        self.render_with(ctx, |s, out| out.push_str(s))
    }

    /// Fills the placeholders percent-encoding the substituted values (for URLs).
    pub fn render_url(&self, ctx: &EpochContext) -> String {
        self.render_with(ctx, percent_encode_into)
    }

    fn render_with(&self, ctx: &EpochContext, put: impl Fn(&str, &mut String)) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::TopicId => out.push_str(&ctx.topic_id.to_string()),
                Part::Epoch => out.push_str(&ctx.epoch.to_string()),
                Part::Token => put(&ctx.token, &mut out),
                Part::Param(v) => put(v, &mut out),
            }
        }
        out
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
            "http://h/x/{Token}/{TopicId}/{BlockHeight}?e={Epoch}",
            &none,
        )
        .unwrap();
        let ctx = EpochContext::new(7, 42, "ETH/USD");
        assert_eq!(t.render_url(&ctx), "http://h/x/ETH%2FUSD/7/42?e=42");
        assert_eq!(t.render(&ctx), "http://h/x/ETH/USD/7/42?e=42");
        assert!(t.has_placeholders());
    }

    #[test]
    fn params_unknowns_and_literal_braces() {
        let mut params = BTreeMap::new();
        params.insert("Horizon".to_string(), "1h".to_string());
        let t = Template::parse("{Horizon}-{\"a\":1}-{}-{-{Token}", &params).unwrap();
        assert_eq!(
            t.render(&EpochContext::new(1, 2, "B")),
            "1h-{\"a\":1}-{}-{-B"
        );
        assert_eq!(
            Template::parse("x/{Tokn}", &BTreeMap::new()),
            Err(TemplateError::UnknownPlaceholder("Tokn".into()))
        );
        params.insert("Epoch".to_string(), "3".to_string());
        assert!(matches!(
            Template::parse("x", &params),
            Err(TemplateError::BadParam(_))
        ));
        assert!(
            !Template::parse("plain", &BTreeMap::new())
                .unwrap()
                .has_placeholders()
        );
    }
}
