//! The `type` of a presence stanza (RFC 6121 §4.7.1, §3; RFC 6120 §8.3 for errors).

use crate::xml::Element;

/// A presence's `type`; [`PresenceType::Available`] is the absent attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceType {
    /// No `type`: available (RFC 6121 §4.7.1).
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
}

impl PresenceType {
    /// The type for an attribute value (`None` = absent = available); `None` for a value
    /// RFC 6121 does not define.
    pub fn parse(attr: Option<&str>) -> Option<PresenceType> {
        Some(match attr {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscribe,
            Some("subscribed") => PresenceType::Subscribed,
            Some("unsubscribe") => PresenceType::Unsubscribe,
            Some("unsubscribed") => PresenceType::Unsubscribed,
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(_) => return None,
        })
    }

    /// The type of `presence`; `None` for an undefined value.
    pub fn of(presence: &Element) -> Option<PresenceType> {
        PresenceType::parse(presence.attr("type"))
    }

    /// The attribute value; `None` for available (no attribute).
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            PresenceType::Available => return None,
            PresenceType::Unavailable => "unavailable",
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            PresenceType::Unsubscribed => "unsubscribed",
            PresenceType::Probe => "probe",
            PresenceType::Error => "error",
        })
    }

    /// One of the four subscription types (RFC 6121 §3).
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn parses_and_serializes() {
        use PresenceType::*;
        for t in [
            Available,
            Unavailable,
            Subscribe,
            Subscribed,
            Unsubscribe,
            Unsubscribed,
            Probe,
            Error,
        ] {
            assert_eq!(PresenceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(Available.as_str(), None);
        assert!(Subscribe.is_subscription() && Unsubscribed.is_subscription());
        assert!(!Available.is_subscription() && !Probe.is_subscription());
    }

    #[test]
    fn invalid_input_is_none() {
        for bad in ["", "available", "Unavailable", "get", "subscribe "] {
            assert_eq!(PresenceType::parse(Some(bad)), None, "{bad:?}");
        }
        let p = Element::new("presence", ns::CLIENT);
        assert_eq!(PresenceType::of(&p), Some(PresenceType::Available));
        assert_eq!(
            PresenceType::of(&p.clone().with_attr("type", "probe")),
            Some(PresenceType::Probe)
        );
        assert_eq!(PresenceType::of(&p.with_attr("type", "bogus")), None);
    }
}
