//! The `type` of an IQ stanza (RFC 6120 §8.2.3).

use crate::xml::Element;

/// An IQ's `type`: a request (`get`, `set`) or its answer (`result`, `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

impl IqType {
    /// The type named `s`; `None` for any other value (an IQ must carry one of the four).
    pub fn parse(s: &str) -> Option<IqType> {
        match s {
            "get" => Some(IqType::Get),
            "set" => Some(IqType::Set),
            "result" => Some(IqType::Result),
            "error" => Some(IqType::Error),
            _ => None,
        }
    }

    /// The type of `iq`; `None` when it is absent or not one of the four.
    pub fn of(iq: &Element) -> Option<IqType> {
        iq.attr("type").and_then(IqType::parse)
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            IqType::Get => "get",
            IqType::Set => "set",
            IqType::Result => "result",
            IqType::Error => "error",
        }
    }

    /// `get` or `set`: the IQs that must be answered.
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn parses_and_serializes() {
        for t in [IqType::Get, IqType::Set, IqType::Result, IqType::Error] {
            assert_eq!(IqType::parse(t.as_str()), Some(t));
        }
        assert!(IqType::Get.is_request() && IqType::Set.is_request());
        assert!(!IqType::Result.is_request() && !IqType::Error.is_request());
    }

    #[test]
    fn invalid_input_is_none() {
        for bad in ["", "GET", "Get", "results", "normal", " get"] {
            assert_eq!(IqType::parse(bad), None, "{bad:?}");
        }
        let iq = Element::new("iq", ns::CLIENT);
        assert_eq!(IqType::of(&iq), None);
        assert_eq!(
            IqType::of(&iq.clone().with_attr("type", "set")),
            Some(IqType::Set)
        );
        assert_eq!(IqType::of(&iq.with_attr("type", "bogus")), None);
    }
}
