//! The presence subscription state machine of RFC 6121 Appendix A.
//!
//! A roster item's state is its `subscription` (none/to/from/both) plus the two pending
//! flags: *pending out* (the user asked the contact, `ask='subscribe'`) and *pending in* (the
//! contact asked the user and awaits an answer). Each function below is one table of the
//! appendix: given the existing state it says whether the stanza is routed (outbound: to the
//! contact; inbound: to the user) and what the new state is.

use crate::stanza::PresenceType;

/// The nine states of RFC 6121 Appendix A.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    None,
    NonePendingOut,
    NonePendingIn,
    NonePendingOutIn,
    To,
    ToPendingIn,
    From,
    FromPendingOut,
    Both,
}

/// The four subscription presence types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl Kind {
    /// From a presence `type` attribute.
    pub fn from_type(t: &str) -> Option<Kind> {
        match t {
            "subscribe" => Some(Kind::Subscribe),
            "subscribed" => Some(Kind::Subscribed),
            "unsubscribe" => Some(Kind::Unsubscribe),
            "unsubscribed" => Some(Kind::Unsubscribed),
            _ => None,
        }
    }

    /// From a presence type: the four subscription types.
    pub fn from_presence(t: PresenceType) -> Option<Kind> {
        t.as_str().and_then(Kind::from_type)
    }

    pub fn as_type(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Unsubscribed => "unsubscribed",
        }
    }
}

/// What a table row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Route (outbound) or deliver (inbound) the stanza.
    pub route: bool,
    /// The state afterwards (equal to the old one for "no state change").
    pub state: State,
}

impl State {
    /// The state from its stored parts.
    pub fn from_parts(subscription: &str, pending_out: bool, pending_in: bool) -> State {
        use State::*;
        match (subscription, pending_out, pending_in) {
            ("both", _, _) => Both,
            ("from", true, _) => FromPendingOut,
            ("from", false, _) => From,
            ("to", _, true) => ToPendingIn,
            ("to", _, false) => To,
            (_, true, true) => NonePendingOutIn,
            (_, true, false) => NonePendingOut,
            (_, false, true) => NonePendingIn,
            (_, false, false) => None,
        }
    }

