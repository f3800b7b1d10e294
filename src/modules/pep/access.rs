//! Who may see an account's PEP nodes: the relation of a requester to the owner and the
//! access models (XEP-0060 §4.5, XEP-0163 §6.1).

use crate::jid::BareJid;
use crate::modules::account_key;
use crate::router::Core;
use crate::stanza::pubsub::{error, AccessModel};
use crate::stanza::{StanzaCondition, StanzaError};

/// How a requester stands to a node's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Owner,
    /// In the owner's roster; `from`: subscribed to the owner's presence (`from`/`both`).
    Contact {
        from: bool,
    },
    Stranger,
}

/// May someone with `relation` retrieve items of a node with `model`? The refusals are
/// XEP-0060 §6.5.9's: presence `not-authorized` + `presence-subscription-required`, roster
/// `not-authorized` + `not-in-roster-group`, whitelist `not-allowed` + `closed-node`.
pub fn access(model: AccessModel, relation: Relation) -> Result<(), StanzaError> {
    match (model, relation) {
        (_, Relation::Owner)
        | (AccessModel::Open, _)
        | (AccessModel::Presence, Relation::Contact { from: true })
        | (AccessModel::Roster, Relation::Contact { .. }) => Ok(()),
        (AccessModel::Presence, _) => Err(error(
            StanzaCondition::NotAuthorized,
            "presence-subscription-required",
        )),
        (AccessModel::Roster, _) => {
            Err(error(StanzaCondition::NotAuthorized, "not-in-roster-group"))
        }
        (AccessModel::Whitelist, _) => Err(error(StanzaCondition::NotAllowed, "closed-node")),
    }
}

/// How `who` stands to `owner`, from the owner's roster.
pub async fn relation(core: &Core, owner: &BareJid, who: &BareJid) -> Relation {
    if owner == who {
        return Relation::Owner;
    }
    let (host, user) = account_key(owner);
    let contact = who.to_string();
    match core
        .storage
        .call(move |c| crate::storage::roster::item(c, &host, &user, &contact))
        .await
    {
        Ok(Some(i)) if i.in_roster => Relation::Contact {
            from: i.state.is_from(),
        },
        Ok(_) => Relation::Stranger,
        Err(e) => {
            log::error!("storage: {e}");
            Relation::Stranger
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_decisions() {
        use AccessModel::*;
        let owner = Relation::Owner;
        let both = Relation::Contact { from: true };
        let to_only = Relation::Contact { from: false };
        let stranger = Relation::Stranger;
        let ok = |m, r| access(m, r).is_ok();
        let refusal = |m, r| {
            let e = access(m, r).unwrap_err();
            (e.condition, e.app.map(|a| a.name).unwrap_or_default())
        };
        // The owner sees everything; open is for anyone.
        for m in [Open, Presence, Roster, Whitelist] {
            assert!(ok(m, owner), "{m:?}");
        }
        for r in [both, to_only, stranger] {
            assert!(ok(Open, r), "{r:?}");
        }
        // Presence: only contacts subscribed to the owner's presence.
        assert!(ok(Presence, both));
        for r in [to_only, stranger] {
            assert_eq!(
                refusal(Presence, r),
                (
                    StanzaCondition::NotAuthorized,
                    "presence-subscription-required".into()
                )
            );
        }
        // Roster: anyone in the roster.
        assert!(ok(Roster, both));
        assert!(ok(Roster, to_only));
        assert_eq!(
            refusal(Roster, stranger),
            (StanzaCondition::NotAuthorized, "not-in-roster-group".into())
        );
        // Whitelist: the owner only.
        for r in [both, to_only, stranger] {
            assert_eq!(
                refusal(Whitelist, r),
                (StanzaCondition::NotAllowed, "closed-node".into())
            );
        }
    }
}
