//! XML namespaces used on the wire (RFC 6120, RFC 6121 and the XEPs).

pub const STREAM: &str = "http://etherx.jabber.org/streams";
pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 7395: `<open/>` and `<close/>` on a WebSocket.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XEP-0440: SASL channel-binding type capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const PING: &str = "urn:xmpp:ping";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const ROSTER: &str = "jabber:iq:roster";
/// XEP-0115: entity capabilities.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0092: software version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0202: entity time.
pub const TIME: &str = "urn:xmpp:time";
/// XEP-0012: last activity.
pub const LAST: &str = "jabber:iq:last";
/// XEP-0054: vcard-temp.
pub const VCARD: &str = "vcard-temp";
/// XEP-0049: private XML storage.
pub const PRIVATE: &str = "jabber:iq:private";
/// XEP-0191 §3.3: the application condition of a stanza to a JID one blocks.
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// XEP-0203 delayed delivery.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0237 roster versioning (stream feature).
pub const ROSTERVER: &str = "urn:xmpp:features:rosterver";
/// XEP-0157 contact addresses (a disco#info extended form).
pub const SERVERINFO: &str = "http://jabber.org/network/serverinfo";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0352 client state indication.
pub const CSI: &str = "urn:xmpp:csi:0";
/// XEP-0191 blocking command.
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// XEP-0280 message carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0060 publish-subscribe.
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// RFC 6121 §3.4.1 subscription pre-approval (stream feature).
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// XEP-0085 chat state notifications.
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0045 multi-user chat, the user's extension of presence and messages.
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0084 user avatar: data and metadata nodes (and payload namespaces).
pub const AVATAR_DATA: &str = "urn:xmpp:avatar:data";
pub const AVATAR_METADATA: &str = "urn:xmpp:avatar:metadata";
/// XEP-0153 vCard-based avatars: the presence extension.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0398 user avatar to vCard-based avatars conversion: the account feature.
pub const PEP_VCARD_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";
/// XEP-0215 external service discovery, and its older version for older clients.
pub const EXTDISCO: &str = "urn:xmpp:extdisco:2";
pub const EXTDISCO_1: &str = "urn:xmpp:extdisco:1";
/// XEP-0388 Extensible SASL Profile (SASL2).
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0480 SASL Upgrade Tasks: the tasks offered and asked for…
pub const SASL_UPGRADE: &str = "urn:xmpp:sasl:upgrade:0";
/// …and the SCRAM tasks' data (salt and iteration count; the SaltedPassword).
pub const SCRAM_UPGRADE: &str = "urn:xmpp:scram-upgrade:0";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XEP-0077 in-band registration.
pub const REGISTER: &str = "jabber:iq:register";
/// XEP-0077 §8: the stream feature.
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// XEP-0445 (and XEP-0379, XEP-0401): the `<preauth/>` token.
pub const PARS: &str = "urn:xmpp:pars:0";
/// XEP-0401 §5's stream feature `<register xmlns='urn:xmpp:invite'/>` (Conversations looks
/// for it), and XEP-0445 §4's `<register xmlns='urn:xmpp:ibr-token:0'/>`.
pub const INVITE: &str = "urn:xmpp:invite";
pub const IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