    /// The roster `subscription` attribute value.
    pub fn subscription(self) -> &'static str {
        use State::*;
        match self {
            None | NonePendingOut | NonePendingIn | NonePendingOutIn => "none",
            To | ToPendingIn => "to",
            From | FromPendingOut => "from",
            Both => "both",
        }
    }

    /// The user asked the contact for a subscription (`ask='subscribe'`).
    pub fn pending_out(self) -> bool {
        matches!(
            self,
            State::NonePendingOut | State::NonePendingOutIn | State::FromPendingOut
        )
    }

    /// The contact asked the user for a subscription.
    pub fn pending_in(self) -> bool {
        matches!(
            self,
            State::NonePendingIn | State::NonePendingOutIn | State::ToPendingIn
        )
    }

    /// The user receives the contact's presence.
    pub fn is_to(self) -> bool {
        matches!(self, State::To | State::ToPendingIn | State::Both)
    }

    /// The contact receives the user's presence.
    pub fn is_from(self) -> bool {
        matches!(self, State::From | State::FromPendingOut | State::Both)
    }

    /// A stanza of `kind` sent by the user to the contact (Appendix A.2).
    pub fn outbound(self, kind: Kind) -> Step {
        use State::*;
        let (route, state) = match (kind, self) {
            // A.2.1
            (Kind::Subscribe, None) => (true, NonePendingOut),
            (Kind::Subscribe, NonePendingIn) => (true, NonePendingOutIn),
            (Kind::Subscribe, From) => (true, FromPendingOut),
            (Kind::Subscribe, s) => (true, s),
            // A.2.2
            (Kind::Unsubscribe, NonePendingOut) => (true, None),
            (Kind::Unsubscribe, NonePendingOutIn) => (true, NonePendingIn),
            (Kind::Unsubscribe, To) => (true, None),
            (Kind::Unsubscribe, ToPendingIn) => (true, NonePendingIn),
            (Kind::Unsubscribe, FromPendingOut) => (true, From),
            (Kind::Unsubscribe, Both) => (true, From),
            (Kind::Unsubscribe, s) => (true, s),
            // A.2.3
            (Kind::Subscribed, NonePendingIn) => (true, From),
            (Kind::Subscribed, NonePendingOutIn) => (true, FromPendingOut),
            (Kind::Subscribed, ToPendingIn) => (true, Both),
            (Kind::Subscribed, s) => (false, s),
            // A.2.4
            (Kind::Unsubscribed, NonePendingIn) => (true, None),
            (Kind::Unsubscribed, NonePendingOutIn) => (true, NonePendingOut),
            (Kind::Unsubscribed, ToPendingIn) => (true, To),
            (Kind::Unsubscribed, From) => (true, None),
            (Kind::Unsubscribed, FromPendingOut) => (true, NonePendingOut),
            (Kind::Unsubscribed, Both) => (true, To),
            (Kind::Unsubscribed, s) => (false, s),
        };
        Step { route, state }
    }

    /// A stanza of `kind` from the contact arriving for the user (Appendix A.3). For an
    /// inbound subscribe in From, From+PendingOut or Both the server answers `subscribed` on
    /// the user's behalf instead of delivering: see [`State::auto_reply_subscribed`].
    pub fn inbound(self, kind: Kind) -> Step {
        use State::*;
        let (route, state) = match (kind, self) {
            // A.3.1
            (Kind::Subscribe, None) => (true, NonePendingIn),
            (Kind::Subscribe, NonePendingOut) => (true, NonePendingOutIn),
            (Kind::Subscribe, To) => (true, ToPendingIn),
            (Kind::Subscribe, s) => (false, s),
            // A.3.2
            (Kind::Unsubscribe, NonePendingIn) => (true, None),
            (Kind::Unsubscribe, NonePendingOutIn) => (true, NonePendingOut),
            (Kind::Unsubscribe, ToPendingIn) => (true, To),
            (Kind::Unsubscribe, From) => (true, None),
            (Kind::Unsubscribe, FromPendingOut) => (true, NonePendingOut),
            (Kind::Unsubscribe, Both) => (true, To),
            (Kind::Unsubscribe, s) => (false, s),
            // A.3.3
            (Kind::Subscribed, NonePendingOut) => (true, To),
            (Kind::Subscribed, NonePendingOutIn) => (true, ToPendingIn),
            (Kind::Subscribed, FromPendingOut) => (true, Both),
            (Kind::Subscribed, s) => (false, s),
            // A.3.4
            (Kind::Unsubscribed, NonePendingOut) => (true, None),
            (Kind::Unsubscribed, NonePendingOutIn) => (true, NonePendingIn),
            (Kind::Unsubscribed, To) => (true, None),
            (Kind::Unsubscribed, ToPendingIn) => (true, NonePendingIn),
            (Kind::Unsubscribed, FromPendingOut) => (true, From),
            (Kind::Unsubscribed, Both) => (true, From),
            (Kind::Unsubscribed, s) => (false, s),
        };
        Step { route, state }
    }

    /// RFC 6121 §3.1.3: an inbound subscribe from a contact who is already subscribed is
    /// answered with `subscribed` by the server on the user's behalf.
    pub fn auto_reply_subscribed(self, kind: Kind) -> bool {
        kind == Kind::Subscribe && self.is_from()
    }
}

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::State::{self, *};

    const ALL: [State; 9] = [
        None,
        NonePendingOut,
        NonePendingIn,
        NonePendingOutIn,
        To,
        ToPendingIn,
        From,
        FromPendingOut,
        Both,
    ];

    /// One table of Appendix A: for each state in ALL's order, (route?, new state).
    fn check(table: &str, f: impl Fn(State) -> super::Step, rows: [(bool, State); 9]) {
        for (s, (route, state)) in ALL.iter().zip(rows) {
            let step = f(*s);
            assert_eq!(
                (step.route, step.state),
                (route, state),
                "{table}: from {s:?}"
            );
        }
    }

    #[test]
    fn a_2_1_outbound_subscribe() {
        check(
            "A.2.1",
            |s| s.outbound(Subscribe),
            [
                (true, NonePendingOut),
                (true, NonePendingOut),
                (true, NonePendingOutIn),
                (true, NonePendingOutIn),
                (true, To),
                (true, ToPendingIn),
                (true, FromPendingOut),
                (true, FromPendingOut),
                (true, Both),
            ],
        );
    }

    #[test]
    fn a_2_2_outbound_unsubscribe() {
        check(
            "A.2.2",
            |s| s.outbound(Unsubscribe),
            [
                (true, None),
                (true, None),
                (true, NonePendingIn),
                (true, NonePendingIn),
                (true, None),
                (true, NonePendingIn),
                (true, From),
                (true, From),
                (true, From),
            ],
        );
    }

    #[test]
    fn a_2_3_outbound_subscribed() {
        check(
            "A.2.3",
            |s| s.outbound(Subscribed),
            [
                (false, None),
                (false, NonePendingOut),
                (true, From),
                (true, FromPendingOut),
                (false, To),
                (true, Both),
                (false, From),
                (false, FromPendingOut),
                (false, Both),
            ],
        );
    }

    #[test]
    fn a_2_4_outbound_unsubscribed() {
        check(
            "A.2.4",
            |s| s.outbound(Unsubscribed),
            [
                (false, None),
                (false, NonePendingOut),
                (true, None),
                (true, NonePendingOut),
                (false, To),
                (true, To),
                (true, None),
                (true, NonePendingOut),
                (true, To),
            ],
        );
    }

    #[test]
    fn a_3_1_inbound_subscribe() {
        check(
            "A.3.1",
            |s| s.inbound(Subscribe),
            [
                (true, NonePendingIn),
                (true, NonePendingOutIn),
                (false, NonePendingIn),
                (false, NonePendingOutIn),
                (true, ToPendingIn),
                (false, ToPendingIn),
                (false, From),
                (false, FromPendingOut),
                (false, Both),
            ],
        );
        let auto: Vec<_> = ALL
            .iter()
            .filter(|s| s.auto_reply_subscribed(Subscribe))
            .collect();
        assert_eq!(auto, vec![&From, &FromPendingOut, &Both]);
    }

    #[test]
    fn a_3_2_inbound_unsubscribe() {
        check(
            "A.3.2",
            |s| s.inbound(Unsubscribe),
            [
                (false, None),
                (false, NonePendingOut),
                (true, None),
                (true, NonePendingOut),
                (false, To),
                (true, To),
                (true, None),
                (true, NonePendingOut),
                (true, To),
            ],
        );
    }

    #[test]
    fn a_3_3_inbound_subscribed() {
        check(
            "A.3.3",
            |s| s.inbound(Subscribed),
            [
                (false, None),
                (true, To),
                (false, NonePendingIn),
                (true, ToPendingIn),
                (false, To),
                (false, ToPendingIn),
                (false, From),
                (true, Both),
                (false, Both),
            ],
        );
    }

    #[test]
    fn a_3_4_inbound_unsubscribed() {
        check(
            "A.3.4",
            |s| s.inbound(Unsubscribed),
            [
                (false, None),
                (true, None),
                (false, NonePendingIn),
                (true, NonePendingIn),
                (true, None),
                (true, NonePendingIn),
                (false, From),
                (true, From),
                (true, From),
            ],
        );
    }

    #[test]
    fn parts_round_trip() {
        for s in ALL {
            assert_eq!(
                State::from_parts(s.subscription(), s.pending_out(), s.pending_in()),
                s
            );
        }
    }
}
