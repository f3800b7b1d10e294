//! Stream errors (RFC 6120 §4.9): the condition and text that end a stream. Here, below
//! `stanza`, because the framer and the readers report their errors as stream errors;
//! `stanza::error` re-exports them beside the stanza errors.

use crate::ns;
use crate::xml::Element;
use std::fmt;

/// The defined stream error conditions of RFC 6120 §4.9.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamCondition {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    /// The element name of the condition on the wire.
    pub fn name(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostGone => "host-gone",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            RemoteConnectionFailed => "remote-connection-failed",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SeeOtherHost => "see-other-host",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream error: a condition and an optional human-readable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    pub condition: StreamCondition,
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), e.g. XEP-0198's
    /// `<handled-count-too-high/>`.
    pub app: Option<Box<Element>>,
}

impl StreamError {
    pub fn new(condition: StreamCondition) -> StreamError {
        StreamError {
            condition,
            text: None,
            app: None,
        }
    }

    pub fn with_text(condition: StreamCondition, text: impl Into<String>) -> StreamError {
        StreamError {
            condition,
            text: Some(text.into()),
            app: None,
        }
    }

    /// `<stream:error><condition xmlns='…streams'/><text>…</text></stream:error>`.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::STREAM)
            .with_child(Element::new(self.condition.name(), ns::STREAMS));
        if let Some(t) = &self.text {
            e.push(Element::new("text", ns::STREAMS).with_text(t.clone()));
        }
        if let Some(a) = &self.app {
            e.push((**a).clone());
        }
        e
    }
}

impl From<StreamCondition> for StreamError {
    fn from(c: StreamCondition) -> StreamError {
        StreamError::new(c)
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(t) => write!(f, "{} ({})", self.condition, t),
            None => write!(f, "{}", self.condition),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_serializes_with_stream_prefix() {
        let e = StreamError::with_text(StreamCondition::HostUnknown, "no such host");
        assert_eq!(
            e.to_element().to_client_string(),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text></stream:error>"
        );
    }
}
