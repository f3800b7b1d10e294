//! Stream errors (RFC 6120 §4.9, defined in `xml::error` and re-exported here) and stanza
//! errors (RFC 6120 §8.3).

use crate::ns;
use crate::xml::Element;
use std::fmt;

pub use crate::xml::error::{StreamCondition, StreamError};

/// The error types of RFC 6120 §8.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// The defined stanza error conditions of RFC 6120 §8.3.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StanzaCondition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl StanzaCondition {
    pub fn name(self) -> &'static str {
        use StanzaCondition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            Gone => "gone",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            Redirect => "redirect",
            RegistrationRequired => "registration-required",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 gives for this condition.
    pub fn default_type(self) -> ErrorType {
        use StanzaCondition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => {
                ErrorType::Modify
            }
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            InternalServerError | RecipientUnavailable | RemoteServerTimeout
            | ResourceConstraint | UnexpectedRequest => ErrorType::Wait,
            _ => ErrorType::Cancel,
        }
    }
}

/// A stanza error: type, condition and an optional text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaError {
    pub error_type: ErrorType,
    pub condition: StanzaCondition,
    pub text: Option<String>,
    /// An application-specific condition element (RFC 6120 §8.3.2), e.g. XEP-0191's
    /// `<blocked/>`.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: StanzaCondition) -> StanzaError {
        StanzaError {
            error_type: condition.default_type(),
            condition,
            text: None,
            app: None,
        }
    }

    pub fn with_text(condition: StanzaCondition, text: impl Into<String>) -> StanzaError {
        StanzaError {
            text: Some(text.into()),
            ..StanzaError::new(condition)
        }
    }

    /// The `<error/>` child element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::CLIENT)
            .with_attr("type", self.error_type.name())
            .with_child(Element::new(self.condition.name(), ns::STANZAS));
        if let Some(t) = &self.text {
            e.push(Element::new("text", ns::STANZAS).with_text(t.clone()));
        }
        if let Some(a) = &self.app {
            e.push((**a).clone());
        }
        e
    }

    /// The error reply to `stanza` (RFC 6120 §8.3.1): `to`/`from` swapped, `type='error'`,
    /// the original payload kept, and the `<error/>` appended. Returns `None` for a stanza
    /// that is itself an error: an error is never answered with an error.
    pub fn reply_to(&self, stanza: &Element) -> Option<Element> {
        if stanza.attr("type") == Some("error") {
            return None;
        }
        let mut reply = reply_frame(stanza, "error");
        // RFC 6120 §8.3.1 rule 3: an IQ error MAY echo the payload. Echo it only when it
        // is an empty query, so that a refused large payload (a vCard, private data) is
        // not sent back in full.
        if stanza.name == "iq" {
            if let Some(p) = stanza.first_element().filter(|p| p.children.is_empty()) {
                reply.push(p.clone());
            }
        }
        reply.push(self.to_element());
        Some(reply)
    }
}

impl From<StanzaCondition> for StanzaError {
    fn from(c: StanzaCondition) -> StanzaError {
        StanzaError::new(c)
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.error_type.name(), self.condition.name())
    }
}

/// The frame of a reply to `stanza` (an IQ result, an error): the same element name and
/// namespace, its `id`, `to` and `from` swapped, and `type`.
pub fn reply_frame(stanza: &Element, ty: &str) -> Element {
    let mut reply = Element::new(&stanza.name, &stanza.ns);
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = stanza.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = stanza.attr("from") {
        reply.set_attr("to", to);
    }
    reply.set_attr("type", ty);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_error_reply_swaps_addresses() {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("id", "a1")
            .with_attr("type", "get")
            .with_attr("from", "a@x/r")
            .with_attr("to", "x")
            .with_child(Element::new("query", "urn:example"));
        let reply = StanzaError::new(StanzaCondition::ServiceUnavailable)
            .reply_to(&iq)
            .unwrap();
        assert_eq!(
            reply.to_client_string(),
            "<iq id='a1' from='x' to='a@x/r' type='error'><query xmlns='urn:example'/>\
             <error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
    }

    #[test]
    fn an_error_is_never_answered_with_an_error() {
        let err = Element::new("message", ns::CLIENT).with_attr("type", "error");
        assert!(StanzaError::new(StanzaCondition::BadRequest)
            .reply_to(&err)
            .is_none());
    }
}
